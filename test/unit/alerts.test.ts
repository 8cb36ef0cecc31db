import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALERT_STATE_PREFIX } from '../../format/layout';
import type { RangeRequest, RangeResponse } from '../../runtime/part-reader';
import { makeFinding, type Finding } from '../../lambdas/shared/findings';
import type { BucketStore, Clock, ListedObject, Log, ObjectHead } from '../../lambdas/shared/ports';
import { alertMessage, alertStateKey, findingBlock, hasNews, listBlocks, loadAlertRecords, reconcileAlerts, type AlertDeps, type AlertPlan } from '../../lambdas/shared/alerts';

/** The data bucket's alert state as a map, with S3's conditional create (If-None-Match: *). */
class MemoryBucket implements BucketStore {
  readonly objects = new Map<string, string>();
  /** Keys another invocation creates between our list and our put. */
  readonly racedBy = new Set<string>();
  async list(prefix: string): Promise<ListedObject[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).map((key) => ({ key, size: 1, lastModified: new Date(0), storageClass: 'STANDARD' }));
  }
  async head(): Promise<ObjectHead | null> {
    throw new Error('not used by alerts');
  }
  async getText(key: string): Promise<string | null> {
    return this.objects.get(key) ?? null;
  }
  async fetchRange(_request: RangeRequest): Promise<RangeResponse> {
    throw new Error('not used by alerts');
  }
  async getRange(): Promise<AsyncIterable<Uint8Array>> {
    throw new Error('not used by alerts');
  }
  async put(key: string, body: string | Uint8Array, _type: string, options: { onlyIfAbsent?: boolean } = {}): Promise<boolean> {
    if (this.racedBy.has(key)) this.objects.set(key, '{"raced":true}');
    if (options.onlyIfAbsent && this.objects.has(key)) return false;
    this.objects.set(key, String(body));
    return true;
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

class SettableClock implements Clock {
  constructor(public at: Date) {}
  now(): Date {
    return this.at;
  }
  advanceHours(h: number): void {
    this.at = new Date(this.at.getTime() + h * 3_600_000);
  }
}

const warnings: string[] = [];
const log: Log = { debug() {}, info() {}, warn: (m) => warnings.push(m), error() {} };
const rpo = (host: string, extra: Partial<Finding> = {}): Finding => ({ ...makeFinding({ check: 'rpo', severity: 'fail', group: 'web', host, source: 'pg', subject: `web/${host}/pg`, where: `s3://b/backups/*/web/${host}/pg/`, since: '2026-11-22T01:00:00.000Z', summary: `${host} is late`, action: 'run it' }), ...extra });

function world(): { deps: AlertDeps; bucket: MemoryBucket; clock: SettableClock } {
  const bucket = new MemoryBucket();
  const clock = new SettableClock(new Date('2026-11-23T00:00:00Z'));
  return { bucket, clock, deps: { store: bucket, clock, log, settings: { repeatHours: 24 } } };
}
const ids = (plan: AlertPlan) => ({ opened: plan.opened.map((f) => f.id), reminded: plan.reminded.map((r) => r.finding.id), quiet: plan.quiet.map((q) => q.finding.id), resolved: plan.resolved.map((r) => r.id) });

test('a problem is announced once, kept quiet until repeatHours pass, reminded, then resolved by a full run', async () => {
  const { deps, bucket, clock } = world();
  const first = await reconcileAlerts(deps, [rpo('web-1'), rpo('web-1')]);
  assert.deepEqual(ids(first), { opened: ['rpo:web/web-1/pg'], reminded: [], quiet: [], resolved: [] }, 'a finding repeated in one run counts once');
  assert.ok(hasNews(first));
  assert.deepEqual([...bucket.objects.keys()], [alertStateKey('rpo:web/web-1/pg')]);

  clock.advanceHours(23.9);
  const quiet = await reconcileAlerts(deps, [rpo('web-1')]);
  assert.deepEqual(ids(quiet), { opened: [], reminded: [], quiet: ['rpo:web/web-1/pg'], resolved: [] });
  assert.equal(hasNews(quiet), false);

  clock.advanceHours(0.1);
  const reminded = await reconcileAlerts(deps, [rpo('web-1', { summary: 'later still' })]);
  assert.deepEqual(ids(reminded).reminded, ['rpo:web/web-1/pg']);
  const record = reminded.reminded[0].record;
  assert.deepEqual([record.alertCount, record.firstSeenAt, record.lastAlertedAt, record.finding.summary], [2, '2026-11-23T00:00:00.000Z', '2026-11-24T00:00:00.000Z', 'later still']);
  assert.equal(JSON.parse(bucket.objects.get(alertStateKey(record.id))!).alertCount, 2, 'the reminder is recorded');

  // A partial run (no `covers`) never resolves; a full run that looked at web-1 does.
  assert.deepEqual(ids(await reconcileAlerts(deps, [])).resolved, []);
  const resolved = await reconcileAlerts(deps, [], (f) => f.host === 'web-1');
  assert.deepEqual(ids(resolved).resolved, ['rpo:web/web-1/pg']);
  assert.equal(bucket.objects.size, 0);
});

test('a full run resolves only what it covers; what it did not look at stays open', async () => {
  const { deps, bucket } = world();
  await reconcileAlerts(deps, [rpo('web-1'), rpo('web-2')]);
  const plan = await reconcileAlerts(deps, [], (f) => f.host === 'web-2');
  assert.deepEqual(ids(plan).resolved, ['rpo:web/web-2/pg']);
  assert.deepEqual([...bucket.objects.keys()], [alertStateKey('rpo:web/web-1/pg')]);
});

test('said once: never reminded, and its end is not news', async () => {
  const { deps, bucket, clock } = world();
  const once = rpo('web-1', { once: true });
  assert.deepEqual(ids(await reconcileAlerts(deps, [once])).opened, [once.id]);
  clock.advanceHours(100);
  assert.deepEqual(ids(await reconcileAlerts(deps, [once])).quiet, [once.id]);
  const end = await reconcileAlerts(deps, [], () => true);
  assert.deepEqual(ids(end).resolved, []);
  assert.equal(bucket.objects.size, 0, 'its record is deleted all the same');
});

test('two invocations at once: the one whose conditional create loses stays quiet', async () => {
  const { deps, bucket } = world();
  bucket.racedBy.add(alertStateKey('rpo:web/web-1/pg'));
  const plan = await reconcileAlerts(deps, [rpo('web-1'), rpo('web-2')]);
  assert.deepEqual(ids(plan), { opened: ['rpo:web/web-2/pg'], reminded: [], quiet: ['rpo:web/web-1/pg'], resolved: [] });
});

test('loadAlertRecords: unreadable objects and records stored under another id\'s key are skipped', async () => {
  const { bucket } = world();
  const good = { id: 'rpo:a', finding: rpo('a'), firstSeenAt: 'x', lastAlertedAt: 'x', alertCount: 1 };
  bucket.objects.set(alertStateKey('rpo:a'), JSON.stringify(good));
  bucket.objects.set(alertStateKey('rpo:b'), JSON.stringify({ ...good, id: 'rpo:c' }));
  bucket.objects.set(`${ALERT_STATE_PREFIX}broken.json`, '{');
  warnings.length = 0;
  const records = await loadAlertRecords(bucket, log);
  assert.deepEqual([...records.keys()], ['rpo:a']);
  assert.deepEqual(warnings, ['ignoring unreadable alert state object']);
  assert.match(alertStateKey('anything'), new RegExp(`^${ALERT_STATE_PREFIX}[0-9a-f]{40}\\.json$`));
  assert.notEqual(alertStateKey('rpo:a'), alertStateKey('rpo:b'));
});

test('findingBlock: tag, severity, check, subject and tier; a long detail keeps its first line and its tail', () => {
  const detail = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n');
  const lines = findingBlock('NEW', rpo('web-1', { tier: 'daily', detail }));
  assert.deepEqual(lines.slice(0, 4), ['NEW FAIL Backup older than RPO - web/web-1/pg, daily', '  web-1 is late', '  where: s3://b/backups/*/web/web-1/pg/', '  since: 2026-11-22T01:00:00.000Z']);
  assert.deepEqual(lines.slice(4, 7), ['  | line 1', '  | ...', '  | line 15']);
  assert.equal(lines.at(-2), '  | line 30');
  assert.equal(lines.filter((l) => l.startsWith('  | ')).length, 18);
  assert.equal(lines.at(-1), '  do:    run it');
});

test('listBlocks and alertMessage: at most eight findings listed, the rest counted; resolutions after; subject says what changed', () => {
  const opened = Array.from({ length: 10 }, (_, i) => rpo(`web-${i}`));
  const record = { id: 'rpo:web/old/pg', finding: rpo('old'), firstSeenAt: '2026-11-20T00:00:00.000Z', lastAlertedAt: '2026-11-20T00:00:00.000Z', alertCount: 1 };
  const plan: AlertPlan = { opened, reminded: [], quiet: [], resolved: [record] };
  const lines = listBlocks(plan, []);
  assert.equal(lines.filter((l) => l.startsWith('NEW ')).length, 8);
  assert.ok(lines.includes('... and 2 more findings in the full report.'));
  assert.equal(lines.at(-1), 'RESOLVED Backup older than RPO - web/old/pg: old is late (open since 2026-11-20T00:00:00.000Z)');
  const message = alertMessage({ origin: 'monitor', plan, footer: ['-- footer'] });
  assert.equal(message.subject, 'coldseal FAIL: 10 new, 1 resolved (monitor) - Backup older than RPO on web/web-0/pg');
  assert.equal(message.status, 'FAIL');
  assert.ok(message.body.endsWith('\n-- footer\n'));
  const onlyResolved = alertMessage({ origin: 'verifier', plan: { opened: [], reminded: [], quiet: [], resolved: [record] } });
  assert.equal(onlyResolved.subject, 'coldseal RESOLVED: 1 resolved (verifier) - Backup older than RPO on web/old/pg');
  assert.equal(onlyResolved.status, 'OK');
});
