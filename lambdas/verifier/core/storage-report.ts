import { STORAGE_SNAPSHOT_PREFIX } from '../../../format/layout';
import type { Settings } from '../../../format/lambda-settings';
import type { PricedClass } from '../../../format/prices';
import type { StorageReport } from '../../../format/verification-report';
import { mapLimit } from '../../../runtime/concurrency';
import { resolvePrices, type PriceListPort } from '../../shared/price-list';
import { makeFinding, type Finding } from '../../shared/findings';
import type { BucketStore, ListedObject, Log } from '../../shared/ports';
import { estimateMonthlyRequests, estimateReplicaRequests, monthlyCost, snapshotToCompare, storageRows, storageSnapshotKey, storageTrend, type StorageRow, type StorageSnapshot } from './storage-cost';

/**
 * The report's storage section: the figures of storage-cost.ts over every object the sweep
 * listed, priced by price-list.ts, compared with the snapshot of 30 days ago, and today's
 * snapshot written to state/storage/ (a lifecycle rule expires them). The snapshots of the last
 * HISTORY_DAYS days are the picture's time axis.
 *
 * With an offsite replica the replica bucket is listed too (one paged listing a sweep, in its own
 * region, through the same narrow store port) and priced at its region's prices; a refused
 * listing is a WARN naming the missing permission, never a failed sweep.
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

/** Where the offsite replica is and a store that lists it (lambdas/shared/aws.ts S3BucketStore in the replica's region). */
export interface ReplicaListing {
  readonly store: Pick<BucketStore, 'list'>;
  readonly bucket: string;
  readonly region: string;
}

function isAccessDenied(error: unknown): boolean {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'AccessDenied' || e.Code === 'AccessDenied' || e.$metadata?.httpStatusCode === 403;
}

/** The replica's objects, or why they could not be listed (then a WARN, and the report says so). */
async function listReplica(replica: ReplicaListing, log: Log, now: Date): Promise<{ objects: ListedObject[] } | { problem: string; finding: Finding }> {
  const where = `s3://${replica.bucket} (${replica.region})`;
  try {
    return { objects: await replica.store.list('') };
  } catch (error) {
    const message = (error as Error).message || (error as Error).name;
    log.warn('the offsite replica could not be listed; its storage is left out of the report', { bucket: replica.bucket, region: replica.region, error: message });
    const denied = isAccessDenied(error);
    const problem = denied ? `listing refused (s3:ListBucket on arn:aws:s3:::${replica.bucket} is not allowed to the verifier): ${message}` : `listing failed: ${message}`;
    const action = denied
      ? `Allow s3:ListBucket on arn:aws:s3:::${replica.bucket} to the verifier's role: the replica stack's bucket policy (statement VerifierListsReplica, by the role's name) and the verifier role's own policy (VerifierListsReplica). Deploy the replica stack, then the primary.`
      : `Check that the replica bucket exists in ${replica.region} and that S3 in that region answers; the next sweep lists it again.`;
    return { problem, finding: makeFinding({ where, subject: replica.bucket, check: 'replica-unlisted', severity: 'warn', since: now.toISOString(), summary: `the offsite replica ${where} was not listed: its storage and cost are not in the report (${denied ? 'access denied: s3:ListBucket' : message.split('\n')[0]})`, action }) };
  }
}

export async function storageReport(
  deps: { readonly store: BucketStore; readonly log: Log; readonly priceList?: PriceListPort; readonly replica?: ReplicaListing },
  input: { readonly settings: Settings; readonly region: string; readonly objects: readonly ListedObject[]; readonly now: Date },
): Promise<{ report: StorageReport; findings: Finding[] }> {
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
  const previous = compareKey ? snapshots.get(compareKey) : undefined;
  const trend = storageTrend(rows, cost?.total ?? null, previous);

  const findings: Finding[] = [];
  let replicaReport: StorageReport['replica'];
  let replicaSnapshot: StorageSnapshot['replica'];
  if (deps.replica) {
    const listed = await listReplica(deps.replica, log, now);
    // The replica's own region's prices; the settings' override is for the data bucket's region.
    const replicaPrices = await resolvePrices({ store, log, priceList: deps.priceList }, { region: deps.replica.region, now });
    if ('problem' in listed) {
      findings.push(listed.finding);
      replicaReport = { bucket: deps.replica.bucket, region: deps.replica.region, listed: false, problem: listed.problem, priceNote: replicaPrices.note, priceOrigin: replicaPrices.origin, rows: [], cost: null, trend: { since: null, groups: [], monthlyCost: { now: null, then: null, change: null } }, history: [] };
    } else {
      const replicaRows = storageRows(listed.objects);
      const replicaCost = replicaPrices.prices ? monthlyCost(replicaRows, replicaPrices.prices, estimateReplicaRequests(listed.objects, now, { transitionAfterDays: transitionDays(settings) })) : null;
      replicaSnapshot = { rows: replicaRows, monthlyCost: replicaCost?.total ?? null };
      const then = previous?.replica ? { ...previous, rows: previous.replica.rows, monthlyCost: previous.replica.monthlyCost } : undefined;
      const replicaTrend = storageTrend(replicaRows, replicaCost?.total ?? null, then);
      replicaReport = {
        bucket: deps.replica.bucket,
        region: deps.replica.region,
        listed: true,
        priceNote: replicaPrices.note,
        priceOrigin: replicaPrices.origin,
        rows: replicaRows.map((r) => ({ group: r.group, tier: r.tier, storageClass: r.storageClass, objects: r.objects, bytes: r.bytes })),
        cost: replicaCost && { priceSource: replicaCost.priceSource, priceAsOf: replicaCost.priceAsOf, storage: replicaCost.storage, requests: replicaCost.requests, transitions: replicaCost.transitions, monitoring: replicaCost.monitoring, total: replicaCost.total, byGroup: { ...replicaCost.byGroup }, byClass: { ...replicaCost.byClass }, unpriced: [...replicaCost.unpriced] },
        trend: { since: replicaTrend.since, groups: replicaTrend.groups.map((g) => ({ ...g })), monthlyCost: { ...replicaTrend.monthlyCost } },
        history: [],
      };
    }
  }

  const snapshot: StorageSnapshot = { schema: 'coldseal-storage-snapshot/1', takenAt: now.toISOString(), rows, monthlyCost: cost?.total ?? null, ...(replicaSnapshot ? { replica: replicaSnapshot } : {}) };
  await store.put(todayKey, `${JSON.stringify(snapshot)}\n`, 'application/json');

  const days = [...recent.flatMap((k) => (snapshots.has(k) ? [snapshots.get(k)!] : [])), snapshot];
  const history = days.map((s) => ({ date: s.takenAt.slice(0, 10), bytes: bytesByGroupClass(s.rows) }));
  if (replicaReport?.listed) replicaReport.history = days.flatMap((s) => (s.replica ? [{ date: s.takenAt.slice(0, 10), bytes: bytesByGroupClass(s.replica.rows) }] : []));
  const report: StorageReport = {
    region: input.region,
    priceNote: resolved.note,
    priceOrigin: resolved.origin,
    rows: rows.map((r) => ({ group: r.group, tier: r.tier, storageClass: r.storageClass, objects: r.objects, bytes: r.bytes })),
    cost: cost && { ...cost, unpriced: [...cost.unpriced], byGroup: { ...cost.byGroup }, byClass: { ...cost.byClass } },
    requests: { tier1: requests.tier1, tier2: requests.tier2, assumptions: [...requests.assumptions] },
    trend: { since: trend.since, groups: trend.groups.map((g) => ({ ...g })), monthlyCost: { ...trend.monthlyCost } },
    history,
    // A stack from before the replica's listing sets the replica's pending hours but not its bucket.
    ...(replicaConfigured && !deps.replica ? { replicaNote: 'The offsite replica bucket is not listed: the verifier was not told its bucket and region (COLDSEAL_REPLICA_BUCKET, COLDSEAL_REPLICA_REGION; deploy the stack again to set them).' } : {}),
    ...(replicaReport ? { replica: replicaReport } : {}),
  };
  return { report, findings };
}
