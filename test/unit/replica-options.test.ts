import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { validateReplicaOptions } from '../../agent/src/replica';

function refused(options: Parameters<typeof validateReplicaOptions>[0], message: string, hint: RegExp): void {
  assert.throws(() => validateReplicaOptions(options), (e: unknown) => {
    assert.ok(e instanceof ColdsealError);
    assert.equal(e.exitCode, EXIT.USAGE);
    assert.equal(e.message, message);
    assert.match(e.hint!, hint);
    return true;
  });
}

test('--replica alone: the location comes from the deployment parameter; with both values: no AWS call needed', () => {
  assert.equal(validateReplicaOptions({}), undefined);
  assert.equal(validateReplicaOptions({ replica: true }), undefined);
  assert.deepEqual(validateReplicaOptions({ replica: true, replicaBucket: 'vault-replica-123456789012-eu-west-3', replicaRegion: 'eu-west-3' }), { bucket: 'vault-replica-123456789012-eu-west-3', region: 'eu-west-3' });
});

test('the replica values without --replica, only one of them, or malformed ones are refused, each named', () => {
  refused({ replicaBucket: 'b-1' }, '--replica-bucket and --replica-region only apply with --replica', /Add --replica/);
  refused({ replicaRegion: 'eu-west-3' }, '--replica-bucket and --replica-region only apply with --replica', /Add --replica/);
  refused({ replica: true, replicaBucket: 'b-1' }, '--replica-region is missing: give both --replica-bucket and --replica-region, or neither', /RestoreFromReplica/);
  refused({ replica: true, replicaRegion: 'eu-west-3' }, '--replica-bucket is missing: give both --replica-bucket and --replica-region, or neither', /deployment parameter/);
  refused({ replica: true, replicaBucket: 'Bad_Bucket', replicaRegion: 'eu-west-3' }, '--replica-bucket "Bad_Bucket" must be an S3 bucket name', /RestoreFromReplica/);
  assert.throws(() => validateReplicaOptions({ replica: true, replicaBucket: 'good-bucket', replicaRegion: 'Europe' }), (e: unknown) => e instanceof ColdsealError && e.message.startsWith('--replica-region "Europe" '));
});
