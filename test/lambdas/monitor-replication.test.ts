import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createMonitorHandler } from '../../lambdas/monitor/handler';
import type { MonitorResult } from '../../lambdas/monitor/core/monitor';
import { alertStateKey } from '../../lambdas/shared/alerts';
import type { InstanceDirectory, CommandHistory, MetricsSink } from '../../lambdas/shared/ports';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { drainInbox, newWorld, type World } from './fixtures';
import { GetObjectCommand } from '@aws-sdk/client-s3';

/**
 * S3 publishes OperationFailedReplication to the replication topic; SNS invokes the monitor with
 * its envelope. The event below follows AWS's published example
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-metrics-events.html) inside
 * SNS's Lambda event; alert state and the alert mail (SNS→SQS) are moto.
 */
const noInstances: InstanceDirectory = { listGroup: async () => [], describe: async () => null };
const noCommands: CommandHistory = { invocation: async () => null, parameters: async () => null };
const noMetrics: MetricsSink = { source: () => {}, group: () => {}, heartbeat: () => {}, walArchive: () => {} };

function snsEvent(world: World, messages: unknown[]) {
  return {
    Records: messages.map((m, i) => ({
      EventSource: 'aws:sns',
      EventVersion: '1.0',
      EventSubscriptionArn: `arn:aws:sns:us-east-1:${world.account.accountId}:replication-events:sub-${i}`,
      Sns: {
        Type: 'Notification',
        MessageId: `msg-${i}`,
        TopicArn: `arn:aws:sns:us-east-1:${world.account.accountId}:replication-events`,
        Subject: 'Amazon S3 Notification',
        Message: JSON.stringify(m),
        Timestamp: world.clock.now().toISOString(),
        SignatureVersion: '1',
        Signature: 'EXAMPLE',
        SigningCertUrl: 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem',
        UnsubscribeUrl: 'https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe',
        MessageAttributes: {},
      },
    })),
  };
}

function failedReplication(world: World, key: string, failureReason: string, eventName = 'Replication:OperationFailedReplication') {
  return {
    Records: [
      {
        eventVersion: '2.2',
        eventSource: 'aws:s3',
        awsRegion: 'us-east-1',
        eventTime: '2026-11-22T02:04:32.527Z',
        eventName,
        userIdentity: { principalId: 's3.amazonaws.com' },
        requestParameters: { sourceIPAddress: 's3.amazonaws.com' },
        responseElements: { 'x-amz-request-id': '123bf045-2b4b-4ca8-a3a2-EXAMPLE', 'x-amz-id-2': 'EXAMPLE' },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'replication-failures',
          bucket: { name: world.bucket, ownerIdentity: { principalId: 'A1EXAMPLE' }, arn: `arn:aws:s3:::${world.bucket}` },
          // Keys in S3 events are URL-encoded: the artifact name's own "%2E" arrives as "%252E".
          object: { key: encodeURIComponent(key).replace(/%2F/g, '/'), size: 20480, eTag: 'abc123', versionId: 'v1.EXAMPLE', sequencer: '0066DA1D2B8EEXAMPLE' },
        },
        replicationEventData: {
          replicationRuleId: 'replicate-backups',
          destinationBucket: 'arn:aws:s3:::coldseal-replica-222233334444-eu-west-3',
          s3Operation: 'OBJECT_PUT',
          requestTime: '2026-11-22T02:03:11.000Z',
          failureReason,
        },
      },
    ],
  };
}

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

test('a replication failure alerts at once with backup, host, source, reason and what to do; a second object of the same backup stays quiet', async () => {
  const world = await newWorld({ account });
  const monitor = createMonitorHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, instances: noInstances, commands: noCommands, metrics: noMetrics });
  const prefix = 'backups/daily/web/web-1/pg/20261122T020000Z';
  const first = (await monitor(snsEvent(world, [failedReplication(world, `${prefix}.app%2Ev2.dump.zst.pgp`, 'DstObjectHardDeleted'), failedReplication(world, `${prefix}.manifest.json`, 'DstObjectHardDeleted')]))) as MonitorResult;
  assert.deepEqual(first.findings.map((f) => f.id), [`replication-failed:${prefix}.manifest.json`, `replication-failed:${prefix}.manifest.json`]);
  const f = first.findings[0];
  assert.equal(f.severity, 'fail');
  assert.deepEqual([f.group, f.host, f.source, f.tier], ['web', 'web-1', 'pg', 'daily']);
  assert.equal(f.where, `s3://${world.bucket}/${prefix}.app%2Ev2.dump.zst.pgp (version v1.EXAMPLE) -> replica s3://coldseal-replica-222233334444-eu-west-3`);
  assert.equal(f.since, '2026-11-22T02:03:11.000Z');
  assert.equal(f.summary, 'S3 could not copy backup 20261122T020000Z of web/web-1/pg (daily) to the offsite replica: DstObjectHardDeleted');
  assert.match(f.detail!, /failure reason: DstObjectHardDeleted\nrule: replicate-backups\noperation: OBJECT_PUT/);
  assert.match(f.action, /S3 does not retry a failed object/);
  assert.equal(first.plan.opened.length, 1, 'the two objects of one backup are one problem');

  const sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].subject, 'coldseal FAIL: 1 new (S3 replication) - Replication failed on web/web-1/pg');
  assert.deepEqual(sent[0].attributes, { kind: 'alert', status: 'FAIL' });
  for (const line of ['NEW FAIL Replication failed - web/web-1/pg, daily', `  where: ${f.where}`, '  since: 2026-11-22T02:03:11.000Z', '  | failure reason: DstObjectHardDeleted', `  do:    ${f.action}`]) {
    assert.ok(sent[0].message.includes(line), `${line}\n---\n${sent[0].message}`);
  }
  const state = JSON.parse(await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: alertStateKey(f.id) }))).Body!.transformToString());
  assert.equal(state.finding.check, 'replication-failed');

  // The same backup again (another segment, a retry of the notification): no second mail.
  const again = (await monitor(snsEvent(world, [failedReplication(world, `${prefix}.app%2Ev2.dump.zst.seg00002.pgp`, 'DstObjectHardDeleted')]))) as MonitorResult;
  assert.equal(again.plan.opened.length, 0);
  assert.equal(again.published, undefined);
  assert.deepEqual(await drainInbox(world), []);
});

test('a KMS refusal on a drill receipt names the drill host and the key policy; S3\'s test message, other buckets and missed-threshold events alert nothing', async () => {
  const world = await newWorld({ account });
  const monitor = createMonitorHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, instances: noInstances, commands: noCommands, metrics: noMetrics });
  const testMessage = { Service: 'Amazon S3', Event: 's3:TestEvent', Time: '2026-11-22T00:00:00.000Z', Bucket: world.bucket, RequestId: 'X', HostId: 'Y' };
  const elsewhere = failedReplication(world, 'backups/daily/web/web-1/pg/20261122T020000Z.manifest.json', 'AssumeRoleNotPermitted');
  (elsewhere.Records[0].s3.bucket as { name: string }).name = 'someone-elses-bucket';
  const late = failedReplication(world, 'backups/daily/web/web-1/pg/20261122T020000Z.manifest.json', '', 'Replication:OperationMissedThreshold');
  assert.equal(await monitor(snsEvent(world, [testMessage, elsewhere, late])), undefined);
  assert.deepEqual(await drainInbox(world), []);

  const drill = (await monitor(snsEvent(world, [failedReplication(world, 'drills/web/drill-1/20261122T030000Z.drill.json', 'DstKmsKeyNotFound')]))) as MonitorResult;
  assert.equal(drill.findings.length, 1);
  assert.equal(drill.findings[0].id, 'replication-failed:drills/web/drill-1/20261122T030000Z.drill.json');
  assert.deepEqual([drill.findings[0].group, drill.findings[0].host], ['web', 'drill-1']);
  assert.match(drill.findings[0].action, /^A KMS key refused the copy: check the replica key's policy/);
  const [mail] = await drainInbox(world);
  assert.match(mail.subject, /^coldseal FAIL: 1 new \(S3 replication\) - Replication failed on web\/drill-1$/);
});
