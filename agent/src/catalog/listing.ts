import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { artifactsOf, groupListing, type ListedArtifact } from '../../../format/backup-listing';
import { stampOf, TIERS, type SourceLocation, type Tier } from '../../../format/layout';
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
