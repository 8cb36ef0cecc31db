import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { deploymentParameter, groupParameters, type DeploymentInfo } from '../../format/parameters';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import type { CommandState, Invocation, ManagedHost, TriggerSsm } from '../../agent/src/trigger/ssm';
import { followCommand, loadDeployment, planTrigger, sourceNameProblem, type TriggerOptions } from '../../agent/src/trigger/plan';

/** SSM as far as planning reads it: parameters and the tagged inventory. Nothing may be sent while planning. */
class PlanningSsm implements TriggerSsm {
  readonly parameters = new Map<string, string>();
  readonly hostsByTag = new Map<string, ManagedHost[]>();
  readonly calls: string[] = [];
  async getParameter(name: string): Promise<string | null> {
    this.calls.push(`get ${name}`);
    return this.parameters.get(name) ?? null;
  }
  async listTaggedHosts(tagKey: string, value: string): Promise<ManagedHost[]> {
    this.calls.push(`hosts ${tagKey}=${value}`);
    return this.hostsByTag.get(`${tagKey}=${value}`) ?? [];
  }
  sendCommand(_input: SendCommandCommandInput): Promise<string> {
    throw new Error('planning must not send');
  }
  command(_id: string): Promise<CommandState | null> {
    throw new Error('planning must not poll');
  }
  invocations(_id: string): Promise<Invocation[]> {
    throw new Error('planning must not poll');
  }
}

const deployment: DeploymentInfo = {
  formatVersion: 1,
  documentName: 'coldseal-agent',
  region: 'eu-west-1',
  hostTagKey: 'coldseal-group',
  drill: { group: 'web', hostTagKey: 'coldseal-drill' },
  groups: ['web', 'db'],
  commandLogGroup: '/coldseal/runs',
  executionTimeoutSeconds: 7200,
  maxConcurrency: '10',
  maxErrors: '100%',
  maxHosts: { web: 25 },
};
const options = (o: Partial<TriggerOptions> = {}): TriggerOptions => ({ requestedBy: 'ops@laptop', prefix: '/coldseal', ...o });

async function usageError(plan: Promise<unknown>, message: RegExp, hint?: RegExp): Promise<void> {
  await assert.rejects(plan, (e: unknown) => {
    assert.ok(e instanceof ColdsealError, String(e));
    assert.equal(e.exitCode, EXIT.USAGE);
    assert.match(e.message, message);
    if (hint) assert.match(e.hint!, hint);
    return true;
  });
}

test('a group by tag: the schedule\'s spread for its planned hosts, the document, who asked', async () => {
  const ssm = new PlanningSsm();
  const plan = await planTrigger(ssm, deployment, options({ group: 'web' }));
  assert.equal(plan.action, 'backup');
  assert.equal(plan.targetDescription, 'every host tagged coldseal-group=web');
  // 25 planned hosts, 10 at a time: 3 waves of up to 2 h, then an hour's grace for offline hosts.
  assert.deepEqual({ waves: plan.spread.waves, delivery: plan.spread.deliveryTimeoutSeconds }, { waves: 3, delivery: 2 * 7200 + 3600 });
  assert.deepEqual(plan.request, {
    DocumentName: 'coldseal-agent',
    DocumentVersion: '$LATEST',
    Comment: 'coldseal trigger by ops@laptop: backup web',
    Targets: [{ Key: 'tag:coldseal-group', Values: ['web'] }],
    Parameters: { group: ['web'], action: ['backup'], tier: ['auto'], sources: ['all'], executionTimeout: ['7200'] },
    MaxConcurrency: '10',
    MaxErrors: '100%',
    TimeoutSeconds: 18000,
    CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: '/coldseal/runs' },
  });
  assert.deepEqual(plan.warnings, []);
  assert.deepEqual(ssm.calls, [], 'no source names given: nothing to read');
});

test('the group: the only one when there is one; otherwise named and deployed', async () => {
  const ssm = new PlanningSsm();
  assert.equal((await planTrigger(ssm, { ...deployment, groups: ['db'] }, options())).group, 'db');
  await usageError(planTrigger(ssm, deployment, options()), /--group is needed: this deployment has the groups web, db/, /Add --group NAME/);
  await usageError(planTrigger(ssm, deployment, options({ group: 'mail' })), /group "mail" is not deployed \(deployed groups: web, db\)/);
});

test('--drill: the drill\'s group and tag, one host; refused when there is no drill or another group is named', async () => {
  const ssm = new PlanningSsm();
  const plan = await planTrigger(ssm, deployment, options({ drill: true }));
  assert.equal(plan.group, 'web');
  assert.equal(plan.action, 'drill');
  assert.deepEqual(plan.request.Targets, [{ Key: 'tag:coldseal-drill', Values: ['web'] }]);
  assert.equal(plan.spread.waves, 1);
  assert.deepEqual(plan.request.Parameters?.action, ['drill']);
  await usageError(planTrigger(ssm, deployment, options({ drill: true, group: 'db' })), /the drill is deployed for group web, not db/, /--group web --drill/);
  await usageError(planTrigger(ssm, { ...deployment, drill: undefined }, options({ drill: true })), /this deployment has no restore drill/);
});

test('--host: by host name or instance id among the tagged instances; the live one of two with one name', async () => {
  const ssm = new PlanningSsm();
  ssm.hostsByTag.set('coldseal-group=web', [
    { instanceId: 'i-old', computerName: 'web-1.example.internal', pingStatus: 'ConnectionLost' },
    { instanceId: 'i-new', computerName: 'web-1.example.internal', pingStatus: 'Online' },
    { instanceId: 'i-2', computerName: 'web-2.example.internal', pingStatus: 'Inactive' },
  ]);
  const plan = await planTrigger(ssm, deployment, options({ group: 'web', host: 'web-1', tier: 'weekly', timeoutSeconds: 600 }));
  assert.deepEqual(plan.request.InstanceIds, ['i-new']);
  assert.equal(plan.request.Targets, undefined);
  assert.equal(plan.targetDescription, 'web-1 (i-new)');
  assert.equal(plan.request.Comment, 'coldseal trigger by ops@laptop: backup web on web-1');
  assert.deepEqual(plan.request.Parameters?.tier, ['weekly']);
  assert.deepEqual(plan.request.Parameters?.executionTimeout, ['600']);
  assert.equal(plan.spread.waves, 1);

  const offline = await planTrigger(ssm, deployment, options({ group: 'web', host: 'i-2' }));
  assert.equal(offline.host?.instanceId, 'i-2');
  assert.deepEqual(offline.warnings, ['web-2 (i-2, Inactive) is not online in SSM: the command waits for it until SSM\'s delivery timeout']);

  await usageError(planTrigger(ssm, deployment, options({ group: 'web', host: 'web-9' })), /no host of group web is named "web-9" \(tag coldseal-group=web; its hosts: web-1 \(i-old, ConnectionLost\), web-1 \(i-new, Online\), web-2 \(i-2, Inactive\)\)/);
  await usageError(planTrigger(ssm, deployment, options({ group: 'db', host: 'db-1' })), /no managed instance carries that tag/);
  ssm.hostsByTag.get('coldseal-group=web')!.push({ instanceId: 'i-twin', computerName: 'web-1', pingStatus: 'Online' });
  await usageError(planTrigger(ssm, deployment, options({ group: 'web', host: 'web-1' })), /^3 hosts of group web are named "web-1": web-1 \(i-old, ConnectionLost\), web-1 \(i-new, Online\), web-1 \(i-twin, Online\)$/, /instance id/);
});

test('--source: checked against the group\'s stored configuration when it is readable; a warning when not', async () => {
  const ssm = new PlanningSsm();
  const config = groupParameters('web', '/coldseal').config;
  ssm.parameters.set(config, JSON.stringify({ sources: [{ name: 'pg' }, { name: 'files' }] }));
  const plan = await planTrigger(ssm, deployment, options({ group: 'web', sources: ['pg', 'files'] }));
  assert.deepEqual(plan.request.Parameters?.sources, ['pg,files']);
  assert.deepEqual(plan.warnings, []);
  await usageError(planTrigger(ssm, deployment, options({ group: 'web', sources: ['pg', 'mysql', 'redis'] })), /group web has no source named "mysql", "redis" \(its sources: pg, files\)/);

  ssm.parameters.delete(config);
  const unchecked = await planTrigger(ssm, deployment, options({ group: 'web', sources: ['anything'] }));
  assert.deepEqual(unchecked.warnings, [`could not read ${config} to check the source names; the hosts will check them`]);
  ssm.parameters.set(config, '{not json');
  const unreadable = await planTrigger(ssm, deployment, options({ group: 'web', sources: ['anything'] }));
  assert.match(unreadable.warnings[0], new RegExp(`^could not read ${config} to check the source names \\(.+\\); the hosts will check them$`));
});

test('the comment fits SendCommand\'s 100 characters; a spread beyond SSM\'s 30 days is refused', async () => {
  const ssm = new PlanningSsm();
  const plan = await planTrigger(ssm, deployment, options({ group: 'web', requestedBy: `${'x'.repeat(120)}@host` }));
  assert.equal(plan.request.Comment!.length, 100);
  // 200 hosts one at a time, 2 days each: far beyond what SSM waits to deliver.
  await usageError(planTrigger(ssm, { ...deployment, maxConcurrency: '1', maxHosts: { web: 200 } }, options({ group: 'web', timeoutSeconds: 172800 })), /^cannot send to group web: .*30 days/, /shorter --timeout, or --host/);
});

test('loadDeployment: missing, unreadable and off-schema parameters are CONFIG errors saying what to do', async () => {
  const ssm = new PlanningSsm();
  const name = deploymentParameter('/coldseal');
  await assert.rejects(loadDeployment(ssm, '/coldseal', 'eu-west-1'), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.CONFIG && e.message === `no coldseal deployment found: the SSM parameter ${name} does not exist in region eu-west-1` && /--prefix .* --region/.test(e.hint!));
  await assert.rejects(loadDeployment(ssm, '/coldseal', undefined), /in the default region/);
  ssm.parameters.set(name, 'not json');
  await assert.rejects(loadDeployment(ssm, '/coldseal', undefined), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.CONFIG && /does not hold coldseal deployment information this version understands \(value: /.test(e.message));
  ssm.parameters.set(name, JSON.stringify({ ...deployment, groups: [] }));
  await assert.rejects(loadDeployment(ssm, '/coldseal', undefined), /groups: /);
  ssm.parameters.set(name, JSON.stringify(deployment));
  assert.deepEqual(await loadDeployment(ssm, '/coldseal', undefined), deployment);
});

test('source names as the document accepts them; the follow-up command line', () => {
  assert.equal(sourceNameProblem('pg-main_1'), undefined);
  for (const bad of ['-pg', 'p g', 'pg;rm', '', 'x'.repeat(64)]) assert.equal(sourceNameProblem(bad), `source "${bad}" is not a valid name`);
  assert.equal(followCommand('cmd-123', 'eu-west-1'), 'aws ssm list-command-invocations --region eu-west-1 --command-id cmd-123 --details');
});
