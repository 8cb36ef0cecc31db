import { parseKey, type SourceLocation } from './layout';

/**
 * A bucket listing read into backups from the key layout alone, the same way by the agent
 * (`coldseal list`, restore's "latest") and the verifier: one backup per (tier, group, host,
 * source, stamp) with its manifest, if listed (the manifest is the commit point), and its
 * ciphertext objects; and the drill receipts. Generic over the listed object, whose fields differ
 * between the two sides; keys that are not ours are skipped.
 */

/** Storage classes whose objects are read only after a restore (Glacier retrieval). */
export const ARCHIVED_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export interface ListedBackup<T> {
  readonly location: SourceLocation;
  readonly stamp: string;
  /** Undefined when the run never committed (or is still running). */
  readonly manifest: T | undefined;
  /** Every ciphertext object of the backup, segments included, in listing order. */
  readonly artifacts: T[];
}

export interface ListedDrillReceipt<T> {
  readonly group: string;
  readonly host: string;
  readonly stamp: string;
  readonly object: T;
}

export interface BackupListing<T> {
  /** In the order the listing first shows each backup. */
  readonly backups: ListedBackup<T>[];
  /** In listing order. */
  readonly drills: ListedDrillReceipt<T>[];
}

/** One artifact of a backup: its objects, in segment order (one unless the dump was segmented). */
export interface ListedArtifact<T> {
  readonly artifact: string;
  readonly extension: string;
  readonly objects: T[];
}

export function groupListing<T extends { readonly key: string }>(objects: readonly T[]): BackupListing<T> {
  const backups = new Map<string, { location: SourceLocation; stamp: string; manifest: T | undefined; artifacts: T[] }>();
  const drills: ListedDrillReceipt<T>[] = [];
  for (const object of objects) {
    const parsed = parseKey(object.key);
    // WAL objects have a listing of their own (the recovery window), not one entry per file.
    if (!parsed || parsed.kind === 'wal' || parsed.kind === 'binlog') continue;
    if (parsed.kind === 'drill-receipt') {
      drills.push({ group: parsed.group, host: parsed.host, stamp: parsed.stamp, object });
      continue;
    }
    const location: SourceLocation = { tier: parsed.tier, group: parsed.group, host: parsed.host, source: parsed.source };
    const id = `${location.tier}/${location.group}/${location.host}/${location.source}/${parsed.stamp}`;
    let entry = backups.get(id);
    if (!entry) {
      entry = { location, stamp: parsed.stamp, manifest: undefined, artifacts: [] };
      backups.set(id, entry);
    }
    if (parsed.kind === 'manifest') entry.manifest = object;
    else entry.artifacts.push(object);
  }
  return { backups: [...backups.values()], drills };
}

/**
 * A backup's ciphertext objects by artifact, in the order the listing first shows each artifact;
 * an artifact's segments in segment order (the listing gives them in key order, not necessarily
 * segment 1 first).
 */
export function artifactsOf<T extends { readonly key: string }>(objects: readonly T[]): ListedArtifact<T>[] {
  const artifacts: { artifact: string; extension: string; segments: { object: T; segment: number }[] }[] = [];
  for (const object of objects) {
    const parsed = parseKey(object.key);
    if (parsed?.kind !== 'artifact') continue;
    let entry = artifacts.find((a) => a.artifact === parsed.artifact && a.extension === parsed.extension);
    if (!entry) {
      entry = { artifact: parsed.artifact, extension: parsed.extension, segments: [] };
      artifacts.push(entry);
    }
    entry.segments.push({ object, segment: parsed.segment });
  }
  return artifacts.map(({ artifact, extension, segments }) => ({ artifact, extension, objects: segments.sort((a, b) => a.segment - b.segment).map((s) => s.object) }));
}
