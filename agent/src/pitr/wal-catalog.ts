import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { manifestKey, parseKey, WAL_PREFIX, walPrefix } from '../../../format/layout';
import { recoveryWindow, type RecoveryWindow, type WindowBaseBackup } from '../../../format/recovery-window';
import { parseWalFileName } from '../../../format/wal';
import { mapLimit } from '../../../runtime/concurrency';
import type { PrivateKey, PublicKey } from '../../../runtime/pgp';
import { isComplete, listAll, listBackups, storageError, type BackupEntry, type CatalogObject } from '../catalog/listing';
import { ColdsealError } from '../errors';
import { loadVerifiedManifest } from '../restore/select';
import { fetchWalFile, WalReadFailure } from './wal-object';

/**
 * What a source's WAL archive holds, read from the listing (ListObjectsV2, one prefix per timeline:
 * wal/<group>/<host>/<source>/<TTTTTTTT>/), and the recovery window it gives together with the
 * source's base backups (format/recovery-window.ts). Names and LastModified come from the listing;
 * the only contents read are the base backups' signed manifests and, when there is more than one
 * timeline and the private key is at hand, the .history files (encrypted like every WAL object).
 */
export interface ArchivedWal extends CatalogObject {
  readonly walFile: string;
  readonly timeline: number;
}

export interface WalArchiveListing {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  /** Timelines with a prefix of their own, ascending. */
  readonly timelines: number[];
  readonly files: ArchivedWal[];
}

/** The sub-prefixes one level under `prefix` (ListObjectsV2 with Delimiter "/"). */
export async function listSubPrefixes(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
    } catch (error) {
      throw storageError(error, `listing s3://${bucket}/${prefix}`);
    }
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) found.push(p.Prefix.slice(prefix.length, -1));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return found;
}

/** The (host, source) pairs of a group that have a WAL archive, optionally of one host or source. */
export async function listWalSources(s3: S3Client, bucket: string, group: string, filter: { host?: string; source?: string } = {}): Promise<{ host: string; source: string }[]> {
  const hosts = filter.host ? [filter.host] : await listSubPrefixes(s3, bucket, `${WAL_PREFIX}${group}/`);
  const pairs: { host: string; source: string }[] = [];
  for (const host of hosts) {
    for (const source of await listSubPrefixes(s3, bucket, `${WAL_PREFIX}${group}/${host}/`)) {
      if (!filter.source || filter.source === source) pairs.push({ host, source });
    }
  }
  return pairs.sort((a, b) => a.host.localeCompare(b.host) || a.source.localeCompare(b.source));
}

export async function listWalArchive(s3: S3Client, bucket: string, group: string, host: string, source: string): Promise<WalArchiveListing> {
  const base = `${WAL_PREFIX}${group}/${host}/${source}/`;
  const timelines = (await listSubPrefixes(s3, bucket, base))
    .filter((dir) => /^[0-9A-F]{8}$/.test(dir))
    .map((dir) => Number.parseInt(dir, 16))
    .filter((t) => t >= 1)
    .sort((a, b) => a - b);
  const files: ArchivedWal[] = [];
  for (const timeline of timelines) {
    for (const object of await listAll(s3, bucket, walPrefix(group, host, source, timeline))) {
      const parsed = parseKey(object.key);
      if (parsed?.kind === 'wal') files.push({ ...object, walFile: parsed.walFile, timeline: parsed.timeline });
    }
  }
  return { group, host, source, timelines, files };
}

export interface WalKeys {
  readonly trusted: readonly PublicKey[];
  /** The recipient private key: without it .history files cannot be read, and timeline switches are assumed. */
  readonly privateKey?: PrivateKey;
}

/**
 * The content of every archived .history file, when there is more than one timeline (with one,
 * no history is needed) and the private key is given; an empty map otherwise. A history that
 * fails its checks is an error: recovery across that timeline switch could not be trusted either.
 */
export async function readHistories(s3: S3Client, bucket: string, listing: WalArchiveListing, keys: WalKeys): Promise<Map<string, string>> {
  const histories = new Map<string, string>();
  if (listing.timelines.length < 2 || !keys.privateKey) return histories;
  const names = listing.files.filter((f) => parseWalFileName(f.walFile).kind === 'history').map((f) => f.walFile);
  if (names.length === 0) return histories;
  const dir = await mkdtemp(join(tmpdir(), 'coldseal-history-'));
  try {
    const from = { s3, bucket, group: listing.group, host: listing.host, source: listing.source, trusted: keys.trusted, key: keys.privateKey };
    await mapLimit(names, 4, async (name) => {
      const path = join(dir, name);
      await fetchWalFile(from, name, path);
      histories.set(name, await readFile(path, 'utf8'));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return histories;
}

/** The base backups among a source's complete backups, each from its signed manifest; problems are reported, not thrown. */
export async function baseBackupsOf(s3: S3Client, bucket: string, entries: readonly BackupEntry[], trusted: readonly PublicKey[]): Promise<{ bases: WindowBaseBackup[]; problems: string[] }> {
  // A base backup is the artifact named "cluster" (format/manifest.ts): only those manifests are read.
  const candidates = entries.filter((e) => isComplete(e) && e.artifacts.some((a) => a.artifact === 'cluster'));
  const problems: string[] = [];
  const found = await mapLimit(candidates, 8, async (entry) => {
    const key = manifestKey(entry, entry.stamp);
    try {
      const { manifest } = await loadVerifiedManifest(s3, bucket, key, trusted);
      return manifest.artifacts.flatMap((a) => (a.kind === 'cluster' && a.baseBackup ? [{ id: key, ...a.baseBackup }] : []));
    } catch (error) {
      if (!(error instanceof ColdsealError)) throw error;
      problems.push(`base backup ${key} left out: ${error.message}`);
      return [];
    }
  });
  return { bases: found.flat(), problems };
}

export interface SourceWindowOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly keys: WalKeys;
  /** The source's backups when the caller listed them already. */
  readonly entries?: readonly BackupEntry[];
}

export interface SourceWindow {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly window: RecoveryWindow;
  readonly listing: WalArchiveListing;
  readonly bases: WindowBaseBackup[];
}

/** The recovery window of one source: its WAL archive, its base backups, and (when readable) its timeline histories. */
export async function sourceRecoveryWindow(options: SourceWindowOptions): Promise<SourceWindow> {
  const { s3, bucket, group, host, source, keys } = options;
  const listing = await listWalArchive(s3, bucket, group, host, source);
  const entries = (options.entries ?? (await listBackups(s3, bucket, { group, host, source }))).filter((e) => e.group === group && e.host === host && e.source === source);
  const { bases, problems } = await baseBackupsOf(s3, bucket, entries, keys.trusted);
  const histories = await readHistories(s3, bucket, listing, keys).catch((error: unknown) => {
    if (error instanceof WalReadFailure) {
      problems.push(`a timeline history could not be read (${error.message}): timeline switches are assumed`);
      return new Map<string, string>();
    }
    throw error;
  });
  const window = recoveryWindow({ files: listing.files.map((f) => ({ walFile: f.walFile, archivedAt: (f.lastModified ?? new Date(0)).toISOString() })), histories, bases });
  return { group, host, source, window: { ...window, notes: [...problems, ...window.notes] }, listing, bases };
}
