import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateDocumentCommand, GetCommandInvocationCommand, ListCommandsCommand, PutParameterCommand, SSMClient, type Command as SsmCommand, type SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { deploymentParameter, groupParameters, type DeploymentInfo } from '../../format/parameters';
import { runTrigger, type TriggerResult } from '../../agent/src/commands/trigger';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import type { Log } from '../../agent/src/log';
import { SdkTriggerSsm, type CommandState, type Invocation, type ManagedHost, type TriggerSsm } from '../../agent/src/trigger/ssm';
import { documentParameters } from '../../format/run-document';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { uniqueName } from '../harness/aws';

/**
 * coldseal trigger. Against moto: reading the deployment parameter, the group's configuration,
 * and SendCommand (moto records the request and says every run succeeded). moto has no managed
 * instance inventory (DescribeInstanceInformation with a tag filter answers HTTP 500) and no
 * ListCommandInvocations, so host resolution and --wait run against fakes of those two calls.
 */

const DOCUMENT_TIMEOUT = 14400;
let sandbox: AgentSandbox;
let ssm: SSMClient;
let env: Record<string, string>;
let deployment: DeploymentInfo;

before(async () => {
  sandbox = await createAgentSandbox();
  const { forcePathStyle: _f, ...plain } = sandbox.account.clientConfig;
  ssm = new SSMClient(plain);
  env = { AWS_ENDPOINT_URL: sandbox.account.clientConfig.endpoint };
  const documentName = uniqueName('Coldseal-ColdsealAgentRunAgent');
  await ssm.send(
    new CreateDocumentCommand({
      Name: documentName,
      DocumentType: 'Command',
      DocumentFormat: 'JSON',
      Content: JSON.stringify({ schemaVersion: '2.2', description: 'stand-in of the agent document', parameters: documentParameters(DOCUMENT_TIMEOUT), mainSteps: [{ action: 'aws:runShellScript', name: 'run', inputs: { runCommand: ['true'] } }] }),
    }),
  );
  deployment = {
    formatVersion: 1,
    documentName,
    region: sandbox.account.clientConfig.region,
    hostTagKey: 'coldseal-group',
    drill: { group: 'db', hostTagKey: 'coldseal-drill' },
    groups: ['db', 'web'],
    commandLogGroup: 'Coldseal-ColdsealSchedulesCommandOutput-XyZ',
    executionTimeoutSeconds: DOCUMENT_TIMEOUT,
    maxConcurrency: '10',
    maxErrors: '100%',
    maxHosts: { db: 120 },
  };
  await ssm.send(new PutParameterCommand({ Name: deploymentParameter(), Type: 'String', Value: JSON.stringify(deployment) }));
  // Only the source names matter to trigger; the hosts read the rest.
  await ssm.send(new PutParameterCommand({ Name: groupParameters('db').config, Type: 'String', Value: JSON.stringify({ group: 'db', sources: [{ name: 'pg' }, { name: 'etc' }] }) }));
});

async function sentCommand(commandId: string): Promise<SsmCommand> {
  const command = (await ssm.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
  assert.ok(command, `moto has no command ${commandId}`);
  return command;
}

/** What the document accepts: every parameter it declares, each value within its pattern or values. */
function assertDocumentAccepts(parameters: Record<string, string[]>): void {
  const declared = documentParameters(DOCUMENT_TIMEOUT);
  assert.deepEqual(Object.keys(parameters).sort(), Object.keys(declared).sort());
  for (const [name, [value]] of Object.entries(parameters)) {
    const spec = declared[name] as { allowedPattern?: string; allowedValues?: string[] };
    if (spec.allowedPattern) assert.match(value, new RegExp(spec.allowedPattern), name);
    if (spec.allowedValues) assert.ok(spec.allowedValues.includes(value), `${name}=${value}`);
  }
}

const commandIdIn = (stdout: string): string => stdout.match(/command ([0-9a-f-]{36})/)![1];

describe('against moto: the deployment parameter and SendCommand', () => {
  test('a group by tag: the deployed document, the schedule\'s spread, the parameters, who asked, and how to follow it', async () => {
    const result = await sandbox.runCli(['trigger', '--group', 'db', '--tier', 'weekly', '--source', 'pg', '--timeout', '7200'], env);
    assert.equal(result.code, EXIT.OK, result.log);
    const commandId = commandIdIn(result.stdout);
    assert.match(result.stdout, /sent backup of group db to every host tagged coldseal-group=db/);
    assert.ok(result.stdout.includes(`follow it: aws ssm list-command-invocations --region us-east-1 --command-id ${commandId} --details`), result.stdout);
    assert.ok(result.stdout.includes(`output: CloudWatch log group ${deployment.commandLogGroup}`));

    const sent = await sentCommand(commandId);
    assert.equal(sent.DocumentName, deployment.documentName);
    assert.deepEqual(sent.Targets, [{ Key: 'tag:coldseal-group', Values: ['db'] }]);
    assert.deepEqual(sent.Parameters, { group: ['db'], action: ['backup'], tier: ['weekly'], sources: ['pg'], executionTimeout: ['7200'] });
    assertDocumentAccepts(sent.Parameters!);
    assert.equal(sent.MaxConcurrency, '10');
    assert.equal(sent.MaxErrors, '100%');
    // As the schedule plans it: the deployment's 120 hosts of db, 12 waves of up to 2 h (--timeout), then an hour's grace.
    assert.equal(sent.TimeoutSeconds, 11 * 7200 + 3600);
    assert.match(sent.Comment ?? '', /^coldseal trigger by \S+@\S+: backup db$/);
  });

  test('--drill targets the drill tag with action drill; --json prints the result for scripts', async () => {
    const result = await sandbox.runCli(['--json', 'trigger', '--drill'], env);
    assert.equal(result.code, EXIT.OK, result.log);
    const printed = JSON.parse(result.stdout) as TriggerResult;
    assert.equal(printed.action, 'drill');
    assert.equal(printed.group, 'db');
    const sent = await sentCommand(printed.commandId);
    assert.deepEqual(sent.Targets, [{ Key: 'tag:coldseal-drill', Values: ['db'] }]);
    assert.deepEqual(sent.Parameters, { group: ['db'], action: ['drill'], tier: ['auto'], sources: ['all'], executionTimeout: [String(DOCUMENT_TIMEOUT)] });
    assertDocumentAccepts(sent.Parameters!);
  });

  test('no deployment parameter: says to deploy the stack or pass --prefix/--region', async () => {
    const result = await sandbox.runCli(['trigger', '--group', 'db', '--prefix', '/elsewhere'], env);
    assert.equal(result.code, EXIT.CONFIG);
    assert.match(result.log, /no coldseal deployment found: the SSM parameter \/elsewhere\/deployment does not exist in region us-east-1/);
    assert.match(result.log, /Deploy the stack \(cdk deploy\) in this account, or pass --prefix .* and --region/);
  });

  test('bad input is refused before anything is sent, each time naming what is wrong and what to use', async () => {
    const before = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
    const cases: [string[], RegExp][] = [
      [['--group', 'nope'], /group "nope" is not deployed \(deployed groups: db, web\)/],
      [['--host', 'db-1'], /--group is needed: this deployment has the groups db, web/],
      [['--group', 'web', '--drill'], /the drill is deployed for group db, not web\. Use --group db --drill/],
      [['--group', 'db', '--source', 'pg,mysql'], /group db has no source named "mysql" \(its sources: pg, etc\)/],
      [['--group', 'db', '--tier', 'hourly'], /--tier "hourly" is not a tier/],
      [['--group', 'db', '--source', 'a;b'], /source "a;b" is not a valid name/],
      [['--group', 'db', '--drill', '--tier', 'weekly'], /--tier and --source apply to a backup, not to a drill/],
      [['--group', 'db', '--timeout', '10'], /--timeout "10" is not a number of seconds from 60 to 172800/],
    ];
    for (const [args, message] of cases) {
      const result = await sandbox.runCli(['trigger', ...args], env);
      assert.equal(result.code, EXIT.USAGE, `${args.join(' ')}: ${result.log}`);
      assert.match(result.log, message, args.join(' '));
    }
    assert.equal((await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0, before, 'nothing was sent');
  });
});

/** Everything from moto except the managed-instance inventory, which moto lacks. */
function withHosts(hosts: Record<string, ManagedHost[]>): TriggerSsm & { asked: string[] } {
  const real = new SdkTriggerSsm(ssm);
  const asked: string[] = [];
  return {
    asked,
    getParameter: (name) => real.getParameter(name),
    listTaggedHosts: async (tagKey, value) => {
      asked.push(`${tagKey}=${value}`);
      return hosts[`${tagKey}=${value}`] ?? [];
    },
    sendCommand: (input) => real.sendCommand(input),
    command: (id) => real.command(id),
    invocations: (id) => real.invocations(id),
  };
}

function captureLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const put = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  return { lines, debug: put('debug'), info: put('info'), warn: put('warn'), error: put('error'), progress: () => undefined, endProgress: () => undefined };
}

const host = (instanceId: string, computerName: string, pingStatus = 'Online'): ManagedHost => ({ instanceId, computerName, pingStatus });

describe('--host: the named host among the group\'s tagged instances (inventory faked, SendCommand in moto)', () => {
  const fleet = {
    'coldseal-group=db': [host('i-0aaa', 'db-1.eu-west-3.compute.internal'), host('i-0bbb', 'db-2.internal'), host('mi-0ccc', 'db-3', 'ConnectionLost')],
    'coldseal-drill=db': [host('i-0ddd', 'drill-1.internal')],
  };

  test('sends to that instance only; moto then has its invocation of the document', async () => {
    const fake = withHosts(fleet);
    const printed: string[] = [];
    const result = await runTrigger({ group: 'db', host: 'db-2' }, captureLog(), { ssm: fake, requestedBy: 'ops@laptop', print: (l) => printed.push(l) });
    assert.deepEqual(fake.asked, ['coldseal-group=db']);
    assert.equal(result.target, 'db-2 (i-0bbb)');
    const sent = await sentCommand(result.commandId);
    assert.deepEqual(sent.InstanceIds, ['i-0bbb']);
    assert.deepEqual(sent.Targets, []);
    assert.equal(sent.TimeoutSeconds, 3600, 'one host: its turn comes at once');
    assert.equal(sent.Comment, 'coldseal trigger by ops@laptop: backup db on db-2');
    const invocation = await ssm.send(new GetCommandInvocationCommand({ CommandId: result.commandId, InstanceId: 'i-0bbb' }));
    assert.equal(invocation.DocumentName, deployment.documentName);
    assert.ok(printed.some((l) => l.includes(`--command-id ${result.commandId} --details`)));
  });

  test('--host with --drill looks among the drill-tagged instances; an instance id works as a name', async () => {
    const fake = withHosts(fleet);
    const drill = await runTrigger({ host: 'drill-1', drill: true }, captureLog(), { ssm: fake, print: () => undefined });
    assert.deepEqual(fake.asked, ['coldseal-drill=db']);
    assert.deepEqual((await sentCommand(drill.commandId)).InstanceIds, ['i-0ddd']);
    const byId = await runTrigger({ group: 'db', host: 'i-0aaa' }, captureLog(), { ssm: fake, print: () => undefined });
    assert.deepEqual((await sentCommand(byId.commandId)).InstanceIds, ['i-0aaa']);
  });

  test('an offline host is still sent to, with a warning', async () => {
    const log = captureLog();
    const result = await runTrigger({ group: 'db', host: 'db-3' }, log, { ssm: withHosts(fleet), print: () => undefined });
    assert.deepEqual((await sentCommand(result.commandId)).InstanceIds, ['mi-0ccc']);
    assert.ok(log.lines.some((l) => /^warn: db-3 \(mi-0ccc, ConnectionLost\) is not online in SSM/.test(l)), log.lines.join('\n'));
  });

  test('an unknown name lists the group\'s hosts; a name two live instances share asks for the instance id', async () => {
    await assert.rejects(runTrigger({ group: 'db', host: 'db-9' }, captureLog(), { ssm: withHosts(fleet), print: () => undefined }), (error: ColdsealError) => {
      assert.equal(error.exitCode, EXIT.USAGE);
      assert.equal(error.message, 'no host of group db is named "db-9" (tag coldseal-group=db; its hosts: db-1 (i-0aaa, Online), db-2 (i-0bbb, Online), db-3 (mi-0ccc, ConnectionLost))');
      assert.match(error.hint ?? '', /lacks the tag or is not registered with SSM/);
      return true;
    });
    await assert.rejects(runTrigger({ group: 'web', host: 'web-1' }, captureLog(), { ssm: withHosts(fleet), print: () => undefined }), /no host of group web is named "web-1" \(tag coldseal-group=web; no managed instance carries that tag\)/);
    const twins = withHosts({ 'coldseal-group=db': [host('i-old', 'db-1.internal', 'ConnectionLost'), host('i-new', 'db-1.internal'), host('i-new2', 'db-1')] });
    await assert.rejects(runTrigger({ group: 'db', host: 'db-1' }, captureLog(), { ssm: twins, print: () => undefined }), (error: ColdsealError) => {
      assert.match(error.message, /^3 hosts of group db are named "db-1": db-1 \(i-old, ConnectionLost\), db-1 \(i-new, Online\), db-1 \(i-new2, Online\)$/);
      assert.match(error.hint ?? '', /instance id/);
      return true;
    });
    // A stale registration of a replaced machine does not make the name ambiguous.
    const replaced = withHosts({ 'coldseal-group=db': [host('i-old', 'db-1.internal', 'ConnectionLost'), host('i-new', 'db-1.internal')] });
    const result = await runTrigger({ group: 'db', host: 'db-1' }, captureLog(), { ssm: replaced, print: () => undefined });
    assert.deepEqual((await sentCommand(result.commandId)).InstanceIds, ['i-new']);
  });
});

/** A fake SSM whose command goes through the given states, one per poll, the last one repeating. */
function scripted(states: { command: CommandState | null; invocations: Invocation[] }[]): TriggerSsm & { sent: SendCommandCommandInput[]; polls: number } {
  const fake = {
    sent: [] as SendCommandCommandInput[],
    polls: 0,
    getParameter: async (name: string) => (name === deploymentParameter() ? JSON.stringify(deployment) : null),
    listTaggedHosts: async () => [host('i-0aaa', 'db-1.internal'), host('i-0bbb', 'db-2.internal')],
    sendCommand: async (input: SendCommandCommandInput) => {
      fake.sent.push(input);
      return '11111111-2222-3333-4444-555555555555';
    },
    command: async () => states[Math.min(fake.polls, states.length - 1)].command,
    invocations: async () => states[Math.min(fake.polls++, states.length - 1)].invocations,
  };
  return fake;
}

const inv = (instanceId: string, instanceName: string, status: string, responseCode?: number, output = '', statusDetails = status): Invocation => ({ instanceId, instanceName, status, statusDetails, responseCode, output });

/** A clock that the waits advance, so a 4-hour limit takes no time. */
function fakeTime(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return { now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)), slept };
}

async function triggerAndWait(fake: TriggerSsm, extra: { waitLimit?: string } = {}) {
  const log = captureLog();
  const printed: string[] = [];
  const time = fakeTime();
  const result = await runTrigger({ group: 'db', wait: true, ...extra }, log, { ssm: fake, print: (l) => printed.push(l), wait: { now: time.now, sleep: time.sleep, pollSeconds: 10 } });
  return { result, log: log.lines.join('\n'), printed: printed.join('\n'), time };
}

describe('--wait (ListCommandInvocations faked: moto lacks it)', () => {
  test('waits through pending and running until every host succeeded: exit 0, with progress', async () => {
    const fake = scripted([
      { command: { status: 'Pending', targetCount: 0 }, invocations: [] },
      { command: { status: 'InProgress', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1.internal', 'InProgress'), inv('i-0bbb', 'db-2.internal', 'Pending')] },
      { command: { status: 'InProgress', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1.internal', 'Success', 0), inv('i-0bbb', 'db-2.internal', 'InProgress')] },
      { command: { status: 'Success', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1.internal', 'Success', 0), inv('i-0bbb', 'db-2.internal', 'Success', 0)] },
    ]);
    const { result, log, printed, time } = await triggerAndWait(fake);
    assert.equal(result.exitCode, EXIT.OK);
    assert.equal(result.wait?.finished, true);
    assert.equal(fake.polls, 4);
    assert.deepEqual(time.slept, [10000, 10000, 10000]);
    assert.match(log, /waiting for command 11111111-2222-3333-4444-555555555555: 0 hosts: no host has it yet \(0 s\)/);
    assert.match(log, /2 hosts: 1 InProgress, 1 Pending \(10 s\)/);
    assert.match(printed, /^Success {5}db-1 \(i-0aaa\) {2}exit 0$/m);
    assert.match(printed, /^Success {5}db-2 \(i-0bbb\) {2}exit 0$/m);
    assert.doesNotMatch(log, /^error/m);
  });

  test('one host failed: PARTIAL, naming the host, its status, exit code and the tail of its output', async () => {
    const output = [...Array.from({ length: 30 }, (_, n) => `{"level":"info","message":"line ${n}"}`), 'coldseal: pg_dump: error: connection to server failed: FATAL: password authentication failed'].join('\n');
    const fake = scripted([{ command: { status: 'Failed', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1.internal', 'Success', 0), inv('i-0bbb', 'db-2.internal', 'Failed', EXIT.SOURCE, output)] }]);
    const { result, log, printed } = await triggerAndWait(fake);
    assert.equal(result.exitCode, EXIT.PARTIAL);
    assert.match(printed, /^Failed {6}db-2 \(i-0bbb\) {2}exit 4$/m);
    assert.match(printed, /^ {4}\| coldseal: pg_dump: error: connection to server failed: FATAL: password authentication failed$/m);
    assert.match(printed, /\| \{"level":"info","message":"line 29"\}/);
    assert.doesNotMatch(printed, /"line 10"/, 'only the tail of the output');
    assert.match(log, /error: 1 of 2 hosts did not succeed\. The exit codes are listed by coldseal --help; the full output is in the log group Coldseal-ColdsealSchedulesCommandOutput-XyZ/);
  });

  test('every host failed for the same reason: the agent\'s exit code; mixed or SSM-level failures: FAILURE', async () => {
    const same = await triggerAndWait(scripted([{ command: { status: 'Failed', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1', 'Failed', EXIT.SOURCE, 'x'), inv('i-0bbb', 'db-2', 'Failed', EXIT.SOURCE, 'y')] }]));
    assert.equal(same.result.exitCode, EXIT.SOURCE);
    const mixed = await triggerAndWait(scripted([{ command: { status: 'Failed', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1', 'Failed', EXIT.SOURCE), inv('i-0bbb', 'db-2', 'TimedOut', -1, '', 'DeliveryTimedOut')] }]));
    assert.equal(mixed.result.exitCode, EXIT.FAILURE);
    assert.match(mixed.printed, /^TimedOut {4}db-2 \(i-0bbb\) {2}DeliveryTimedOut$/m);
  });

  test('no host carries the tag: FAILURE, saying to tag the hosts', async () => {
    const { result, log } = await triggerAndWait(scripted([{ command: { status: 'Success', targetCount: 0 }, invocations: [] }]));
    assert.equal(result.exitCode, EXIT.FAILURE);
    assert.match(log, /no host received command \S+: no managed instance carries the tag coldseal-group=db\. Tag the hosts/);
  });

  test('the time limit: stops waiting (the command goes on), names the hosts still running, exits non-zero', async () => {
    const fake = scripted([{ command: { status: 'InProgress', targetCount: 2 }, invocations: [inv('i-0aaa', 'db-1.internal', 'Success', 0), inv('i-0bbb', 'db-2.internal', 'InProgress')] }]);
    const { result, log, time } = await triggerAndWait(fake, { waitLimit: '25' });
    assert.equal(result.wait?.finished, false);
    assert.equal(result.exitCode, EXIT.PARTIAL);
    assert.deepEqual(time.slept, [10000, 10000, 5000], 'the last wait ends at the limit');
    assert.match(log, /stopped waiting after 25 s \(--wait-limit 25\); command \S+ goes on on db-2 \(i-0bbb\)\. Follow it with: aws ssm list-command-invocations --region us-east-1 --command-id \S+ --details/);

    const nothingYet = await triggerAndWait(scripted([{ command: { status: 'InProgress', targetCount: 1 }, invocations: [inv('i-0bbb', 'db-2', 'InProgress')] }]));
    // Without --wait-limit: the document's time limit plus ten minutes of delivery.
    assert.equal(nothingYet.result.wait?.elapsedSeconds, DOCUMENT_TIMEOUT + 600);
    assert.equal(nothingYet.result.exitCode, EXIT.FAILURE);
  });
});
