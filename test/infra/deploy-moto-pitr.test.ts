/* eslint-disable @typescript-eslint/no-explicit-any -- the context is JSON */
/**
 * A deployment with a PITR source, into moto, read back the way the end-to-end test reads it
 * (local-system/flow.ts): the monitor's WAL check runs with the environment moto holds for the
 * deployed function and the input of the deployed 5-minute rule, against WAL objects laid out as
 * the agent writes them, and alerts through the deployed topic.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { walObjectKey } from '../../format/layout';
import { loadSettings } from '../../format/lambda-settings';
import { WAL_CHECK_INPUT } from '../../format/scheduled-inputs';
import { generateKeyPair } from '../../runtime/pgp';
import { Deployment, HostInventory } from '../../local-system/flow';
import { deployToMoto } from '../../local-system/moto-stack';
import { newMotoAccount, uniqueName } from '../harness/aws';
import { ROOT, sampleContext, standInExecutables } from './fixtures';

let deployment: Deployment;

before(async () => {
  const recipient = await generateKeyPair({ name: 'pitr deploy test recipient' });
  const signing = await generateKeyPair({ name: 'pitr deploy test signing' }, undefined, { signOnly: true });
  const context = sampleContext() as any;
  context.recipients = recipient.publicKey;
  context.pitr = { graceMinutes: 2 };
  context.groups = {
    db: {
      schedule: 'cron(30 1 * * ? *)',
      signingPublicKeys: signing.publicKey,
      sources: [
        { name: 'pg', type: 'postgres', pitr: { enabled: true, archiveTimeoutSeconds: 30 } },
        { name: 'etc', type: 'files', paths: ['/etc/hostname'] },
      ],
    },
  };
  const account = await newMotoAccount();
  const stack = await deployToMoto({ target: account, context, baseDir: ROOT, agentExecutables: standInExecutables(), stackName: uniqueName('ColdsealPitr') });
  deployment = await Deployment.read(account, stack, mkdtempSync(join(tmpdir(), 'coldseal-pitr-deploy-')));
  await deployment.subscribeToAlerts();
});

describe('deployed into moto with a PITR source', () => {
  test("the monitor's deployed settings carry the PITR source, its archive_timeout and the deployment's grace; its 5-minute rule sends the WAL check", () => {
    const settings = loadSettings(deployment.monitor.environment);
    assert.deepEqual(settings.groups[0].pitrSources, [{ source: 'pg', engine: 'postgres', archiveTimeoutSeconds: 30 }]);
    assert.equal(settings.walGraceMinutes, 2);
    assert.deepEqual(deployment.walCheckInput(), WAL_CHECK_INPUT);
    assert.notDeepEqual(deployment.scheduledInput(deployment.monitor), WAL_CHECK_INPUT, "the full check's rule is still found apart");
  });

  test('the WAL check, run as deployed: the archiving host has an age, the tagged host that never archived alerts through the topic', async () => {
    const bucket = deployment.stack.output('DataBucketName');
    await deployment.s3.send(new PutObjectCommand({ Bucket: bucket, Key: walObjectKey('db', 'h1', 'pg', '000000010000000000000001'), Body: 'ciphertext' }));
    const inventory = new HostInventory([
      { instanceId: 'i-0b0b0b0b0b0b0b0b0', computerName: 'h2.internal', pingStatus: 'Online', lastPingAt: new Date(), group: 'db' },
    ]);
    const result = await deployment.runWalCheck(inventory);
    assert.deepEqual(
      result.sources.map((s) => [s.host, s.source, s.newest !== undefined]),
      [
        ['h1', 'pg', true],
        ['h2', 'pg', false],
      ],
    );
    assert.deepEqual(result.findings.map((f) => f.id), ['wal-never-archived:db/h2/pg']);
    assert.match(result.published!.subject, /WAL never archived on db\/h2\/pg/);
    const alerts = await deployment.receiveAlerts();
    assert.ok(alerts.some((a) => /WAL never archived on db\/h2\/pg/.test(a.subject)), alerts.map((a) => a.subject).join('\n'));
  });
});
