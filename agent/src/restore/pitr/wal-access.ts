import { chown, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { historyFileName } from '../../../../format/wal';
import type { PrivateKey, PublicKey } from '../../../../runtime/pgp';
import { ColdsealError, EXIT } from '../../errors';
import { FETCH_PLAN_FORMAT_VERSION, fetchRangesFor, restoreCommandLine, writeFetchPlan } from '../../pitr/fetch-plan';
import { listWalArchive, listWalSources, readHistories } from '../../pitr/wal-catalog';
import { stopPrefetcher } from '../../pitr/wal-fetch';
import { WalReadFailure, asColdsealError } from '../../pitr/wal-object';
import { writeOwned, type OsUser } from './data-dir';
import type { ArchiveView, RecoveryPlan } from './plan';
import type { WalArchiveAccess } from './run';

/** What restore_command needs besides the plan: where the archive is and the keys that prove and open it. */
export interface WalAccessOptions {
  readonly s3: S3Client;
  readonly storage: { readonly bucket: string; readonly region: string; readonly endpoint?: string };
  readonly group: string;
  readonly source: string;
  readonly trusted: readonly PublicKey[];
  readonly key: PrivateKey;
  /** The private key as given (armored, still passphrase-protected if it was): copied for restore_command. */
  readonly armoredKey: string;
  readonly passphraseFile?: string;
  readonly prefetch: number;
  readonly concurrency: number;
}

/** The copy of the private key restore_command reads, in the spool directory (0600, the server's OS user). */
const KEY_COPY = 'recipient.key.asc';
const PASSPHRASE_COPY = 'recipient.key.passphrase';

/**
 * The source's WAL archive as restore sees it (agent/src/pitr/wal-catalog.ts: the listing, and the
 * .history files read with the key), and restore_command's plan (agent/src/pitr/fetch-plan.ts).
 */
export function walArchiveAccess(options: WalAccessOptions, host: string): WalArchiveAccess {
  const { s3, storage, group, source } = options;
  return {
    async view(): Promise<ArchiveView> {
      const listing = await listWalArchive(s3, storage.bucket, group, host, source);
      let histories: Map<string, string>;
      try {
        histories = await readHistories(s3, storage.bucket, listing, { trusted: options.trusted, privateKey: options.key });
      } catch (error) {
        // A timeline switch recovery would cross cannot be trusted if its history fails its checks.
        if (error instanceof WalReadFailure) throw asColdsealError(error);
        throw error;
      }
      return { files: listing.files.map((f) => ({ walFile: f.walFile, archivedAt: (f.lastModified ?? new Date(0)).toISOString() })), histories };
    },

    async prepareFetch(spool: string, owner: OsUser, plan: RecoveryPlan): Promise<string> {
      const base = plan.base.baseBackup;
      const keyFile = join(spool, KEY_COPY);
      await writeOwned(keyFile, options.armoredKey, owner);
      let passphraseFile: string | undefined;
      if (options.passphraseFile) {
        passphraseFile = join(spool, PASSPHRASE_COPY);
        await writeOwned(passphraseFile, await readFile(options.passphraseFile, 'utf8'), owner);
      }
      const archived = new Set(plan.continuity.history.filter((s) => s.timeline > 1).map((s) => historyFileName(s.timeline)));
      const path = await writeFetchPlan(spool, {
        formatVersion: FETCH_PLAN_FORMAT_VERSION,
        group,
        host,
        source,
        storage: { bucket: storage.bucket, region: storage.region, ...(storage.endpoint ? { endpoint: storage.endpoint } : {}) },
        systemIdentifier: base.systemIdentifier,
        walSegmentSize: base.walSegmentSize,
        trustedSigningKeys: options.trusted.map((k) => k.armor()).join('\n'),
        privateKey: { file: keyFile, ...(passphraseFile ? { passphraseFile } : {}) },
        // Everything the archive holds without a hole, whatever the target: the record that reaches
        // an LSN target may end in the next segment, and a time target is reached at the first
        // commit after it.
        ranges: fetchRangesFor(plan.continuity, null, base.walSegmentSize),
        histories: [...archived],
        prefetch: options.prefetch,
        concurrency: options.concurrency,
        createdAt: new Date().toISOString(),
      });
      await copyOwnership(path, owner);
      return restoreCommandLine({ spool });
    },

    async afterRecovery(spool: string): Promise<void> {
      // The prefetcher holds the key too (in a gpg keyring of its own): it stops now, not once idle.
      await stopPrefetcher(spool);
      await rm(join(spool, KEY_COPY), { force: true });
      await rm(join(spool, PASSPHRASE_COPY), { force: true });
    },
  };
}

/** writeFetchPlan writes as this process: hand the file to the server's OS user, who runs restore_command. */
async function copyOwnership(path: string, owner: OsUser): Promise<void> {
  if (process.getuid?.() !== 0) return;
  await chown(path, owner.uid, owner.gid);
}

/** The (host, source) pairs of a group that have a WAL archive. */
export async function walSourcesOf(s3: S3Client, bucket: string, group: string): Promise<{ host: string; source: string }[]> {
  try {
    return await listWalSources(s3, bucket, group);
  } catch (error) {
    if (error instanceof ColdsealError) throw error;
    throw new ColdsealError(EXIT.STORAGE, `listing the WAL archives of group ${group} failed: ${(error as Error).message}`);
  }
}
