import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { reportSchema } from '../../format/verification-report';
import { PRICE_TABLE_AS_OF } from '../../format/prices';
import { STORAGE_SNAPSHOT_PREFIX } from '../../format/layout';
import { storageSnapshotKey, type StorageSnapshot } from '../../lambdas/verifier/core/storage-cost';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, drainInbox, newWorld, putBackup, putDrill, putObject, type StoredBackup, type World } from './fixtures';

/**
 * The report's answers to an auditor, from objects this test writes to moto and the real handler:
 * the recovery point with a hole of three days, the recovery time from a drill receipt with stage
 * timings, copies per tier against the promise, and bytes and cost per group with the trend
 * against a stored snapshot. moto does not serve the Price List API, so the price comes from the
 * committed table, and the report says so.
 */

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

/** Every day's dump is a daily copy: no weekly, monthly or yearly promotion, so the promise is one copy a day. */
const CALENDAR = { timeZone: 'UTC', yearly: null, monthly: null, weekly: null };
const group = (rtoHours: number) => ({ name: 'web', rpoHours: 26, rtoHours, sources: ['pg'], hosts: ['web-1'], retentionDays: { daily: 35 }, drillMaxAgeDays: 8, calendar: CALENDAR, runsPerDay: 1 });

async function readText(world: World, key: string): Promise<string> {
  return (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: key }))).Body!.transformToString();
}

/** Ten days of dailies with days 4, 5 and 6 ago missing; a drill of the oldest that took 2 h, mostly loading. */
async function fleetWithHole(world: World): Promise<{ backups: StoredBackup[]; drilled: StoredBackup }> {
  const backups: StoredBackup[] = [];
  for (let k = 9; k >= 0; k--) {
    if (k >= 4 && k <= 6) continue;
    backups.push(await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - HOUR - k * DAY), payloadBytes: 20_000 + k * 1000 }));
  }
  const drilled = backups[0];
  const bytes = drilled.manifest.artifacts[0].ciphertextBytes;
  await putDrill(world, {
    host: 'web-1',
    finishedAt: new Date(world.clock.ms - 2 * DAY),
    ok: true,
    results: [
      {
        manifestKey: drilled.manifestKey,
        source: 'pg',
        artifact: 'app',
        ok: true,
        durationMs: 7_200_000,
        timings: { downloadMs: 600_000, decryptMs: 300_000, loadMs: 6_000_000, checksMs: 300_000, ciphertextBytes: bytes },
        checks: [{ name: 'row counts', ok: true, detail: '12 tables match' }],
      },
    ],
  });
  return { backups, drilled };
}

async function plantSnapshot(world: World, daysAgo: number, bytes: number): Promise<void> {
  const at = new Date(world.clock.ms - daysAgo * DAY);
  const snapshot: StorageSnapshot = { schema: 'coldseal-storage-snapshot/1', takenAt: at.toISOString(), rows: [{ group: 'web', tier: 'daily', storageClass: 'STANDARD', objects: 2, bytes, billableBytes: bytes, standardOverheadBytes: 0, monitoredObjects: 0 }], monthlyCost: 0.01 };
  await putObject(world, storageSnapshotKey(at), JSON.stringify(snapshot), { lock: false });
}

test('the report answers per source: recovery point with its gap, recovery time from the drill, copies per tier, storage and cost; the summary names the missed targets', async () => {
  const world = await newWorld({ account, groups: [group(1)] });
  const { backups, drilled } = await fleetWithHole(world);
  await plantSnapshot(world, 60, 1000);
  await plantSnapshot(world, 30, 50_000);
  const handler = createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock });
  const result = (await handler({ action: 'sweep' })) as SweepResult;
  const report = reportSchema.parse(JSON.parse(await readText(world, result.reportKeys.json)));
  const source = report.sources[0];
  const newest = backups[backups.length - 1];

  // Recovery point: the newest backup an hour old; the worst gap from the backup 7 days ago to the one 3 days ago.
  const rp = source.recoveryPoint!;
  assert.deepEqual(rp.newestBackup, { stamp: newest.manifest.stamp, finishedAt: newest.manifest.finishedAt, ageHours: 1 });
  assert.deepEqual(rp.current, { at: newest.manifest.finishedAt, ageHours: 1, by: 'backup' });
  assert.equal(rp.log, null);
  const before = backups.find((b) => b.manifest.finishedAt === new Date(world.clock.ms - HOUR - 7 * DAY).toISOString())!;
  const after = backups.find((b) => b.manifest.finishedAt === new Date(world.clock.ms - HOUR - 3 * DAY).toISOString())!;
  const gap = { from: { at: before.manifest.finishedAt, what: `backup ${before.manifest.stamp}` }, to: { at: after.manifest.finishedAt, what: `backup ${after.manifest.stamp}` }, hours: 96 };
  assert.deepEqual(rp.worstGap, gap);
  assert.deepEqual(rp.misses, [gap]);
  const missed = result.findings.find((f) => f.check === 'rpo-missed')!;
  assert.equal(missed.severity, 'warn');
  assert.equal(missed.summary, `for 4.0 days nothing newer than ${before.manifest.finishedAt} (backup ${before.manifest.stamp}) could be restored, until ${after.manifest.finishedAt} (backup ${after.manifest.stamp}); the RPO is 26 h`);

  // Recovery time: the drill's 2 h for the drilled bytes, scaled to the newest backup; loading dominates.
  const rt = source.recoveryTime!;
  const drilledBytes = drilled.manifest.artifacts[0].ciphertextBytes;
  const newestBytes = newest.manifest.artifacts[0].ciphertextBytes;
  assert.equal(rt.rtoHours, 1);
  assert.deepEqual(rt.measured && { bytes: rt.measured.bytes, seconds: rt.measured.seconds, from: rt.measured.from, stages: rt.measured.stages }, { bytes: drilledBytes, seconds: 7200, from: 'this source', stages: { download: 600, decrypt: 300, load: 6000, checks: 300 } });
  const hours = Math.round(2 * (newestBytes / drilledBytes) * 100) / 100;
  assert.equal(rt.estimate!.hours, hours);
  assert.equal(rt.estimate!.dominant, 'load');
  assert.equal(rt.estimate!.retrieval, null);
  const slow = result.findings.find((f) => f.check === 'rto-exceeded')!;
  assert.match(slow.summary, new RegExp(`^restoring the newest backup \\(${newest.manifest.stamp}, .+\\) is estimated at ${hours.toFixed(1)} h, over the 1 h RTO; the database's load speed dominates$`));

  // Retention: ten runs promised since the first backup, seven daily copies kept.
  const daily = source.retention!.tiers.find((t) => t.tier === 'daily')!;
  assert.deepEqual({ promised: daily.promised, exist: daily.exist, inWindow: daily.inWindow, short: daily.short, oldest: daily.oldest?.stamp, replica: daily.replica }, { promised: 10, exist: 7, inWindow: 7, short: 3, oldest: backups[0].manifest.stamp, replica: null });
  assert.equal(source.retention!.copies.length, 7);

  // Storage: the listing's bytes per group, tier and class; the price table (moto has no Price List); the trend against the snapshot 30 days ago.
  const storage = report.storage!;
  const listed = (await world.s3.send(new ListObjectsV2Command({ Bucket: world.bucket, Prefix: 'backups/daily/web/' }))).Contents ?? [];
  const dailyRow = storage.rows.find((r) => r.group === 'web' && r.tier === 'daily')!;
  assert.deepEqual(dailyRow, { group: 'web', tier: 'daily', storageClass: 'STANDARD', objects: listed.length, bytes: listed.reduce((n, o) => n + (o.Size ?? 0), 0) });
  assert.equal(storage.priceOrigin, 'table');
  assert.equal(storage.region, 'us-east-1');
  assert.match(storage.priceNote, new RegExp(`^the price table committed in coldseal \\(https://aws\\.amazon\\.com/s3/pricing/, as of ${PRICE_TABLE_AS_OF}\\); the Price List API failed: `));
  assert.equal(storage.cost!.priceAsOf, PRICE_TABLE_AS_OF);
  // A few hundred KB cost less than a cent a month; the requests are at least one PUT per object written this month.
  assert.equal(storage.cost!.total, 0);
  assert.ok(storage.requests.tier1 >= listed.length, `${storage.requests.tier1} PUT/LIST for ${listed.length} objects`);
  const webTrend = storage.trend.groups.find((g) => g.group === 'web')!;
  assert.equal(webTrend.bytesThen, 50_000);
  const webBytes = storage.rows.filter((r) => r.group === 'web').reduce((n, r) => n + r.bytes, 0);
  assert.equal(webTrend.bytes, webBytes);
  assert.equal(webTrend.change, Math.round(((webBytes - 50_000) / 50_000) * 1000) / 1000);
  assert.deepEqual(storage.history.map((h) => [h.date, h.bytes.web?.STANDARD]), [
    [new Date(world.clock.ms - 60 * DAY).toISOString().slice(0, 10), 1000],
    [new Date(world.clock.ms - 30 * DAY).toISOString().slice(0, 10), 50_000],
    [report.generatedAt.slice(0, 10), storage.rows.filter((r) => r.group === 'web' && r.storageClass === 'STANDARD').reduce((n, r) => n + r.bytes, 0)],
  ]);
  const today = JSON.parse(await readText(world, storageSnapshotKey(world.clock.now()))) as StorageSnapshot;
  assert.equal(today.monthlyCost, storage.cost!.total);
  const snapshots = (await world.s3.send(new ListObjectsV2Command({ Bucket: world.bucket, Prefix: STORAGE_SNAPSHOT_PREFIX }))).Contents ?? [];
  assert.deepEqual(snapshots.map((o) => o.Key).sort(), [60, 30, 0].map((d) => storageSnapshotKey(new Date(world.clock.ms - d * DAY))));

  // The HTML has the sections and both pictures; the summary names each missed target.
  const html = await readText(world, result.reportKeys.html);
  assert.match(html, /<h3>Recovery: what can be restored, how fast, how many copies<\/h3>/);
  assert.match(html, /<svg class="picture window"/);
  assert.equal(html.match(/<rect class="copy"/g)?.length, 7);
  assert.match(html, /<h2>Storage and cost<\/h2><p><b>Estimated \$\d+\.\d\d a month<\/b> in us-east-1/);
  assert.equal(html.match(/<svg class="picture storage"/g)?.length, 1);
  const [mail] = await drainInbox(world);
  assert.ok(mail.message.includes(`Targets missed:\n- rpo-missed web/web-1/pg: 1 gap over the 26 h RPO in 30 days, worst 96.0 h from ${before.manifest.finishedAt} to ${after.manifest.finishedAt}\n- rto-exceeded web/web-1/pg: restore estimated at ${hours.toFixed(1)} h, over the 1 h RTO (load dominates)\n`), mail.message);
  assert.match(mail.message, /\nStorage: .+, about \$\d+\.\d\d a month \(price table of \d{4}-\d\d-\d\d\)\.\n/);

  // A longer RTO resolves rto-exceeded; rpo-missed, said once, stays listed without setting the status.
  const relaxed = createVerifierHandler({ env: (await newEnv(world, group(48))), clientConfig: world.account.clientConfig, clock: world.clock });
  const next = (await relaxed({ action: 'sweep' })) as SweepResult;
  assert.deepEqual(next.plan.resolved.map((r) => r.finding.check), ['rto-exceeded']);
  assert.deepEqual(next.findings.map((f) => f.check), ['rpo-missed']);
  assert.equal(next.report.status, 'OK');
  const [second] = await drainInbox(world);
  assert.ok(second.message.includes('Targets missed:\n- rpo-missed web/web-1/pg:'), second.message);
  assert.ok(!second.message.includes('rto-exceeded web/web-1/pg'), second.message);
});

/** The same world's settings with other group settings. */
async function newEnv(world: World, groupSettings: ReturnType<typeof group>): Promise<Record<string, string>> {
  return { ...world.env, COLDSEAL_GROUPS: JSON.stringify([groupSettings]) };
}
