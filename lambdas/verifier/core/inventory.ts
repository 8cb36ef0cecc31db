import { parseKey, type SourceLocation, type Tier } from '../../../format';
import type { ListedObject } from '../../shared/ports';

/** One run of one source as the bucket listing shows it: the manifest (if any) and the ciphertexts. */
export interface ListedBackup {
  readonly location: SourceLocation;
  readonly stamp: string;
  readonly manifest: ListedObject | undefined;
  readonly artifacts: ListedObject[];
}

export interface ListedDrill {
  readonly group: string;
  readonly host: string;
  readonly stamp: string;
  readonly object: ListedObject;
}

export interface Inventory {
  readonly backups: ListedBackup[];
  readonly drills: ListedDrill[];
}

export function backupId(loc: SourceLocation, stamp: string): string {
  return `${loc.tier}/${loc.group}/${loc.host}/${loc.source}/${stamp}`;
}

export function sourceId(loc: { group: string; host: string; source: string }): string {
  return `${loc.group}/${loc.host}/${loc.source}`;
}

export function buildInventory(objects: readonly ListedObject[]): Inventory {
  const backups = new Map<string, { location: SourceLocation; stamp: string; manifest: ListedObject | undefined; artifacts: ListedObject[] }>();
  const drills: ListedDrill[] = [];
  for (const object of objects) {
    const parsed = parseKey(object.key);
    if (!parsed) continue;
    if (parsed.kind === 'drill-receipt') {
      drills.push({ group: parsed.group, host: parsed.host, stamp: parsed.stamp, object });
      continue;
    }
    const location: SourceLocation = { tier: parsed.tier as Tier, group: parsed.group, host: parsed.host, source: parsed.source };
    const id = backupId(location, parsed.stamp);
    let entry = backups.get(id);
    if (!entry) {
      entry = { location, stamp: parsed.stamp, manifest: undefined, artifacts: [] };
      backups.set(id, entry);
    }
    if (parsed.kind === 'manifest') entry.manifest = object;
    else entry.artifacts.push(object);
  }
  return { backups: [...backups.values()].sort((a, b) => a.stamp.localeCompare(b.stamp)), drills: drills.sort((a, b) => a.stamp.localeCompare(b.stamp)) };
}
