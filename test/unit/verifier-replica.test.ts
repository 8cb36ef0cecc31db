import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REPLICA_GRACE_MS, replicaCheck, type ReplicaObject } from '../../lambdas/verifier/core/replica';

const HOUR = 3_600_000;
const now = new Date('2026-11-23T12:00:00Z');
const written = (hoursAgo: number) => new Date(now.getTime() - hoursAgo * HOUR);
const object = (name: string, status: string | undefined, hoursAgo: number): ReplicaObject => ({ key: `backups/daily/web/web-1/pg/${name}`, status, lastModified: written(hoursAgo) });
const check = (objects: ReplicaObject[]) => replicaCheck({ at: { group: 'web', host: 'web-1', source: 'pg', tier: 'daily' }, manifestKey: 'backups/daily/web/web-1/pg/S.manifest.json', bucket: 'data', objects, now, maxPendingHours: 12 });

test('replicated, or a replica itself: no finding', () => {
  assert.deepEqual(check([object('a', 'COMPLETED', 30), object('b', 'REPLICA', 30)]), { state: 'replicated', finding: undefined });
  assert.deepEqual(check([]), { state: 'replicated', finding: undefined });
});

test('the first hour is quiet whatever the status says, except FAILED', () => {
  for (const status of ['PENDING', undefined]) {
    const result = check([object('a', status, 0.5)]);
    assert.equal(result.state, 'pending', String(status));
    assert.equal(result.finding, undefined, String(status));
  }
  assert.equal(REPLICA_GRACE_MS, HOUR);
  assert.equal(check([object('a', 'FAILED', 0.1)]).finding?.check, 'replica-missing');
});

test('pending past the hour: a WARN dated from the end of the grace; past maxPendingHours: a FAIL', () => {
  const pending = check([object('a.dump.pgp', 'PENDING', 3), object('b.dump.pgp', 'COMPLETED', 3)]);
  assert.equal(pending.state, 'pending');
  assert.deepEqual([pending.finding?.check, pending.finding?.severity, pending.finding?.since], ['replica-pending', 'warn', written(2).toISOString()]);
  assert.equal(pending.finding?.summary, 'replication of a.dump.pgp to the replica is still pending (it becomes a FAIL after 12 h)');
  assert.equal(pending.finding?.id, 'replica-pending:backups/daily/web/web-1/pg/S.manifest.json');

  const overdue = check([object('a.dump.pgp', 'PENDING', 13)]);
  assert.equal(overdue.state, 'missing');
  assert.deepEqual([overdue.finding?.check, overdue.finding?.severity, overdue.finding?.since], ['replica-missing', 'fail', written(1).toISOString()]);
  assert.match(overdue.finding!.summary, /still pending after more than 12 h$/);
});

test('failed and never-replicated objects: one FAIL naming each cause, dated from the oldest failure', () => {
  const result = check([object('old.pgp', 'FAILED', 5), object('new.pgp', 'FAILED', 2), object('legacy.pgp', undefined, 48), object('slow.pgp', 'PENDING', 20), object('ok.pgp', 'COMPLETED', 5)]);
  assert.equal(result.state, 'missing');
  const f = result.finding!;
  assert.equal(f.summary, 'backup has no offsite copy: S3 reports replication FAILED for old.pgp, new.pgp; no replication rule applied to legacy.pgp (no replication status); replication of slow.pgp is still pending after more than 12 h');
  assert.equal(f.since, written(5).toISOString());
  assert.equal(f.where, 's3://data/backups/daily/web/web-1/pg/S.manifest.json');
  assert.deepEqual([f.group, f.host, f.source, f.tier], ['web', 'web-1', 'pg', 'daily']);
  assert.match(f.action, /^Until fixed, this backup exists in one region only\. .*Batch Replication.*written before replication was set up.*OperationsPendingReplication/);
  // Without a FAILED object, an unreplicated one dates the finding from the end of its grace hour.
  assert.equal(check([object('legacy.pgp', undefined, 48)]).finding?.since, written(47).toISOString());
});
