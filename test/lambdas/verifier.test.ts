import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { reportSchema } from '../../lambdas/verifier/core/report';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, drainInbox, healthyFleet, newWorld, type World } from './fixtures';

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

function verifier(world: World) {
  return createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock });
}

async function sweep(world: World): Promise<SweepResult> {
  return (await verifier(world)({ action: 'sweep' })) as SweepResult;
}

test('a healthy fleet gives an OK report, stored as JSON and HTML, and no alert', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  const result = await sweep(world);
  assert.deepEqual(result.findings, []);
  assert.equal(result.report.status, 'OK');
  assert.equal(result.report.counts.backups, 12);
  assert.equal(result.report.verification.verifiedArtifacts, 12);
  const sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].attributes.kind, 'report');
  assert.equal(sent[0].attributes.status, 'OK');
  assert.match(sent[0].subject, /^coldseal report \d{4}-\d\d-\d\d: OK - 0 findings$/);
  assert.match(sent[0].message, /Every check passed\./);
  console.log(sent[0].message);
});
