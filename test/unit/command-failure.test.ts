import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Settings } from '../../format/lambda-settings';
import type { CommandStatusDetail } from '../../format/command-status';
import type { CommandHistory, CommandInvocation, InstanceDirectory, Log, ManagedInstance } from '../../lambdas/shared/ports';
import { commandFailureFinding } from '../../lambdas/monitor/core/command-failure';

const settings = { documentName: 'coldseal-agent', tagKey: 'coldseal-group', groups: [{ name: 'web' }] } as unknown as Settings;
const log: Log = { debug() {}, info() {}, warn() {}, error() {} };
const web1: ManagedInstance = { instanceId: 'i-1', computerName: 'web-1.example.internal', pingStatus: 'ConnectionLost', lastPingAt: new Date('2026-11-22T00:30:00Z'), group: 'web' };
const event = (status: string, o: Partial<CommandStatusDetail> = {}): CommandStatusDetail => ({ 'command-id': 'cmd-1', 'document-name': 'coldseal-agent', 'instance-id': 'i-1', 'requested-date-time': '2026-11-22T01:00:00Z', status, ...o });
const invocation = (o: Partial<CommandInvocation>): CommandInvocation => ({ status: 'Failed', statusDetails: 'Failed', responseCode: 4, standardError: '', standardOutput: '', executionStartedAt: new Date('2026-11-22T01:00:05Z'), executionEndedAt: new Date('2026-11-22T01:02:00Z'), ...o });

function deps(instance: ManagedInstance | null, run: CommandInvocation | null, parameters: Record<string, string[]> | Error | null = { tier: ['daily'] }) {
  const instances: InstanceDirectory = { listGroup: async () => [], describe: async () => instance };
  const commands: CommandHistory = {
    invocation: async () => run,
    parameters: async () => {
      if (parameters instanceof Error) throw parameters;
      return parameters;
    },
  };
  return { instances, commands, settings, log };
}

test('another document, or a status that is not a failure, is no finding', async () => {
  assert.equal(await commandFailureFinding(deps(web1, null), event('Failed', { 'document-name': 'AWS-RunShellScript' })), undefined);
  for (const status of ['Success', 'InProgress']) assert.equal(await commandFailureFinding(deps(web1, null), event(status)), undefined, status);
});

test('a failed run: host, group, tier, exit code, the tail of its error output and what to run', async () => {
  const f = (await commandFailureFinding(deps(web1, invocation({ standardError: 'connecting...\nerror: source pg: the database server is unreachable\n' })), event('Failed')))!;
  assert.equal(f.id, 'command-failed:web/web-1');
  assert.deepEqual([f.group, f.host, f.tier, f.severity, f.since], ['web', 'web-1', 'daily', 'fail', '2026-11-22T01:02:00.000Z']);
  assert.equal(f.summary, 'backup command Failed on web-1 (group web, tier daily), exit code 4');
  assert.equal(f.detail, "last lines of the command's error output:\nconnecting...\nerror: source pg: the database server is unreachable");
  assert.equal(f.where, 'SSM command cmd-1 on i-1 (web-1.example.internal), document coldseal-agent');
  assert.match(f.action, /^Read the error output above .*aws ssm get-command-invocation --command-id cmd-1 --instance-id i-1.*coldseal trigger --group web --host web-1;/);
});

test('time-outs and cancellations get their own advice; an untagged instance and unknown parameters still give a finding', async () => {
  const timedOut = (await commandFailureFinding(deps(web1, invocation({ status: 'TimedOut', statusDetails: 'ExecutionTimedOut', responseCode: -1 })), event('TimedOut')))!;
  assert.equal(timedOut.summary, 'backup command TimedOut on web-1 (group web, tier daily) [ExecutionTimedOut]');
  assert.match(timedOut.action, /exceeded the document's execution timeout/);
  const cancelled = (await commandFailureFinding(deps(null, null, new Error('throttled')), event('Cancelled')))!;
  assert.equal(cancelled.summary, 'backup command Cancelled on i-1 (group (untagged), tier not known)');
  assert.equal(cancelled.detail, 'the command left no error output');
  assert.equal(cancelled.since, '2026-11-22T01:00:00Z');
  assert.match(cancelled.action, /CancelCommand/);
});

test('a command that never reached the host says so instead of quoting a run', async () => {
  const f = (await commandFailureFinding(deps(web1, invocation({ status: 'TimedOut', statusDetails: 'DeliveryTimedOut', responseCode: undefined })), event('TimedOut')))!;
  assert.equal(f.summary, 'backup command DeliveryTimedOut on web-1 (group web): the host never received the command, so nothing ran');
  assert.match(f.detail!, /^SSM last heard from the instance at 2026-11-22T00:30:00.000Z \(ping status ConnectionLost\)\. A delivery time-out is not a failed backup run/);
  assert.match(f.action, /maxHosts/);
  const gone = (await commandFailureFinding(deps(null, invocation({ status: 'Failed', statusDetails: 'Undeliverable' })), event('Failed')))!;
  assert.match(gone.detail!, /^SSM does not list i-1 as a managed instance tagged for coldseal any more\./);
  assert.match(gone.action, /remove its coldseal tag/);
});
