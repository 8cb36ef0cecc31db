import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { RUN_DOCUMENT_STEPS } from '../../format/run-document';
import { createMonitorHandler, COMMAND_STATUS_DETAIL_TYPE } from '../../lambdas/monitor/handler';
import type { MonitorResult } from '../../lambdas/monitor/core/monitor';
import { SsmCommandHistory } from '../../lambdas/shared/aws';
import type { CommandHistory, CommandInvocation, InstanceDirectory, ManagedInstance } from '../../lambdas/shared/ports';
import { PowertoolsMetricsSink, METRIC } from '../../lambdas/shared/runtime';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, drainInbox, healthyFleet, newWorld, putBackup, type World } from './fixtures';

/**
 * moto answers Success for every SSM command and has no managed-instance inventory with tags, so
 * the command-status and instance paths use these fakes of the narrow interfaces; S3, SNS→SQS and
 * the alert state are moto.
 */
class FakeInstances implements InstanceDirectory {
  constructor(public instances: ManagedInstance[]) {}
  async listGroup(_tagKey: string, group: string) {
    return this.instances.filter((i) => i.group === group);
  }
  async describe(instanceId: string) {
    return this.instances.find((i) => i.instanceId === instanceId) ?? null;
  }
}

class FakeCommands implements CommandHistory {
  invocations = new Map<string, CommandInvocation>();
  params = new Map<string, Record<string, string[]>>();
  async invocation(commandId: string, instanceId: string) {
    return this.invocations.get(`${commandId}/${instanceId}`) ?? null;
  }
  async parameters(commandId: string) {
    return this.params.get(commandId) ?? null;
  }
}

function instance(host: string, world: World, overrides: Partial<ManagedInstance> = {}): ManagedInstance {
  return { instanceId: `i-0${Buffer.from(host).toString('hex').slice(0, 15)}`, computerName: `${host}.ec2.internal`, pingStatus: 'Online', lastPingAt: new Date(world.clock.ms - 5 * 60_000), group: 'web', ...overrides };
}

interface Emf {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

/** Runs fn and returns the EMF lines Powertools wrote to stdout meanwhile (what CloudWatch ingests). */
async function captureEmf<T>(fn: () => Promise<T>): Promise<{ result: T; emf: Emf[] }> {
  const lines: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = chunk.toString();
    if (text.includes('"_aws"')) {
      lines.push(...text.split('\n').filter((l) => l.includes('"_aws"')));
      return true;
    }
    return original(chunk, ...(rest as []));
  }) as typeof process.stdout.write;
  try {
    const result = await fn();
    return { result, emf: lines.map((l) => JSON.parse(l) as Emf) };
  } finally {
    process.stdout.write = original;
  }
}

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

function monitor(world: World, instances: FakeInstances, commands = new FakeCommands()) {
  const metrics = new Metrics({ namespace: 'Coldseal', serviceName: 'coldseal-monitor' });
  return createMonitorHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, instances, commands, metrics: new PowertoolsMetricsSink(metrics) });
}

test('a healthy fleet: no finding, no alert; per-source metrics, group metrics and the heartbeat as EMF', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  await createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock })({ action: 'sweep' });
  await drainInbox(world);
  const instances = new FakeInstances([instance('web-1', world), instance('web-2', world)]);
  const { result, emf } = await captureEmf(() => monitor(world, instances)({ action: 'check' }) as Promise<MonitorResult>);
  assert.deepEqual(result.findings, []);
  assert.equal(result.published, undefined);
  assert.deepEqual(await drainInbox(world), []);

  const perSource = emf.filter((e) => e.Source !== undefined);
  assert.deepEqual(perSource.map((e) => `${e.Group}/${e.Host}/${e.Source}`), ['web/web-1/pg', 'web/web-2/pg']);
  for (const e of perSource) {
    assert.equal(e._aws.CloudWatchMetrics[0].Namespace, 'Coldseal');
    assert.deepEqual(e._aws.CloudWatchMetrics[0].Dimensions, [['service', 'Group', 'Host', 'Source']]);
    assert.deepEqual(e._aws.CloudWatchMetrics[0].Metrics.map((m) => `${m.Name}:${m.Unit}`), [`${METRIC.backupAgeHours}:Count`, `${METRIC.backupSizeBytes}:Bytes`, `${METRIC.backupDurationSeconds}:Seconds`, `${METRIC.verificationStatus}:Count`]);
    assert.equal(e[METRIC.backupAgeHours], 1);
    assert.equal(e[METRIC.backupSizeBytes], 20_000);
    assert.equal(e[METRIC.backupDurationSeconds], 100);
    assert.equal(e[METRIC.verificationStatus], 0);
  }
  const group = emf.find((e) => e[METRIC.groupMaxBackupAgeHours] !== undefined)!;
  assert.deepEqual([group.Group, group[METRIC.groupMaxBackupAgeHours], group[METRIC.groupSourcesOverRpo], group[METRIC.groupFailedVerifications]], ['web', 1, 0, 0]);
  assert.equal(emf.filter((e) => e[METRIC.heartbeat] === 1).length, 1);
});

test('a tagged instance that never produced a backup, and one that stopped reporting to SSM, are alerted', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world, { drill: false });
  const lost = instance('web-2', world, { pingStatus: 'ConnectionLost', lastPingAt: new Date(world.clock.ms - 5 * HOUR) });
  const fresh = instance('web-3', world, { instanceId: 'i-0abc3' });
  const result = (await monitor(world, new FakeInstances([instance('web-1', world), lost, fresh]))({ action: 'check' })) as MonitorResult;
  assert.deepEqual(result.findings.map((f) => f.id).sort(), ['instance-not-reporting:web/web-2', 'never-backed-up:web/web-3/pg']);
  const never = result.findings.find((f) => f.check === 'never-backed-up')!;
  assert.equal(never.summary, 'instance i-0abc3 carries the tag of group web but has never produced a backup of pg');
  const sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].attributes, { kind: 'alert', status: 'FAIL' });
  assert.equal(sent[0].subject, 'coldseal FAIL: 2 new (monitor) - Never backed up on web/web-3/pg');
  assert.ok(sent[0].message.includes('NEW FAIL Never backed up - web/web-3/pg\n  instance i-0abc3 carries the tag of group web but has never produced a backup of pg\n  where: instance i-0abc3 (web-3.ec2.internal), tag coldseal-group=web\n'));
  assert.ok(sent[0].message.includes(`NEW WARN Instance stopped reporting to SSM - web/web-2\n  instance ${lost.instanceId} has not reported to SSM since ${lost.lastPingAt!.toISOString()} (ping status ConnectionLost): scheduled backups cannot reach it\n`));
  assert.match(sent[0].message, /do: {4}Check that the schedule targets this instance/);
});

test('freshness alerts are de-duplicated across runs: new once, repeated after a day, resolved once', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world, { hosts: ['web-1'], drill: false });
  for (let k = 2; k >= 0; k--) await putBackup(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - 27 * HOUR - k * DAY) });
  const instances = new FakeInstances([instance('web-1', world), instance('web-2', world)]);
  const handler = monitor(world, instances);
  const subjects: (string | undefined)[] = [];
  const run = async () => {
    // The fake's last ping follows the clock: the instances stay online.
    instances.instances = instances.instances.map((i) => ({ ...i, lastPingAt: world.clock.now() }));
    await captureEmf(() => handler({ action: 'check' }));
    const sent = await drainInbox(world);
    assert.ok(sent.length <= 1);
    subjects.push(sent[0]?.subject);
    return sent[0];
  };
  const first = await run();
  assert.match(first.message, /^NEW FAIL Backup older than RPO - web\/web-2\/pg\n {2}newest valid backup is 27\.0 h old \(\d{8}T\d{6}Z\); the RPO is 26 h\n/);
  world.clock.advance(4 * HOUR);
  await run();
  world.clock.advance(4 * HOUR);
  await run();
  world.clock.advance(17 * HOUR);
  const reminder = await run();
  assert.match(reminder.message, /^OPEN since \d{4}-\d\d-\d\dT\d\d:\d\dZ FAIL Backup older than RPO - web\/web-2\/pg\n {2}newest valid backup is 2\.2 days old/);
  await putBackup(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - HOUR) });
  await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - HOUR) });
  world.clock.advance(HOUR);
  const resolved = await run();
  assert.match(resolved.message, /^RESOLVED Backup older than RPO - web\/web-2\/pg: newest valid backup is 2\.2 days old \(\d{8}T\d{6}Z\); the RPO is 26 h \(open since /m);
  world.clock.advance(4 * HOUR);
  await run();
  assert.deepEqual(subjects, [
    'coldseal FAIL: 1 new (monitor) - Backup older than RPO on web/web-2/pg',
    undefined,
    undefined,
    'coldseal FAIL: 1 still open (monitor) - Backup older than RPO on web/web-2/pg',
    'coldseal RESOLVED: 1 resolved (monitor) - Backup older than RPO on web/web-2/pg',
    undefined,
  ]);
});

function commandEvent(commandId: string, instanceId: string, status: string, document = 'coldseal-backup') {
  return {
    source: 'aws.ssm' as const,
    'detail-type': COMMAND_STATUS_DETAIL_TYPE as typeof COMMAND_STATUS_DETAIL_TYPE,
    detail: { 'command-id': commandId, 'document-name': document, 'instance-id': instanceId, 'requested-date-time': '2026-11-22T02:00:00.000Z', status },
  };
}

test('a failed backup command alerts at once with host, group, tier, error tail and what to do; repeats stay quiet; a later backup resolves it', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world, { drill: false });
  const web1 = instance('web-1', world);
  const instances = new FakeInstances([web1, instance('web-2', world)]);
  const commands = new FakeCommands();
  const stderr = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join('\n') + '\ncoldseal: pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "backup"\n';
  commands.invocations.set(`cmd-1/${web1.instanceId}`, { status: 'Failed', statusDetails: 'Failed', responseCode: 3, standardError: stderr, standardOutput: '', executionStartedAt: new Date(world.clock.ms - 120_000), executionEndedAt: new Date(world.clock.ms - 60_000) });
  commands.params.set('cmd-1', { commands: ['node /opt/coldseal/coldseal-agent.js backup --tier daily'] });
  const handler = monitor(world, instances, commands);

  const result = (await handler(commandEvent('cmd-1', web1.instanceId, 'Failed'))) as MonitorResult;
  assert.deepEqual(result.findings.map((f) => f.id), ['command-failed:web/web-1']);
  const sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].attributes, { kind: 'alert', status: 'FAIL' });
  assert.equal(sent[0].subject, 'coldseal FAIL: 1 new (SSM command) - Backup command failed on web/web-1');
  const body = sent[0].message;
  assert.ok(body.startsWith('NEW FAIL Backup command failed - web/web-1, daily\n  backup command Failed on web-1 (group web, tier daily), exit code 3\n'), body);
  assert.ok(body.includes(`  where: SSM command cmd-1 on ${web1.instanceId} (web-1.ec2.internal), document coldseal-backup\n`));
  assert.ok(body.includes(`  since: ${new Date(world.clock.ms - 60_000).toISOString()}\n`));
  assert.ok(body.includes("  | last lines of the command's error output:\n  | line 7\n"), 'the tail of stderr, not its head');
  assert.ok(!body.includes('| line 6\n'));
  assert.ok(body.includes('password authentication failed for user "backup"'));
  assert.ok(body.includes(`  do:    Read the error output above (exit codes are listed by coldseal --help). Full output: aws ssm get-command-invocation --command-id cmd-1 --instance-id ${web1.instanceId}. When fixed, run coldseal trigger --group web --host web-1;`));

  // The same host failing again within a day: no second message.
  commands.invocations.set(`cmd-2/${web1.instanceId}`, { status: 'TimedOut', statusDetails: 'DeliveryTimedOut', responseCode: -1, standardError: '', standardOutput: '', executionStartedAt: undefined, executionEndedAt: undefined });
  world.clock.advance(HOUR);
  const again = (await handler(commandEvent('cmd-2', web1.instanceId, 'TimedOut'))) as MonitorResult;
  assert.equal(again.plan.quiet.length, 1);
  assert.deepEqual(await drainInbox(world), []);

  // Another document's failure, or a success, is not ours.
  assert.equal(await handler(commandEvent('cmd-3', web1.instanceId, 'Failed', 'AWS-RunPatchBaseline')), undefined);
  assert.equal(await handler(commandEvent('cmd-4', web1.instanceId, 'Success')), undefined);

  // The scheduled check keeps it open while no newer backup exists, and resolves it after one.
  instances.instances = instances.instances.map((i) => ({ ...i, lastPingAt: world.clock.now() }));
  await captureEmf(() => handler({ action: 'check' }));
  assert.deepEqual(await drainInbox(world), []);
  await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms) });
  world.clock.advance(HOUR);
  instances.instances = instances.instances.map((i) => ({ ...i, lastPingAt: world.clock.now() }));
  await captureEmf(() => handler({ action: 'check' }));
  const resolved = await drainInbox(world);
  assert.equal(resolved.length, 1);
  assert.equal(resolved[0].subject, 'coldseal RESOLVED: 1 resolved (monitor) - Backup command failed on web/web-1');
});

test('a timed-out command on an unknown instance still alerts, with the timeout advice', async () => {
  const world = await newWorld({ account });
  const commands = new FakeCommands();
  commands.invocations.set('cmd-9/i-0dead', { status: 'TimedOut', statusDetails: 'ExecutionTimedOut', responseCode: -1, standardError: '', standardOutput: '{"level":"info","msg":"dumping","tier":"weekly"}\n', executionStartedAt: new Date(world.clock.ms - 3 * HOUR), executionEndedAt: new Date(world.clock.ms - HOUR) });
  const result = (await monitor(world, new FakeInstances([]), commands)(commandEvent('cmd-9', 'i-0dead', 'TimedOut'))) as MonitorResult;
  assert.equal(result.findings[0].summary, 'backup command TimedOut on i-0dead (group (untagged), tier weekly) [ExecutionTimedOut]');
  const [sent] = await drainInbox(world);
  assert.match(sent.message, /do: {4}The run exceeded the document's execution timeout/);
  assert.match(sent.message, /\| last lines of the command's error output:\n {2}\| \{"level":"info","msg":"dumping","tier":"weekly"\}/);
});

test('a delivery time-out is named as such: the host never received the command, with its SSM state and what to do', async () => {
  const world = await newWorld({ account });
  const lastPing = new Date(world.clock.ms - 30 * HOUR);
  const web3 = instance('web-3', world, { pingStatus: 'ConnectionLost', lastPingAt: lastPing });
  const commands = new FakeCommands();
  const requested = new Date(world.clock.ms - 18 * HOUR).toISOString();
  // GetCommandInvocation's StatusDetails, written both ways the SSM documentation and API give it.
  for (const [id, details] of [['cmd-d1', 'DeliveryTimedOut'], ['cmd-d2', 'Delivery Timed Out']]) {
    commands.invocations.set(`${id}/${web3.instanceId}`, { status: 'TimedOut', statusDetails: details, responseCode: -1, standardError: '', standardOutput: '', executionStartedAt: undefined, executionEndedAt: undefined });
  }
  const handler = monitor(world, new FakeInstances([web3]), commands);
  const result = (await handler({ ...commandEvent('cmd-d1', web3.instanceId, 'TimedOut'), detail: { ...commandEvent('cmd-d1', web3.instanceId, 'TimedOut').detail, 'requested-date-time': requested } })) as MonitorResult;
  const [finding] = result.findings;
  assert.equal(finding.summary, 'backup command DeliveryTimedOut on web-3 (group web): the host never received the command, so nothing ran');
  assert.equal(finding.since, requested, 'since the send: the host has no run of its own');
  assert.match(finding.detail ?? '', /SSM last heard from the instance at .*\(ping status ConnectionLost\)/);
  assert.doesNotMatch(finding.detail ?? '', /error output/);
  assert.match(finding.action, /offline or its SSM agent could not reach SSM/);
  assert.match(finding.action, /more hosts than the group's maxHosts/);
  assert.match(finding.action, /coldseal trigger --group web --host web-3/);
  assert.doesNotMatch(finding.action, /execution timeout/);
  const [sent] = await drainInbox(world);
  assert.match(sent.message, /backup command DeliveryTimedOut on web-3 \(group web\): the host never received the command/);

  const world2 = await newWorld({ account });
  const spaced = (await monitor(world2, new FakeInstances([web3]), commands)(commandEvent('cmd-d2', web3.instanceId, 'TimedOut'))) as MonitorResult;
  assert.match(spaced.findings[0].summary, /DeliveryTimedOut on web-3 \(group web\): the host never received the command/);
});

test('the SSM command adapter reads invocations and parameters (moto: every command succeeds)', async () => {
  const world = await newWorld({ account });
  const sent = await world.ssm.send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: ['i-0123456789abcdef0'], Parameters: { commands: ['echo hi --tier monthly'] } }));
  // AWS-RunShellScript's one step is named aws:runShellScript (moto names every invocation so).
  const history = new SsmCommandHistory(world.ssm, ['aws:runShellScript']);
  const invocation = await history.invocation(sent.Command!.CommandId!, 'i-0123456789abcdef0');
  assert.equal(invocation?.status, 'Success');
  assert.deepEqual(await history.parameters(sent.Command!.CommandId!), { commands: ['echo hi --tier monthly'] });
});

/**
 * SSM as it answers GetCommandInvocation for the agent's document (two download steps, then the
 * script): per step, by the step's name, and never without one (a document of several steps).
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
 */
function stepwiseSsm(steps: Record<string, { Status: string; ResponseCode: number; StandardErrorContent: string } | undefined>): { client: SSMClient; asked: string[] } {
  const asked: string[] = [];
  const client = {
    send: async (command: GetCommandInvocationCommand) => {
      const name = command.input.PluginName;
      if (!name) throw Object.assign(new Error('the document has more than one step: give PluginName'), { name: 'InvalidPluginName' });
      asked.push(name);
      const step = steps[name];
      if (!step) throw Object.assign(new Error(`no step ${name}`), { name: 'InvalidPluginName' });
      return { ...step, StatusDetails: step.Status, StandardOutputContent: '' };
    },
  } as unknown as SSMClient;
  return { client, asked };
}

test("the SSM command adapter asks for each of the document's steps by name: a failed download is the run's failure, else the script's outcome", async () => {
  const ok = { Status: 'Success', ResponseCode: 0, StandardErrorContent: '' };
  const script = stepwiseSsm({ downloadAgentX64: ok, downloadAgentArm64: ok, runColdsealAgent: { Status: 'Failed', ResponseCode: 3, StandardErrorContent: 'coldseal: this host is s390x; the agent runs on x86_64 and aarch64 Linux' } });
  const failed = await new SsmCommandHistory(script.client).invocation('c', 'i');
  assert.deepEqual([failed?.status, failed?.responseCode, failed?.standardError], ['Failed', 3, 'coldseal: this host is s390x; the agent runs on x86_64 and aarch64 Linux']);
  assert.deepEqual(script.asked, RUN_DOCUMENT_STEPS);

  const download = stepwiseSsm({ downloadAgentX64: { Status: 'Failed', ResponseCode: 1, StandardErrorContent: 'AccessDenied: Access Denied' }, downloadAgentArm64: undefined, runColdsealAgent: undefined });
  const denied = await new SsmCommandHistory(download.client).invocation('c', 'i');
  assert.deepEqual([denied?.status, denied?.responseCode, denied?.standardError], ['Failed', 1, 'AccessDenied: Access Denied']);
  assert.deepEqual(download.asked, ['downloadAgentX64'], 'the first failed step decides');

  const success = await new SsmCommandHistory(stepwiseSsm({ downloadAgentX64: ok, downloadAgentArm64: ok, runColdsealAgent: ok }).client).invocation('c', 'i');
  assert.equal(success?.status, 'Success');
});
