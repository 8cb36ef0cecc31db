import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { parseKey, WAL_PREFIX } from '../../../../format/layout';
import type { PrivateKey, PublicKey } from '../../../../runtime/pgp';
import { listAll } from '../../catalog/listing';
import { ColdsealError, EXIT } from '../../errors';
import type { OsUser } from './data-dir';
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
  /** The private key as given (armored, possibly passphrase-protected): copied for restore_command. */
  readonly armoredKey: string;
  readonly passphraseFile?: string;
  readonly prefetch: number;
  readonly concurrency: number;
}

/** The source's WAL archive as restore sees it (the listing; .history contents) and restore_command's plan. */
export function walArchiveAccess(options: WalAccessOptions, host: string): WalArchiveAccess {
  return {
    async view(): Promise<ArchiveView> {
      const files = [];
      for (const object of await listAll(options.s3, options.storage.bucket, `${WAL_PREFIX}${options.group}/${host}/${options.source}/`)) {
        const parsed = parseKey(object.key);
        if (parsed?.kind === 'wal') files.push({ name: parsed.walFile, archivedAt: object.lastModified ?? new Date(0) });
      }
      return { files, histories: new Map() };
    },
    prepareFetch(_spool: string, _owner: OsUser, _plan: RecoveryPlan): Promise<string> {
      throw new ColdsealError(EXIT.FAILURE, 'restore_command (coldseal pitr wal-fetch) is not in this build yet');
    },
  };
}

/** The (host, source) pairs of a group with a WAL archive (two delimiter listings, no WAL object listed). */
export async function walSourcesOf(s3: S3Client, bucket: string, group: string): Promise<{ host: string; source: string }[]> {
  const sub = async (prefix: string): Promise<string[]> => {
    const found: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) found.push(p.Prefix.slice(prefix.length, -1));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  };
  const pairs: { host: string; source: string }[] = [];
  for (const host of await sub(`${WAL_PREFIX}${group}/`)) for (const source of await sub(`${WAL_PREFIX}${group}/${host}/`)) pairs.push({ host, source });
  return pairs.sort((a, b) => a.host.localeCompare(b.host) || a.source.localeCompare(b.source));
}
