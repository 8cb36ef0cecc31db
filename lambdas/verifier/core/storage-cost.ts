import { BACKUPS_PREFIX, DRILLS_PREFIX, parseKey, STORAGE_SNAPSHOT_PREFIX, WAL_PREFIX } from '../../../format/layout';
import { ARCHIVE_INDEX_BYTES, ARCHIVE_STANDARD_OVERHEAD_BYTES, GB, pricedClass, SMALL_OBJECT_MINIMUM_BYTES, type PricedClass, type PriceTable } from '../../../format/prices';
import { REPLICATED_PREFIXES } from '../../../format/replica';

/**
 * What the vault holds and what it costs a month: bytes per group, tier and storage class from
 * the bucket listing (each object's Size and StorageClass), the replica's from its own listing,
 * priced with the table lambdas/shared/price-list.ts resolved (Price List, cache or committed
 * table, named in the result), and the change against a snapshot stored 30 days earlier.
 *
 * The cost follows S3's billing rules as format/prices.ts states them (128 KiB minimum in
 * Standard-IA and Glacier Instant Retrieval, 40 KiB more per archived object, Intelligent-
 * Tiering's monitoring fee). Requests are estimated from what coldseal itself does in a month
 * (estimateMonthlyRequests): the agents' uploads, the verifier's listings, heads and reads, the
 * lifecycle's transitions; what anyone else does with the bucket is not in it, nor are retrievals
 * and data transfer out, which happen only on a restore.
 */

const DAY_MS = 86_400_000;
const MONTH_DAYS = 30;
/** The agent's default part size (agent/src/backup/upload/size-plan.ts DEFAULT_PART_SIZE): each part is one PUT. */
export const DEFAULT_PART_BYTES = 8 * 2 ** 20;

export interface StoredObject {
  readonly key: string;
  readonly size: number;
  readonly storageClass: string;
  readonly lastModified: Date;
}

/** A key's place in the report: its group and tier; the PITR archive, drill receipts, and the deployment's own reports and state apart. */
export function placeOf(key: string): { group: string; tier: string } {
  const parsed = parseKey(key);
  if (parsed?.kind === 'artifact' || parsed?.kind === 'manifest') return { group: parsed.group, tier: parsed.tier };
  if (parsed?.kind === 'wal' || parsed?.kind === 'binlog') return { group: parsed.group, tier: 'pitr' };
  if (parsed?.kind === 'drill-receipt') return { group: parsed.group, tier: 'drills' };
  return { group: '(deployment)', tier: key.split('/')[0] };
}

export interface StorageRow {
  readonly group: string;
  readonly tier: string;
  readonly storageClass: string;
  readonly objects: number;
  readonly bytes: number;
  /** Bytes S3 bills at this class: small objects rounded up, archive index added. */
  readonly billableBytes: number;
  /** Bytes S3 bills at S3 Standard for these objects (the 8 KiB of each archived object). */
  readonly standardOverheadBytes: number;
  /** Intelligent-Tiering objects that pay the monitoring fee (128 KiB and more). */
  readonly monitoredObjects: number;
}

/** Bytes per group, tier and storage class, sorted by group, tier and class. */
export function storageRows(objects: readonly StoredObject[]): StorageRow[] {
  const rows = new Map<string, { -readonly [K in keyof StorageRow]: StorageRow[K] }>();
  for (const o of objects) {
    const { group, tier } = placeOf(o.key);
    const id = `${group}\u0000${tier}\u0000${o.storageClass}`;
    let row = rows.get(id);
    if (!row) {
      row = { group, tier, storageClass: o.storageClass, objects: 0, bytes: 0, billableBytes: 0, standardOverheadBytes: 0, monitoredObjects: 0 };
      rows.set(id, row);
    }
    row.objects++;
    row.bytes += o.size;
    const archived = o.storageClass === 'GLACIER' || o.storageClass === 'DEEP_ARCHIVE';
    const minimum = o.storageClass === 'STANDARD_IA' || o.storageClass === 'GLACIER_IR' ? SMALL_OBJECT_MINIMUM_BYTES : 0;
    row.billableBytes += Math.max(o.size, minimum) + (archived ? ARCHIVE_INDEX_BYTES : 0);
    row.standardOverheadBytes += archived ? ARCHIVE_STANDARD_OVERHEAD_BYTES : 0;
    if (o.storageClass === 'INTELLIGENT_TIERING' && o.size >= SMALL_OBJECT_MINIMUM_BYTES) row.monitoredObjects++;
  }
  return [...rows.values()].sort((a, b) => a.group.localeCompare(b.group) || a.tier.localeCompare(b.tier) || a.storageClass.localeCompare(b.storageClass));
}

export interface MonthlyRequests {
  /** PUT, COPY, POST, LIST. */
  readonly tier1: number;
  /** GET, HEAD. */
  readonly tier2: number;
  /** Objects the lifecycle moves into each class in a month. */
  readonly transitions: Partial<Record<PricedClass, number>>;
  /** Bytes written to replicated prefixes in a month: what replication copies to the other region. */
  readonly replicatedBytes: number;
  /** What the estimate assumes, for the report. */
  readonly assumptions: readonly string[];
}

/**
 * The requests coldseal makes in a month, from the listing: every object written in the last 30
 * days was uploaded in parts (one PUT each, plus create and complete for a multipart upload) and
 * read once in full by the verifier; every sweep lists the bucket (1,000 keys a page) and heads
 * each backup object; readable backup objects are read again every reverifyDays. An object in an
 * archive class moved there `transitionAfterDays` after it was written: those that moved within
 * the last 30 days are the month's transitions.
 */
export function estimateMonthlyRequests(
  objects: readonly StoredObject[],
  now: Date,
  options: { readonly partBytes?: number; readonly sweepsPerDay?: number; readonly reverifyDays?: number; readonly replicaConfigured?: boolean; readonly transitionAfterDays?: Partial<Record<PricedClass, number>> } = {},
): MonthlyRequests {
  const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
  const sweeps = (options.sweepsPerDay ?? 1) * MONTH_DAYS;
  const reverifyDays = options.reverifyDays ?? 30;
  const monthAgo = now.getTime() - MONTH_DAYS * DAY_MS;
  const parts = (size: number) => Math.max(1, Math.ceil(size / partBytes));
  let tier1 = sweeps * Math.max(1, Math.ceil(objects.length / 1000));
  let tier2 = 0;
  let replicatedBytes = 0;
  const transitions: Partial<Record<PricedClass, number>> = {};
  for (const o of objects) {
    const written = o.lastModified.getTime();
    const backup = o.key.startsWith(BACKUPS_PREFIX);
    const logged = backup || o.key.startsWith(WAL_PREFIX) || o.key.startsWith(DRILLS_PREFIX);
    if (written > monthAgo && logged) {
      tier1 += o.size > partBytes ? parts(o.size) + 2 : 1;
      tier2 += parts(o.size);
      if (options.replicaConfigured && REPLICATED_PREFIXES.some((p) => o.key.startsWith(p))) replicatedBytes += o.size;
    }
    if (backup) {
      tier2 += sweeps;
      if (o.storageClass !== 'GLACIER' && o.storageClass !== 'DEEP_ARCHIVE') tier2 += (parts(o.size) * MONTH_DAYS) / reverifyDays;
    }
    const cls = pricedClass(o.storageClass);
    if (cls && cls !== 'STANDARD') {
      const moved = written + (options.transitionAfterDays?.[cls] ?? 0) * DAY_MS;
      if (moved > monthAgo && moved <= now.getTime()) transitions[cls] = (transitions[cls] ?? 0) + 1;
    }
  }
  return {
    tier1: Math.round(tier1),
    tier2: Math.round(tier2),
    transitions,
    replicatedBytes,
    assumptions: [
      `${partBytes / 2 ** 20} MiB upload parts`,
      `${sweeps / MONTH_DAYS} verifier sweep(s) a day listing the bucket and heading each backup object`,
      `each new object read once in full, readable backups again every ${reverifyDays} days`,
    ],
  };
}

/**
 * The requests the replica bucket is billed for in a month: one replication PUT per object S3
 * copied there in the last 30 days (replication writes each object with one request, billed at
 * the destination's PUT price: "S3 Replication pricing", https://aws.amazon.com/s3/pricing/, tab
 * "Replication"), the verifier's one listing a sweep, and the replica lifecycle's transitions
 * (estimated with the primary's transition days: the replica may archive sooner, which the
 * listing's storage classes show but the transition count does not).
 */
export function estimateReplicaRequests(
  objects: readonly StoredObject[],
  now: Date,
  options: { readonly sweepsPerDay?: number; readonly transitionAfterDays?: Partial<Record<PricedClass, number>> } = {},
): MonthlyRequests {
  const sweeps = (options.sweepsPerDay ?? 1) * MONTH_DAYS;
  const all = estimateMonthlyRequests(objects, now, { transitionAfterDays: options.transitionAfterDays });
  const monthAgo = now.getTime() - MONTH_DAYS * DAY_MS;
  const replicated = objects.filter((o) => o.lastModified.getTime() > monthAgo).length;
  return {
    tier1: sweeps * Math.max(1, Math.ceil(objects.length / 1000)) + replicated,
    tier2: 0,
    transitions: all.transitions,
    replicatedBytes: 0,
    assumptions: [`one replication PUT per object replicated in the last ${MONTH_DAYS} days`, `${sweeps / MONTH_DAYS} verifier listing(s) a day`, 'transitions on the data bucket\'s lifecycle days'],
  };
}

export interface StorageCost {
  readonly currency: 'USD';
  readonly region: string;
  readonly priceSource: string;
  readonly priceAsOf: string;
  readonly storage: number;
  readonly requests: number;
  readonly transitions: number;
  readonly monitoring: number;
  /** Copying this month's new objects to the replica's region (billed to the source bucket's account). */
  readonly replication: number;
  readonly total: number;
  /** Storage cost per group and per class. */
  readonly byGroup: Readonly<Record<string, number>>;
  readonly byClass: Readonly<Record<string, number>>;
  /** Classes the table does not price (e.g. REDUCED_REDUNDANCY): their bytes are not in the total. */
  readonly unpriced: readonly { readonly storageClass: string; readonly bytes: number }[];
}

const cents = (n: number) => Math.round(n * 100) / 100;

export function monthlyCost(rows: readonly StorageRow[], prices: PriceTable, requests?: MonthlyRequests): StorageCost {
  const byGroup: Record<string, number> = {};
  const byClass: Record<string, number> = {};
  const unpriced = new Map<string, number>();
  let storage = 0;
  let monitoring = 0;
  for (const row of rows) {
    const cls = pricedClass(row.storageClass);
    if (!cls) {
      unpriced.set(row.storageClass, (unpriced.get(row.storageClass) ?? 0) + row.bytes);
      continue;
    }
    const cost = (row.billableBytes / GB) * prices.storagePerGbMonth[cls] + (row.standardOverheadBytes / GB) * prices.storagePerGbMonth.STANDARD;
    storage += cost;
    byGroup[row.group] = (byGroup[row.group] ?? 0) + cost;
    byClass[cls] = (byClass[cls] ?? 0) + cost;
    monitoring += (row.monitoredObjects / 1000) * prices.intelligentTieringMonitoringPer1000Objects;
  }
  const requestCost = requests ? (requests.tier1 / 1000) * prices.requestsPer1000.tier1 + (requests.tier2 / 1000) * prices.requestsPer1000.tier2 : 0;
  const transitions = requests ? Object.entries(requests.transitions).reduce((n, [cls, count]) => n + (count / 1000) * (prices.transitionsPer1000[cls as PricedClass] ?? 0), 0) : 0;
  const replication = requests ? (requests.replicatedBytes / GB) * prices.interRegionTransferPerGb : 0;
  const round = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, cents(v)]));
  return {
    currency: 'USD',
    region: prices.region,
    priceSource: prices.source,
    priceAsOf: prices.asOf,
    storage: cents(storage),
    requests: cents(requestCost),
    transitions: cents(transitions),
    monitoring: cents(monitoring),
    replication: cents(replication),
    total: cents(storage + requestCost + transitions + monitoring + replication),
    byGroup: round(byGroup),
    byClass: round(byClass),
    unpriced: [...unpriced].map(([storageClass, bytes]) => ({ storageClass, bytes })),
  };
}

/** One day's figures, kept in the bucket's state so that a later report can say what changed. */
export interface StorageSnapshot {
  readonly schema: 'coldseal-storage-snapshot/1';
  readonly takenAt: string;
  readonly rows: readonly StorageRow[];
  readonly monthlyCost: number | null;
  readonly replica?: { readonly rows: readonly StorageRow[]; readonly monthlyCost: number | null };
}

export const storageSnapshotKey = (date: Date) => `${STORAGE_SNAPSHOT_PREFIX}${date.toISOString().slice(0, 10)}.json`;

/** The stored snapshot nearest to `days` ago, within a week of it; undefined when there is none (a young deployment). */
export function snapshotToCompare(keys: readonly string[], now: Date, days = MONTH_DAYS): string | undefined {
  const target = now.getTime() - days * DAY_MS;
  let best: { key: string; distance: number } | undefined;
  for (const key of keys) {
    const m = /(\d{4}-\d{2}-\d{2})\.json$/.exec(key);
    if (!key.startsWith(STORAGE_SNAPSHOT_PREFIX) || !m) continue;
    const distance = Math.abs(Date.parse(`${m[1]}T00:00:00Z`) - target);
    if (distance <= 7 * DAY_MS && (!best || distance < best.distance)) best = { key, distance };
  }
  return best?.key;
}

export interface StorageTrend {
  /** When the compared snapshot was taken; null without one. */
  readonly since: string | null;
  readonly groups: readonly { readonly group: string; readonly bytes: number; readonly bytesThen: number | null; readonly change: number | null }[];
  readonly monthlyCost: { readonly now: number | null; readonly then: number | null; readonly change: number | null };
}

const sumBytes = (rows: readonly StorageRow[], group: string) => rows.filter((r) => r.group === group).reduce((n, r) => n + r.bytes, 0);

/** Bytes per group and the monthly cost now and then; change is a ratio (0.25 = a quarter more). */
export function storageTrend(rows: readonly StorageRow[], monthlyCostNow: number | null, previous: StorageSnapshot | undefined): StorageTrend {
  const ratio = (now: number | null, then: number | null) => (now === null || then === null || then === 0 ? null : Math.round(((now - then) / then) * 1000) / 1000);
  const groups = [...new Set([...rows.map((r) => r.group), ...(previous?.rows ?? []).map((r) => r.group)])].sort();
  return {
    since: previous?.takenAt ?? null,
    groups: groups.map((group) => {
      const bytes = sumBytes(rows, group);
      const bytesThen = previous ? sumBytes(previous.rows, group) : null;
      return { group, bytes, bytesThen, change: ratio(bytes, bytesThen) };
    }),
    monthlyCost: { now: monthlyCostNow, then: previous?.monthlyCost ?? null, change: ratio(monthlyCostNow, previous?.monthlyCost ?? null) },
  };
}
