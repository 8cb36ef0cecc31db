import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BucketStore } from '../../lambdas/shared/aws';
import type { ObjectHead } from '../../lambdas/shared/ports';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { ManifestResult, SweepResult } from '../../lambdas/verifier/core/verifier';
import { reportSchema } from '../../format/verification-report';
import { alertStateKey } from '../../lambdas/shared/alerts';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, drainInbox, newWorld, putBackup, type World } from './fixtures';

/**
 * moto never replicates and never sets x-amz-replication-status, so the verifier is handed the real
 * S3 adapter against moto with only HeadObject's ReplicationStatus filled in from a table, as S3
 * would report it on the source object.
 */
class ReplicationStatusStore extends S3BucketStore {
  readonly statuses = new Map<string, string>();
  override async head(key: string): Promise<ObjectHead | null> {
    const head = await super.head(key);
    return head && { ...head, replicationStatus: this.statuses.get(key) };
  }
}

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

const GROUPS = [{ name: 'web', rpoHours: 200, sources: ['pg'], hosts: ['web-1'], retentionDays: { daily: 35 } }];

async function replicaWorld(extraEnv: Record<string, string> = { COLDSEAL_REPLICA_MAX_PENDING_HOURS: '24' }) {
  const world = await newWorld({ account, groups: GROUPS, extraEnv });
  const store = new ReplicationStatusStore(new S3Client(world.account.clientConfig), world.bucket);
  const handler = createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, store });
  const backup = await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 5 * 60_000) });
  const setAll = (status: string | undefined) => {
    for (const key of [backup.manifestKey, backup.artifactKey]) {
      if (status === undefined) store.statuses.delete(key);
      else store.statuses.set(key, status);
    }
  };
  return { world, store, handler, backup, setAll, sweep: async () => (await handler({ action: 'sweep' })) as SweepResult };
}

async function reportRow(world: World, result: SweepResult) {
  const text = await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: result.reportKeys.json }))).Body!.transformToString();
  return reportSchema.parse(JSON.parse(text)).sources[0];
}

test('replication pending: quiet in the first hour, WARN replica-pending later, FAIL replica-missing past maxPendingHours, resolved once COMPLETED', async () => {
  const { world, handler, backup, setAll, sweep } = await replicaWorld();
  setAll('PENDING');
  // Seconds after the manifest lands everything is PENDING by definition: no alert for that.
  const fresh = (await handler({ 'detail-type': 'Object Created', source: 'aws.s3', detail: { bucket: { name: world.bucket }, object: { key: backup.manifestKey } } })) as ManifestResult;
  assert.deepEqual(fresh.findings, []);
  const first = await sweep();
  assert.deepEqual(first.findings, []);
  assert.deepEqual(first.report.sources[0].replica, { replicated: 0, pending: 1, missing: 0 });
  await drainInbox(world);

  world.clock.advance(3 * HOUR);
  const warned = await sweep();
  assert.deepEqual(warned.findings.map((f) => [f.check, f.severity]), [['replica-pending', 'warn']]);
  const warning = warned.findings[0];
  assert.equal(warning.where, `s3://${world.bucket}/${backup.manifestKey}`);
  assert.match(warning.summary, /^replication of \S+\.manifest\.json, \S+\.app\.dump\.pgp to the replica is still pending \(it becomes a FAIL after 24 h\)$/);
  const [warnMail] = await drainInbox(world);
  assert.match(warnMail.subject, /: WARN - 1 finding \(1 new\)$/);
  assert.ok(warnMail.message.includes('NEW WARN Replica pending - web/web-1/pg, daily'), warnMail.message);

  world.clock.advance(DAY);
  const failed = await sweep();
  assert.deepEqual(failed.findings.map((f) => [f.check, f.severity]), [['replica-missing', 'fail']]);
  assert.match(failed.findings[0].summary, /^backup has no offsite copy: replication of .* is still pending after more than 24 h$/);
  assert.match(failed.findings[0].action, /OperationsPendingReplication/);
  // The warning turns into the failure: one open problem per backup.
  assert.deepEqual(failed.plan.resolved.map((r) => r.finding.check), ['replica-pending']);
  assert.deepEqual((await reportRow(world, failed)).replica, { replicated: 0, pending: 0, missing: 1 });
  const [failMail] = await drainInbox(world);
  assert.ok(failMail.message.includes('NEW FAIL Replica missing - web/web-1/pg, daily'), failMail.message);

  setAll('COMPLETED');
  const healed = await sweep();
  assert.deepEqual(healed.findings, []);
  assert.deepEqual(healed.plan.resolved.map((r) => r.finding.check), ['replica-missing']);
  assert.deepEqual((await reportRow(world, healed)).replica, { replicated: 1, pending: 0, missing: 0 });
  const html = await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: healed.reportKeys.html }))).Body!.transformToString();
  assert.match(html, /<th>replica<\/th><td>1 of 1 replicated<\/td>/);
  await drainInbox(world);
});

test('a FAILED replication is a FAIL at once; an object without any replication status is one after an hour', async () => {
  const { world, store, backup, setAll, sweep } = await replicaWorld();
  setAll('COMPLETED');
  store.statuses.set(backup.artifactKey, 'FAILED');
  const failed = await sweep();
  assert.deepEqual(failed.findings.map((f) => f.check), ['replica-missing']);
  assert.match(failed.findings[0].summary, /^backup has no offsite copy: S3 reports replication FAILED for \S+\.app\.dump\.pgp$/);
  assert.match(failed.findings[0].action, /S3 does not retry a failed object/);
  await drainInbox(world);

  const other = await replicaWorld();
  other.setAll(undefined);
  assert.deepEqual((await other.sweep()).findings, [], 'a fresh object may not have a status yet');
  other.world.clock.advance(2 * HOUR);
  const unreplicated = await other.sweep();
  assert.deepEqual(unreplicated.findings.map((f) => f.check), ['replica-missing']);
  assert.match(unreplicated.findings[0].summary, /no replication rule applied to \S+\.manifest\.json, \S+\.app\.dump\.pgp \(no replication status\)$/);
  assert.match(unreplicated.findings[0].action, /Batch Replication/);
  await drainInbox(other.world);
});

test('without a replica in the settings, replication status is not looked at and the report has no replica column', async () => {
  const { world, setAll, sweep } = await replicaWorld({});
  setAll('FAILED');
  world.clock.advance(2 * DAY);
  const result = await sweep();
  assert.deepEqual(result.findings, []);
  assert.equal((await reportRow(world, result)).replica, null);
  await drainInbox(world);
});

test('the sweep settles the monitor\'s replication-failed alert once the backup is replicated, and not before', async () => {
  const { world, store, backup, setAll, sweep } = await replicaWorld();
  setAll('FAILED');
  const finding = { id: `replication-failed:${backup.manifestKey}`, check: 'replication-failed', severity: 'fail', group: 'web', host: 'web-1', source: 'pg', tier: 'daily', where: `s3://${world.bucket}/${backup.artifactKey}`, summary: 'S3 could not replicate', since: world.clock.now().toISOString(), action: 'fix it' };
  const record = { id: finding.id, finding, firstSeenAt: finding.since, lastAlertedAt: finding.since, alertCount: 1 };
  await store.put(alertStateKey(finding.id), JSON.stringify(record), 'application/json');
  const still = await sweep();
  assert.deepEqual(still.plan.resolved.map((r) => r.id), []);
  assert.ok(await store.getText(alertStateKey(finding.id)), 'the alert stays open while the replica is missing');
  await drainInbox(world);
  setAll('COMPLETED');
  const settled = await sweep();
  assert.deepEqual(settled.plan.resolved.map((r) => r.id).sort(), [finding.id, `replica-missing:${backup.manifestKey}`].sort());
  assert.equal(await store.getText(alertStateKey(finding.id)), null);
  const [mail] = await drainInbox(world);
  assert.match(mail.message, /RESOLVED Replication failed - web\/web-1\/pg: S3 could not replicate/);
});
