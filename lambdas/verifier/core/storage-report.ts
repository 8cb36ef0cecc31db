import { STORAGE_SNAPSHOT_PREFIX } from '../../../format/layout';
import type { Settings } from '../../../format/lambda-settings';
import type { PricedClass } from '../../../format/prices';
import type { StorageReport } from '../../../format/verification-report';
import { mapLimit } from '../../../runtime/concurrency';
import { resolvePrices, type PriceListPort } from '../../shared/price-list';
import type { BucketStore, ListedObject, Log } from '../../shared/ports';
import { estimateMonthlyRequests, monthlyCost, snapshotToCompare, storageRows, storageSnapshotKey, storageTrend, type StorageRow, type StorageSnapshot } from './storage-cost';

/**
 * The report's storage section: the figures of storage-cost.ts over every object the sweep
 * listed, priced by price-list.ts, compared with the snapshot of 30 days ago, and today's
 * snapshot written to state/storage/ (a lifecycle rule expires them). The snapshots of the last
 * HISTORY_DAYS days are the picture's time axis.
 */

export const HISTORY_DAYS = 90;
const DAY_MS = 86_400_000;

/** The earliest day after which each class is reached, over the groups (one estimate for the bucket). */
function transitionDays(settings: Settings): Partial<Record<PricedClass, number>> | undefined {
  const out: Partial<Record<PricedClass, number>> = {};
  for (const g of settings.groups) for (const [cls, days] of Object.entries(g.transitionAfterDays ?? {}) as [PricedClass, number][]) out[cls] = Math.min(out[cls] ?? days, days);
  return Object.keys(out).length ? out : undefined;
}

function bytesByGroupClass(rows: readonly Pick<StorageRow, 'group' | 'storageClass' | 'bytes'>[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows) {
    const g = (out[r.group] ??= {});
    g[r.storageClass] = (g[r.storageClass] ?? 0) + r.bytes;
  }
  return out;
}

async function readSnapshot(store: BucketStore, key: string, log: Log): Promise<StorageSnapshot | undefined> {
  const text = await store.getText(key);
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as StorageSnapshot;
    return parsed.schema === 'coldseal-storage-snapshot/1' && Array.isArray(parsed.rows) ? parsed : undefined;
  } catch {
    log.warn('storage snapshot is not JSON; left out of the trend', { key });
    return undefined;
  }
}

export async function storageReport(
  deps: { readonly store: BucketStore; readonly log: Log; readonly priceList?: PriceListPort },
  input: { readonly settings: Settings; readonly region: string; readonly objects: readonly ListedObject[]; readonly now: Date },
): Promise<StorageReport> {
  const { store, log } = deps;
  const { settings, now } = input;
  const rows = storageRows(input.objects);
  const replicaConfigured = settings.replicaMaxPendingHours !== undefined;
  const requests = estimateMonthlyRequests(input.objects, now, { reverifyDays: settings.reverifyDays, replicaConfigured, transitionAfterDays: transitionDays(settings) });
  const resolved = await resolvePrices({ store, log, priceList: deps.priceList }, { region: input.region, now, override: settings.priceOverride });
  const cost = resolved.prices ? monthlyCost(rows, resolved.prices, requests) : null;

  const snapshotKeys = (await store.list(STORAGE_SNAPSHOT_PREFIX)).map((o) => o.key);
  const todayKey = storageSnapshotKey(now);
  const compareKey = snapshotToCompare(snapshotKeys, now);
  const since = now.getTime() - HISTORY_DAYS * DAY_MS;
  const recent = snapshotKeys.filter((k) => k !== todayKey && /(\d{4}-\d{2}-\d{2})\.json$/.test(k) && Date.parse(`${/(\d{4}-\d{2}-\d{2})\.json$/.exec(k)![1]}T00:00:00Z`) >= since).sort();
  const snapshots = new Map<string, StorageSnapshot>();
  await mapLimit([...new Set([...recent, ...(compareKey ? [compareKey] : [])])], 8, async (key) => {
    const s = await readSnapshot(store, key, log);
    if (s) snapshots.set(key, s);
  });
  const trend = storageTrend(rows, cost?.total ?? null, compareKey ? snapshots.get(compareKey) : undefined);

  const snapshot: StorageSnapshot = { schema: 'coldseal-storage-snapshot/1', takenAt: now.toISOString(), rows, monthlyCost: cost?.total ?? null };
  await store.put(todayKey, `${JSON.stringify(snapshot)}\n`, 'application/json');

  const history = [...recent.flatMap((k) => (snapshots.has(k) ? [snapshots.get(k)!] : [])), snapshot].map((s) => ({ date: s.takenAt.slice(0, 10), bytes: bytesByGroupClass(s.rows) }));
  return {
    region: input.region,
    priceNote: resolved.note,
    priceOrigin: resolved.origin,
    rows: rows.map((r) => ({ group: r.group, tier: r.tier, storageClass: r.storageClass, objects: r.objects, bytes: r.bytes })),
    cost: cost && { ...cost, unpriced: [...cost.unpriced], byGroup: { ...cost.byGroup }, byClass: { ...cost.byClass } },
    requests: { tier1: requests.tier1, tier2: requests.tier2, assumptions: [...requests.assumptions] },
    trend: { since: trend.since, groups: trend.groups.map((g) => ({ ...g })), monthlyCost: { ...trend.monthlyCost } },
    history,
    ...(replicaConfigured ? { replicaNote: 'The offsite replica bucket is not listed by the verifier: its storage is billed in its own region and account, about the same bytes as the replicated prefixes here (backups/, wal/, drills/).' } : {}),
  };
}
