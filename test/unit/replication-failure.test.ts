import { test } from 'node:test';
import assert from 'node:assert/strict';
import { artifactKey, manifestKey, segmentKey, type SourceLocation } from '../../format/layout';
import { eventKey, isReplicationFailure, isSnsEvent, replicationFailureFinding, s3Records, type S3ReplicationRecord } from '../../lambdas/monitor/core/replication-failure';

const loc: SourceLocation = { tier: 'daily', group: 'web', host: 'web-1', source: 'pg' };
const stamp = '20261122T010000Z';
const record = (key: string, data: S3ReplicationRecord['replicationEventData'] = {}, extra: Partial<S3ReplicationRecord> = {}): S3ReplicationRecord => ({
  eventName: 'Replication:OperationFailedReplication',
  eventTime: '2026-11-22T01:05:00.000Z',
  awsRegion: 'eu-west-1',
  s3: { bucket: { name: 'data' }, object: { key, versionId: 'v1' } },
  replicationEventData: data,
  ...extra,
});

test('isSnsEvent and s3Records: S3 records inside SNS messages; test messages and junk hold none', () => {
  const wrapped = (message: string) => ({ Records: [{ EventSource: 'aws:sns', Sns: { Message: message } }] });
  assert.equal(isSnsEvent(wrapped('{}')), true);
  for (const other of [{}, { Records: [] }, { Records: [{ Sns: {} }] }, { action: 'check' }]) assert.equal(isSnsEvent(other), false, JSON.stringify(other));
  const s3 = { Records: [record('a'), { eventName: 'x' }, { s3: { object: { key: 'k' } } }] };
  assert.deepEqual(s3Records(wrapped(JSON.stringify(s3))).map((r) => r.s3.object.key), ['a']);
  assert.deepEqual(s3Records(wrapped('{"Event":"s3:TestEvent","Service":"Amazon S3"}')), []);
  assert.deepEqual(s3Records(wrapped('not json')), []);
});

test('isReplicationFailure: with or without the configuration\'s s3: prefix', () => {
  assert.equal(isReplicationFailure(record('k')), true);
  assert.equal(isReplicationFailure(record('k', {}, { eventName: 's3:Replication:OperationFailedReplication' })), true);
  for (const eventName of ['Replication:OperationReplicatedAfterThreshold', 'ObjectCreated:Put']) assert.equal(isReplicationFailure(record('k', {}, { eventName })), false, eventName);
});

test('eventKey decodes S3\'s URL encoding, "+" as a space', () => {
  assert.equal(eventKey('backups/daily/web/web-1/pg/x.app%2Ev2.dump.pgp'), 'backups/daily/web/web-1/pg/x.app.v2.dump.pgp');
  assert.equal(eventKey('a+b%2Bc'), 'a b+c');
});

test('every segment of a backup is one finding, about its manifest, with advice for the reason', () => {
  const first = artifactKey(loc, stamp, 'shop', 'dump');
  const findings = [first, segmentKey(first, 2), manifestKey(loc, stamp)].map((key) => replicationFailureFinding(record(key, { failureReason: 'DstBucketNotFound', destinationBucket: 'arn:aws:s3:::vault-replica', requestTime: '2026-11-22T01:04:00.000Z', replicationRuleId: 'all' }), new Date('2026-11-22T02:00:00Z')));
  assert.deepEqual(new Set(findings.map((f) => f.id)), new Set([`replication-failed:${manifestKey(loc, stamp)}`]));
  const [f] = findings;
  assert.deepEqual([f.group, f.host, f.source, f.tier, f.severity, f.since], ['web', 'web-1', 'pg', 'daily', 'fail', '2026-11-22T01:04:00.000Z']);
  assert.equal(f.where, `s3://data/${first} (version v1) -> replica s3://vault-replica`);
  assert.equal(f.summary, `S3 could not copy backup ${stamp} of web/web-1/pg (daily) to the offsite replica: DstBucketNotFound`);
  assert.equal(f.detail, 'failure reason: DstBucketNotFound\nrule: all\nsource region: eu-west-1');
  assert.match(f.action, /^The replica bucket is gone or elsewhere: deploy the replica stack/);
});

test('the advice follows the failure reason; a drill receipt is its own subject; the time falls back', () => {
  const cases: [string | undefined, RegExp][] = [
    ['AssumeRoleNotPermitted', /cannot assume the replication role/],
    ['DstBucketObjectLockConfigMissing', /lost versioning or Object Lock/],
    ['DstBucketUnversioned', /lost versioning or Object Lock/],
    ['DstKmsKeyNotFound', /A KMS key refused the copy/],
    ['AccessDenied', /A policy denied the copy/],
    ['DstObjectHardDeleted', /Look the reason up/],
    [undefined, /^Check the replication role/],
  ];
  for (const [reason, advice] of cases) assert.match(replicationFailureFinding(record('k', { failureReason: reason }), new Date()).action, advice, String(reason));
  const drill = replicationFailureFinding(record('drills/web/web-1/20261122T010000Z.drill.json', undefined, { eventTime: undefined }), new Date('2026-11-22T03:00:00Z'));
  assert.deepEqual([drill.group, drill.host, drill.source, drill.id, drill.since], ['web', 'web-1', undefined, 'replication-failed:drills/web/web-1/20261122T010000Z.drill.json', '2026-11-22T03:00:00.000Z']);
  assert.equal(drill.detail, 'S3 gave no failure reason\nsource region: eu-west-1');
});
