import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ARCHIVED_CLASSES, artifactsOf, groupListing, type ListedArtifact } from '../../../format/backup-listing';
import { mapLimit } from '../../../runtime/concurrency';
import { DRILLS_PREFIX, parseKey, stampOf, TIERS, type SourceLocation, type Tier } from '../../../format/layout';
import { drillReceiptSchema, type DrillReceipt } from '../../../format/manifest';
import { unreadableMessage, whyUnreadable } from '../../../runtime/s3-presence';
import { ColdsealError, EXIT } from '../errors';

/**
 * What is in the bucket, read from the key layout alone (one LIST, paginated), grouped into
 * backups: one entry per (tier, group, host, source, stamp). A backup is complete only when its
 * manifest exists (the manifest is the commit point); artifacts without one are shown as
 * incomplete and never chosen as "latest".
 */
export interface CatalogObject {
  readonly key: string;
  readonly size: number;
  readonly storageClass: string;
  readonly lastModified?: Date;
}

/** One artifact as listed: its first object's key and class, and `size` summed over its segments. */
export interface CatalogArtifact extends CatalogObject {
  readonly artifact: string;
  readonly extension: string;
  /** Every object of the artifact in segment order (one unless the dump was segmented). */
  readonly objects: CatalogObject[];
}

export interface BackupEntry {
  readonly tier: Tier;
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly stamp: string;
  readonly manifest?: CatalogObject;
  readonly artifacts: CatalogArtifact[];
}

export interface CatalogFilter {
  readonly group?: string;
  readonly host?: string;
  readonly source?: string;
  readonly tier?: Tier;
  /** Stamps at or after / at or before these times. */
  readonly since?: Date;
  readonly until?: Date;
}

/** Defined in format/backup-listing.ts (the verifier uses the same set). */
export { ARCHIVED_CLASSES };

export function isComplete(entry: BackupEntry): boolean {
  return entry.manifest !== undefined;
}

/** Every key under a prefix, page by page (ListObjectsV2 returns at most 1,000 per call). */
export async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<CatalogObject[]> {
  const objects: CatalogObject[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    } catch (error) {
      throw storageError(error, `listing s3://${bucket}/${prefix}`);
    }
    for (const o of page.Contents ?? []) {
      if (o.Key) objects.push({ key: o.Key, size: o.Size ?? 0, storageClass: o.StorageClass ?? 'STANDARD', lastModified: o.LastModified });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects;
}

export function storageError(error: unknown, what: string): ColdsealError {
  const name = (error as { name?: string }).name ?? '';
  if (name === 'NoSuchBucket') return new ColdsealError(EXIT.STORAGE, `${what}: the bucket does not exist`, 'Check the bucket name and region in the configuration');
  if (name === 'AccessDenied' || /Access Denied/i.test((error as Error).message)) {
    return new ColdsealError(EXIT.STORAGE, `${what}: access denied`, 'Use credentials allowed to read this group\'s backups (the operator or restore role)');
  }
  return new ColdsealError(EXIT.STORAGE, `${what} failed: ${(error as Error).message}`, 'Check network access to S3 and your credentials', { cause: error });
}

/** The narrowest prefixes that cover the filter (a group's prefixes are per tier: the tier is the first segment). */
function prefixesFor(filter: CatalogFilter): string[] {
  const tiers = filter.tier ? [filter.tier] : [...TIERS];
  return tiers.map((tier) => {
    let prefix = `backups/${tier}/`;
    if (filter.group) {
      prefix += `${filter.group}/`;
      if (filter.host) {
        prefix += `${filter.host}/`;
        if (filter.source) prefix += `${filter.source}/`;
      }
    }
    return prefix;
  });
}

/** The listing grouped into backups (format/backup-listing.ts), filtered, each artifact's segments folded into it. */
export function groupEntries(objects: readonly CatalogObject[], filter: CatalogFilter = {}): BackupEntry[] {
  const since = filter.since ? stampOf(filter.since) : undefined;
  const until = filter.until ? stampOf(filter.until) : undefined;
  const wanted = ({ location: l, stamp }: { location: SourceLocation; stamp: string }): boolean =>
    (!filter.group || l.group === filter.group) && (!filter.host || l.host === filter.host) && (!filter.source || l.source === filter.source) && (!filter.tier || l.tier === filter.tier) && (!since || stamp >= since) && (!until || stamp <= until);
  return groupListing(objects)
    .backups.filter(wanted)
    .map(({ location: l, stamp, manifest, artifacts }) => ({ tier: l.tier, group: l.group, host: l.host, source: l.source, stamp, artifacts: artifactsOf(artifacts).map(catalogArtifact), ...(manifest ? { manifest } : {}) }))
    .sort((a, b) => a.group.localeCompare(b.group) || a.host.localeCompare(b.host) || a.source.localeCompare(b.source) || a.stamp.localeCompare(b.stamp) || a.tier.localeCompare(b.tier));
}

/** An artifact as listed: its first segment's key and class, its size summed over its segments. */
function catalogArtifact({ artifact, extension, objects }: ListedArtifact<CatalogObject>): CatalogArtifact {
  return { ...objects[0], artifact, extension, objects, size: objects.reduce((sum, o) => sum + o.size, 0) };
}

export async function listBackups(s3: S3Client, bucket: string, filter: CatalogFilter = {}): Promise<BackupEntry[]> {
  const objects: CatalogObject[] = [];
  for (const prefix of prefixesFor(filter)) objects.push(...(await listAll(s3, bucket, prefix)));
  return groupEntries(objects, filter);
}

/**
 * The latest complete backup of one source. Stamps are compared only within one (group, host,
 * source): a source name used on two hosts is two histories, and asking for "latest" without the
 * host is refused rather than answered with whichever host backed up last.
 */
export function latestOf(entries: readonly BackupEntry[], where: { group: string; host?: string; source: string }): BackupEntry {
  const candidates = entries.filter((e) => isComplete(e) && e.group === where.group && e.source === where.source && (!where.host || e.host === where.host));
  const hosts = [...new Set(candidates.map((e) => e.host))].sort();
  if (hosts.length > 1) {
    throw new ColdsealError(EXIT.USAGE, `source "${where.source}" of group ${where.group} is backed up by several hosts (${hosts.join(', ')})`, 'Say which one with --host');
  }
  const latest = candidates.reduce<BackupEntry | undefined>((best, e) => (!best || e.stamp > best.stamp ? e : best), undefined);
  if (!latest) {
    const incomplete = entries.filter((e) => !isComplete(e) && e.group === where.group && e.source === where.source && (!where.host || e.host === where.host)).length;
    throw new ColdsealError(
      EXIT.NOT_FOUND,
      `no complete backup of source "${where.source}"${where.host ? ` on host ${where.host}` : ''} in group ${where.group}${incomplete ? ` (${incomplete} incomplete, without a manifest)` : ''}`,
      'List what exists with: coldseal list',
    );
  }
  return latest;
}

export type RestoreState = { state: 'none' } | { state: 'ongoing' } | { state: 'restored'; expiry?: Date };

/** Parses the x-amz-restore header: ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT". */
export function parseRestoreHeader(header: string | undefined): RestoreState {
  if (!header) return { state: 'none' };
  if (/ongoing-request="true"/.test(header)) return { state: 'ongoing' };
  const expiry = /expiry-date="([^"]+)"/.exec(header)?.[1];
  return { state: 'restored', expiry: expiry ? new Date(expiry) : undefined };
}

/** An object's storage class and retrieval state; undefined when it is missing (s3-presence.ts). */
export async function headRestoreState(s3: S3Client, bucket: string, key: string): Promise<{ storageClass: string; restore: RestoreState; size: number } | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { storageClass: head.StorageClass ?? 'STANDARD', restore: parseRestoreHeader(head.Restore), size: head.ContentLength ?? 0 };
  } catch (error) {
    const why = await whyUnreadable(s3, bucket, key, error);
    if (why === 'missing') return undefined;
    if (why) throw new ColdsealError(EXIT.STORAGE, unreadableMessage(why, `s3://${bucket}/${key}`), "Use credentials allowed to read this group's backups (the operator or restore role)", { cause: error });
    throw storageError(error, `reading s3://${bucket}/${key}`);
  }
}

/** Reads a drill receipt without checking its signature (display only). */
function peekDrillReceipt(text: string): DrillReceipt {
  const envelope = JSON.parse(text) as { kind?: string; payload?: string };
  if (envelope.kind !== 'drill-receipt' || typeof envelope.payload !== 'string') throw new Error('not a drill receipt');
  return drillReceiptSchema.parse(JSON.parse(envelope.payload));
}

export interface DrillState {
  readonly ok: boolean;
  readonly at: string;
  readonly drillHost: string;
}

/**
 * Drill results by manifest key, from the group's drill receipts (the newest `limit` of them).
 * Read without checking signatures: this is for display; `coldseal verify` is the trust decision.
 */
export async function drillStates(s3: S3Client, bucket: string, group: string, limit = 60): Promise<Map<string, DrillState>> {
  const receipts = (await listAll(s3, bucket, `${DRILLS_PREFIX}${group}/`))
    .map((o) => ({ o, parsed: parseKey(o.key) }))
    .filter((x) => x.parsed?.kind === 'drill-receipt')
    .sort((a, b) => (b.parsed as { stamp: string }).stamp.localeCompare((a.parsed as { stamp: string }).stamp))
    .slice(0, limit);
  const states = new Map<string, DrillState>();
  for (const { o } of receipts) {
    try {
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.key }));
      const receipt = peekDrillReceipt(await body.Body!.transformToString());
      for (const result of receipt.results) {
        // Newest receipt first: keep the first state seen for each backup.
        if (!states.has(result.manifestKey)) states.set(result.manifestKey, { ok: result.ok, at: receipt.finishedAt, drillHost: receipt.host });
      }
    } catch {
      // An unreadable receipt says nothing about backups; verify reports it.
    }
  }
  return states;
}

/** One row of `coldseal list`: what a person or a script needs to pick a backup. */
export interface BackupRow {
  readonly tier: Tier;
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly stamp: string;
  readonly time: string;
  readonly complete: boolean;
  readonly manifestKey?: string;
  readonly artifacts: { name: string; key: string; bytes: number; storageClass: string; restoredUntil?: string; restoreInProgress?: boolean }[];
  readonly bytes: number;
  /** The storage classes of its ciphertexts, e.g. "STANDARD" or "GLACIER (restored until …)". */
  readonly storage: string;
  readonly drill?: DrillState;
}

/**
 * Rows for the listing. Archived ciphertexts get a HEAD each (the LIST does not say whether a
 * restored copy exists), a few at a time; everything else comes from the LIST alone.
 */
export async function describeBackups(s3: S3Client, bucket: string, entries: readonly BackupEntry[], drills: ReadonlyMap<string, DrillState> = new Map()): Promise<BackupRow[]> {
  const archived = entries.flatMap((e) => e.artifacts.flatMap((a) => a.objects.filter((o) => ARCHIVED_CLASSES.has(o.storageClass)).map((o) => o.key)));
  const states = new Map<string, RestoreState>();
  await mapLimit(archived, 8, async (key) => {
    try {
      const state = await headRestoreState(s3, bucket, key);
      if (state) states.set(key, state.restore);
    } catch {
      // shown without restore state
    }
  });
  return entries.map((e) => {
    const artifacts = e.artifacts.map((a) => {
      // A segmented artifact is as readable as its least readable segment.
      const segmentStates = a.objects.map((o) => states.get(o.key));
      const state = segmentStates.find((x) => x?.state !== 'restored') ?? segmentStates[0];
      return {
        name: a.artifact,
        key: a.key,
        bytes: a.size,
        storageClass: a.storageClass,
        ...(state?.state === 'restored' ? { restoredUntil: state.expiry?.toISOString() ?? 'unknown' } : {}),
        ...(state?.state === 'ongoing' ? { restoreInProgress: true } : {}),
      };
    });
    const classes = [...new Set(artifacts.map((a) => a.storageClass + (a.restoredUntil ? ` (restored until ${a.restoredUntil.slice(0, 16).replace('T', ' ')})` : a.restoreInProgress ? ' (retrieval in progress)' : '')))];
    const manifestKeyOf = e.manifest?.key;
    return {
      tier: e.tier,
      group: e.group,
      host: e.host,
      source: e.source,
      stamp: e.stamp,
      time: `${e.stamp.slice(0, 4)}-${e.stamp.slice(4, 6)}-${e.stamp.slice(6, 8)}T${e.stamp.slice(9, 11)}:${e.stamp.slice(11, 13)}:${e.stamp.slice(13, 15)}Z`,
      complete: isComplete(e),
      manifestKey: manifestKeyOf,
      artifacts,
      bytes: artifacts.reduce((sum, a) => sum + a.bytes, 0),
      storage: classes.join(', ') || '-',
      ...(manifestKeyOf && drills.has(manifestKeyOf) ? { drill: drills.get(manifestKeyOf) } : {}),
    };
  });
}

/** One row of `coldseal status`: the state of one (group, host, source). */
export interface SourceStatus {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly latest?: BackupRow;
  readonly ageHours?: number;
  readonly backups: number;
  readonly incomplete: number;
  readonly byTier: Record<string, number>;
}

export function summarize(rows: readonly BackupRow[], now: Date): SourceStatus[] {
  const bySource = new Map<string, BackupRow[]>();
  for (const row of rows) {
    const id = `${row.group}/${row.host}/${row.source}`;
    bySource.set(id, [...(bySource.get(id) ?? []), row]);
  }
  return [...bySource.values()].map((list) => {
    const complete = list.filter((r) => r.complete);
    const latest = complete.reduce<BackupRow | undefined>((best, r) => (!best || r.stamp > best.stamp ? r : best), undefined);
    const byTier: Record<string, number> = {};
    for (const r of complete) byTier[r.tier] = (byTier[r.tier] ?? 0) + 1;
    return {
      group: list[0].group,
      host: list[0].host,
      source: list[0].source,
      latest,
      ageHours: latest ? (now.getTime() - Date.parse(latest.time)) / 3_600_000 : undefined,
      backups: complete.length,
      incomplete: list.length - complete.length,
      byTier,
    };
  });
}
