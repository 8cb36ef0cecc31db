import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupSettingsSchema } from '../../format/lambda-settings';
import { freshnessFindings, hours, sourceSubject, type FreshnessInput } from '../../lambdas/shared/freshness';

const group = groupSettingsSchema.parse({ name: 'web', sources: ['pg'], rpoHours: 26 });
const now = new Date('2026-11-23T12:00:00Z');
const input = (o: Partial<FreshnessInput>): FreshnessInput => ({ group, host: 'web-1', source: 'pg', newest: undefined, now, bucket: 'data', expected: true, ...o });
const finishedHoursAgo = (h: number) => ({ stamp: '20261122T010000Z', finishedAt: new Date(now.getTime() - h * 3_600_000).toISOString() });

test('hours: hours to one decimal, days beyond two days', () => {
  const cases: [number, string][] = [
    [0, '0.0 h'],
    [90 * 60_000, '1.5 h'],
    [47.9 * 3_600_000, '47.9 h'],
    [48 * 3_600_000, '2.0 days'],
    [84 * 3_600_000, '3.5 days'],
  ];
  for (const [ms, words] of cases) assert.equal(hours(ms), words);
});

test('within the RPO: no finding; beyond it: one rpo failure dated when the RPO ran out', () => {
  assert.deepEqual(freshnessFindings(input({ newest: finishedHoursAgo(25.9) })), []);
  assert.deepEqual(freshnessFindings(input({ newest: finishedHoursAgo(26) })), [], 'exactly the RPO is still fresh');
  const [finding, ...more] = freshnessFindings(input({ newest: finishedHoursAgo(30) }));
  assert.deepEqual(more, []);
  assert.equal(finding.id, 'rpo:web/web-1/pg');
  assert.equal(finding.severity, 'fail');
  assert.equal(finding.since, new Date(now.getTime() - 4 * 3_600_000).toISOString());
  assert.equal(finding.summary, 'newest valid backup is 30.0 h old (20261122T010000Z); the RPO is 26 h');
  assert.equal(finding.where, 's3://data/backups/*/web/web-1/pg/');
  assert.match(finding.action, /coldseal trigger --group web --host web-1\.$/);
  const custom = groupSettingsSchema.parse({ name: 'web', sources: ['pg'], rpoHours: 2 });
  assert.equal(freshnessFindings(input({ group: custom, newest: finishedHoursAgo(3) }))[0].summary, 'newest valid backup is 3.0 h old (20261122T010000Z); the RPO is 2 h');
});

test('no backup: a never-backed-up failure only for a source that is expected', () => {
  assert.deepEqual(freshnessFindings(input({ expected: false })), []);
  const [finding] = freshnessFindings(input({ expected: true }));
  assert.equal(finding.id, 'never-backed-up:web/web-1/pg');
  assert.equal(finding.since, now.toISOString());
  assert.equal(finding.summary, 'no valid backup of pg from web-1 exists');
  assert.deepEqual([finding.group, finding.host, finding.source], ['web', 'web-1', 'pg']);
});

test('sourceSubject: the subject, where its backups are, and the command that runs one', () => {
  assert.deepEqual(sourceSubject({ group, host: 'db-2', source: 'files', bucket: 'b' }), {
    at: { group: 'web', host: 'db-2', source: 'files' },
    subject: 'web/db-2/files',
    where: 's3://b/backups/*/web/db-2/files/',
    trigger: 'coldseal trigger --group web --host db-2',
  });
});
