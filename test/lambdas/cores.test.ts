import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadSettings, settingsEnvironment, SettingsError } from '../../format/lambda-settings';
import { retentionFindings, sourceFindings, median, type HistoryEntry } from '../../lambdas/verifier/core/fleet';
import { tierOf, tail } from '../../lambdas/monitor/core/command-failure';
import { alertMessage, subjectLine } from '../../lambdas/shared/alerts';
import { makeFinding } from '../../lambdas/shared/findings';
import { historyChart } from '../../lambdas/verifier/core/report-builder';
import { stampOf } from '../../format/layout';

/** The pure parts, without moto: settings, fleet arithmetic, message shaping. */
const DAY = 86_400_000;
const NOW = new Date('2026-11-22T06:00:00Z');
const group = { name: 'db', rpoHours: 26, sources: ['pg'], hosts: [], retentionDays: { daily: 35, weekly: 90 }, drillMaxAgeDays: null };

function entry(daysAgo: number, tier: 'daily' | 'weekly', bytes = 1000): HistoryEntry {
  const finishedAt = new Date(NOW.getTime() - daysAgo * DAY).toISOString();
  return { stamp: stampOf(new Date(finishedAt)), tier, manifestKey: `backups/${tier}/db/h/pg/x.manifest.json`, startedAt: finishedAt, finishedAt, durationSeconds: 10, bytes, ciphertextBytes: bytes + 100, empty: false, emptyArtifacts: [] };
}

test('settings: the stack writes what the handlers read; mistakes are named', () => {
  const env = settingsEnvironment({ bucket: 'my-backups', topicArn: 'arn:aws:sns:eu-west-1:123456789012:alerts', groups: [{ name: 'db', sources: ['pg'] }] });
  const s = loadSettings(env);
  assert.equal(s.parameterPrefix, '/coldseal');
  assert.deepEqual(s.groups, [{ name: 'db', rpoHours: 26, sources: ['pg'], hosts: [], retentionDays: {}, drillMaxAgeDays: null }]);
  assert.equal(s.tagKey, 'coldseal-group');
  assert.equal(s.repeatHours, 24);
  assert.equal(s.hashBudgetBytes, undefined);
  assert.throws(
    () => loadSettings({ ...env, COLDSEAL_BUCKET: 'Not_A_Bucket', COLDSEAL_GROUPS: '[{"name":"db","sources":[]}]' }),
    (error: Error) => error instanceof SettingsError && error.message.includes('\nCOLDSEAL_BUCKET: must be an S3 bucket name\n') && error.message.endsWith('\nCOLDSEAL_GROUPS[0].sources: Too small: expected array to have >=1 items'),
  );
  assert.throws(() => loadSettings({ ...env, COLDSEAL_GROUPS: '[{"name":"db","sources":["pg"]},{"name":"db","sources":["x"]}]' }), /group "db" is listed twice/);
  assert.throws(() => loadSettings({ ...env, COLDSEAL_GROUPS: 'db' }), /COLDSEAL_GROUPS[\s\S]*is not JSON/);
  // The offsite replica to list: bucket and region together, or not at all.
  assert.equal(s.replica, undefined);
  assert.deepEqual(loadSettings({ ...env, COLDSEAL_REPLICA_BUCKET: 'coldseal-replica-222233334444-eu-west-3', COLDSEAL_REPLICA_REGION: 'eu-west-3' }).replica, { bucket: 'coldseal-replica-222233334444-eu-west-3', region: 'eu-west-3' });
  assert.throws(() => loadSettings({ ...env, COLDSEAL_REPLICA_BUCKET: 'coldseal-replica-222233334444-eu-west-3' }), /COLDSEAL_REPLICA_BUCKET: COLDSEAL_REPLICA_BUCKET and COLDSEAL_REPLICA_REGION go together/);
  assert.throws(() => loadSettings({ ...env, COLDSEAL_REPLICA_BUCKET: 'b-1', COLDSEAL_REPLICA_REGION: 'Paris' }), /COLDSEAL_REPLICA_REGION: must be an AWS region/);
});

test('copies per tier: lifecycle not expiring, and too few copies for the history, are findings', () => {
  const daily = Array.from({ length: 30 }, (_, i) => entry(30 - i, 'daily'));
  const weekly = [35, 28, 21, 14, 7].map((d) => entry(d, 'weekly'));
  assert.deepEqual(retentionFindings({ group, host: 'h', source: 'pg', history: [...daily, ...weekly].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt)), now: NOW, bucket: 'b' }), []);

  const stale = [entry(40, 'daily'), entry(38, 'daily'), ...daily];
  const [expired] = retentionFindings({ group, host: 'h', source: 'pg', history: stale, now: NOW, bucket: 'b' });
  assert.equal(expired.summary, `2 daily copies are older than the 35-day retention (oldest ${stampOf(new Date(NOW.getTime() - 40 * DAY))}): lifecycle is not expiring them`);

  const sparse = [entry(30, 'daily'), entry(20, 'daily'), entry(1, 'daily')];
  const [few] = retentionFindings({ group, host: 'h', source: 'pg', history: sparse, now: NOW, bucket: 'b' });
  assert.equal(few.summary, '3 daily copies kept where retention (35 days) and history (30 days) expect about 25');
  assert.equal(few.id, 'retention-count:db/h/pg/daily');
});

test('size: no judgement without three earlier backups; the median resists one outlier', () => {
  assert.equal(median([5, 1, 100]), 5);
  assert.equal(median([1, 2, 3, 4]), 2.5);
  const two = [entry(2, 'daily'), entry(1, 'daily', 10)];
  assert.deepEqual(sourceFindings({ group, host: 'h', source: 'pg', history: two, now: NOW, bucket: 'b', sizeDropRatio: 0.5, expected: true }), []);
  const withOutlier = [entry(5, 'daily', 50_000), entry(4, 'daily'), entry(3, 'daily'), entry(2, 'daily'), entry(1, 'daily', 600)];
  assert.deepEqual(sourceFindings({ group, host: 'h', source: 'pg', history: withOutlier, now: NOW, bucket: 'b', sizeDropRatio: 0.5, expected: true }), []);
  const dropped = [...withOutlier.slice(0, 4), entry(1, 'daily', 400)];
  assert.deepEqual(sourceFindings({ group, host: 'h', source: 'pg', history: dropped, now: NOW, bucket: 'b', sizeDropRatio: 0.5, expected: true }).map((f) => f.summary), [
    `newest backup (${dropped[4].stamp}) is 400 B, 60% below the median of the previous 4 (1000 B)`,
  ]);
});

test('command output: the tail is kept, and the tier is found in parameters, arguments or JSON logs', () => {
  const long = Array.from({ length: 40 }, (_, i) => `l${i}`).join('\n');
  assert.equal(tail(long).split('\n')[0], 'l25');
  assert.ok(tail('x'.repeat(5000)).startsWith('...'));
  assert.equal(tierOf({ tier: ['monthly'] }, null), 'monthly');
  assert.equal(tierOf({ commands: ['coldseal backup --tier=yearly'] }, null), 'yearly');
  assert.equal(tierOf(null, { status: 'Failed', statusDetails: '', responseCode: 1, standardOutput: '{"tier":"weekly"}', standardError: '', executionStartedAt: undefined, executionEndedAt: undefined }), 'weekly');
  assert.equal(tierOf({ group: ['db'] }, null), undefined);
});

test('messages: subjects fit SNS (one line, ASCII, under 100 characters); a long list points to the report', () => {
  assert.equal(subjectLine('a — b\nc'), 'a - b-c');
  assert.equal(subjectLine('x'.repeat(150)).length, 99);
  const findings = Array.from({ length: 11 }, (_, i) => makeFinding({ check: 'rpo', severity: 'fail', group: 'db', host: `h${i}`, source: 'pg', where: 'w', subject: `db/h${i}/pg`, since: 's', summary: `late ${i}`, action: 'do it' }));
  const message = alertMessage({ origin: 'monitor', plan: { opened: findings, reminded: [], quiet: [], resolved: [] } });
  assert.equal(message.subject, 'coldseal FAIL: 11 new (monitor) - Backup older than RPO on db/h0/pg');
  assert.match(message.body, /\.\.\. and 3 more findings in the full report\./);
  assert.equal((message.body.match(/^NEW FAIL/gm) ?? []).length, 8);
});

test('the history chart is inline SVG with one bar per backup and a duration line', () => {
  const svg = historyChart([{ stamp: 's1', tier: 'daily', bytes: 10, ciphertextBytes: 20, durationSeconds: 5 }, { stamp: 's2', tier: 'daily', bytes: 20, ciphertextBytes: 30, durationSeconds: 9 }]);
  assert.equal((svg.match(/<rect /g) ?? []).length, 2);
  assert.match(svg, /<polyline points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"/);
  assert.doesNotMatch(svg, /<script|href=/);
});
