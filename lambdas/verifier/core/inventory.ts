import { groupListing, type BackupListing, type ListedBackup as Listed, type ListedDrillReceipt } from '../../../format/backup-listing';
import type { ListedObject } from '../../shared/ports';

/** One run of one source as the bucket listing shows it: the manifest (if any) and the ciphertexts. */
export type ListedBackup = Listed<ListedObject>;

export type ListedDrill = ListedDrillReceipt<ListedObject>;

export type Inventory = BackupListing<ListedObject>;

export function sourceId(loc: { group: string; host: string; source: string }): string {
  return `${loc.group}/${loc.host}/${loc.source}`;
}

/** The listing grouped (format/backup-listing.ts), backups and drill receipts oldest first. */
export function buildInventory(objects: readonly ListedObject[]): Inventory {
  const { backups, drills } = groupListing(objects);
  return { backups: backups.sort((a, b) => a.stamp.localeCompare(b.stamp)), drills: drills.sort((a, b) => a.stamp.localeCompare(b.stamp)) };
}
