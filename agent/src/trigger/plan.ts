import type { SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { hostNameFrom, NAME_PATTERN, type Tier } from '../../../format/layout';
import { DEFAULT_MAX_HOSTS, runRequest, runSpread, taggedHosts, type RunSpread, type RunTarget } from '../../../format/run-document';
import { deploymentInfoSchema, deploymentParameter, groupParameters, type DeploymentInfo } from '../../../format/parameters';
import { readStoredConfig } from '../config/load';
import { ColdsealError, EXIT } from '../errors';
import { callSsm, type ManagedHost, type TriggerSsm } from './ssm';

/**
 * `coldseal trigger`: run the stack's agent document by hand, on an operator's laptop, exactly as
 * the schedule runs it (same document, tag, spread, failure tolerance and log group), for a whole
 * group, one host, or the drill host; optionally wait for the hosts to finish.
 */

export async function loadDeployment(ssm: TriggerSsm, prefix: string, region: string | undefined): Promise<DeploymentInfo> {
  const name = deploymentParameter(prefix);
  const where = region ? `in region ${region}` : 'in the default region';
  const text = await callSsm(`read the SSM parameter ${name}`, () => ssm.getParameter(name));
  if (text === null) {
    throw new ColdsealError(EXIT.CONFIG, `no coldseal deployment found: the SSM parameter ${name} does not exist ${where}`, 'Deploy the stack (cdk deploy) in this account, or pass --prefix (the stack\'s parameterPrefix) and --region (the stack\'s region)');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = deploymentInfoSchema.safeParse(json);
  if (!parsed.success) {
    throw new ColdsealError(EXIT.CONFIG, `the SSM parameter ${name} does not hold coldseal deployment information this version understands (${parsed.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')})`, 'Deploy the stack with this version of coldseal, or use the coldseal CLI of the deployed version');
  }
  return parsed.data;
}

export interface TriggerOptions {
  /** Optional when the deployment has one group (or, with drill, when the drill names it). */
  readonly group?: string;
  /** A host name (first label of its computer name) or an instance id. */
  readonly host?: string;
  readonly drill?: boolean;
  /** undefined: the calendar decides (auto). */
  readonly tier?: Tier;
  /** undefined: all of the group's sources. */
  readonly sources?: readonly string[];
  /** The run's time limit; undefined: the document's default. */
  readonly timeoutSeconds?: number;
  /** Who asked, for the command's comment (user@machine). */
  readonly requestedBy: string;
  /** The parameter prefix the deployment was read from (to find the group's configuration). */
  readonly prefix: string;
}

export interface TriggerPlan {
  readonly group: string;
  readonly action: 'backup' | 'drill';
  /** What the command goes to, in words. */
  readonly targetDescription: string;
  /** When a host was named: the instance it resolved to. */
  readonly host?: ManagedHost;
  readonly request: SendCommandCommandInput;
  /** How the command spreads over the hosts, and the delivery timeout that lets the last of them run. */
  readonly spread: RunSpread;
  /** Things worth telling the operator before the command is sent (e.g. the host is offline). */
  readonly warnings: readonly string[];
}

/** SendCommand's Comment holds at most 100 characters. */
const COMMENT_LIMIT = 100;

/** Checks the request against the deployment, finds the host, and builds the SendCommand request. */
export async function planTrigger(ssm: TriggerSsm, deployment: DeploymentInfo, options: TriggerOptions): Promise<TriggerPlan> {
  const action = options.drill ? 'drill' : 'backup';
  const group = chooseGroup(deployment, options);
  const warnings: string[] = [];
  if (options.sources) await checkSources(ssm, group, options.sources, options.prefix, warnings);

  const tagKey = options.drill ? deployment.drill!.hostTagKey : deployment.hostTagKey;
  let host: ManagedHost | undefined;
  let target: RunTarget;
  let targetDescription: string;
  if (options.host) {
    host = await findHost(ssm, tagKey, group, options.host, options.drill ? 'drill host' : 'host', warnings);
    target = { InstanceIds: [host.instanceId] };
    targetDescription = `${hostNameFrom(host.computerName || host.instanceId)} (${host.instanceId})`;
  } else {
    target = taggedHosts(tagKey, group);
    targetDescription = `every host tagged ${tagKey}=${group}`;
  }

  const what = `${action} ${group}${host ? ` on ${hostNameFrom(host.computerName || host.instanceId)}` : ''}`;
  const executionTimeoutSeconds = options.timeoutSeconds ?? deployment.executionTimeoutSeconds;
  // As the schedule plans it (infra/lib/schedules.ts): one named host, the drill host, or the group's planned bound.
  const hosts = host || options.drill ? 1 : (deployment.maxHosts?.[group] ?? DEFAULT_MAX_HOSTS);
  let spread: RunSpread;
  try {
    spread = runSpread({ hosts, maxConcurrency: deployment.maxConcurrency, executionTimeoutSeconds });
  } catch (error) {
    throw new ColdsealError(EXIT.USAGE, `cannot send to group ${group}: ${(error as Error).message}`, 'Give a shorter --timeout, or --host to run on one host');
  }
  const request: SendCommandCommandInput = runRequest({
    documentName: deployment.documentName,
    comment: `coldseal trigger by ${options.requestedBy}: ${what}`.slice(0, COMMENT_LIMIT),
    target,
    group,
    action,
    tier: options.tier ?? 'auto',
    sources: options.sources?.length ? options.sources.join(',') : 'all',
    executionTimeoutSeconds,
    // As the schedule sends it: one broken host must not stop the others' runs.
    maxConcurrency: deployment.maxConcurrency,
    maxErrors: deployment.maxErrors,
    timeoutSeconds: spread.deliveryTimeoutSeconds,
    logGroup: deployment.commandLogGroup,
  });
  return { group, action, targetDescription, host, request, spread, warnings };
}

function chooseGroup(deployment: DeploymentInfo, options: TriggerOptions): string {
  const deployed = deployment.groups.join(', ');
  if (options.drill) {
    if (!deployment.drill) throw new ColdsealError(EXIT.USAGE, 'this deployment has no restore drill', 'Add "drill" to the coldseal context (cdk.json) and deploy, or leave out --drill');
    if (options.group && options.group !== deployment.drill.group) {
      throw new ColdsealError(EXIT.USAGE, `the drill is deployed for group ${deployment.drill.group}, not ${options.group}`, `Use --group ${deployment.drill.group} --drill (or leave out --group)`);
    }
    return deployment.drill.group;
  }
  if (!options.group) {
    if (deployment.groups.length === 1) return deployment.groups[0];
    throw new ColdsealError(EXIT.USAGE, `--group is needed: this deployment has the groups ${deployed}`, 'Add --group NAME');
  }
  if (!deployment.groups.includes(options.group)) {
    throw new ColdsealError(EXIT.USAGE, `group "${options.group}" is not deployed (deployed groups: ${deployed})`, 'Use one of those, or add the group to the coldseal context (cdk.json) and deploy');
  }
  return options.group;
}

/** Unknown names would make every host fail the run; say so now when the group's configuration is readable. */
async function checkSources(ssm: TriggerSsm, group: string, sources: readonly string[], prefix: string, warnings: string[]): Promise<void> {
  const name = groupParameters(group, prefix).config;
  let known: string[] | undefined;
  try {
    // The stack stores the sources in parts beside the parameter (format/config-parameter.ts).
    const config = (await readStoredConfig((names) => Promise.all(names.map((n) => ssm.getParameter(n))), name)) as { sources?: { name?: unknown }[] } | null;
    known = Array.isArray(config?.sources) ? config.sources.map((s) => String(s.name)) : undefined;
  } catch (error) {
    warnings.push(`could not read ${name} to check the source names (${(error as Error).message}); the hosts will check them`);
    return;
  }
  if (!known) {
    warnings.push(`could not read ${name} to check the source names; the hosts will check them`);
    return;
  }
  const unknown = sources.filter((s) => !known.includes(s));
  if (unknown.length > 0) {
    throw new ColdsealError(EXIT.USAGE, `group ${group} has no source named ${unknown.map((s) => `"${s}"`).join(', ')} (its sources: ${known.join(', ')})`, 'Use names from that list, or leave out --source to back up all of them');
  }
}

function describeHost(h: ManagedHost): string {
  return `${hostNameFrom(h.computerName || h.instanceId)} (${h.instanceId}, ${h.pingStatus})`;
}

/**
 * The managed instance NAME means among those tagged for the group: the host name the agent
 * uses in S3 keys and alerts (first label of the computer name), or an instance id.
 */
async function findHost(ssm: TriggerSsm, tagKey: string, group: string, name: string, kind: string, warnings: string[]): Promise<ManagedHost> {
  const hosts = await callSsm(`list the managed instances tagged ${tagKey}=${group}`, () => ssm.listTaggedHosts(tagKey, group));
  const matches = hosts.filter((h) => h.instanceId === name || hostNameFrom(h.computerName) === name);
  if (matches.length === 0) {
    const listed = hosts.length ? `its ${kind}s: ${hosts.map(describeHost).join(', ')}` : `no managed instance carries that tag`;
    throw new ColdsealError(EXIT.USAGE, `no ${kind} of group ${group} is named "${name}" (tag ${tagKey}=${group}; ${listed})`, `Use one of those names or an instance id; a host that is missing lacks the tag or is not registered with SSM (check the SSM agent and the instance role)`);
  }
  // A replaced machine can linger in SSM's inventory under the same name: prefer the live one.
  const online = matches.filter((h) => h.pingStatus === 'Online');
  const pick = online.length === 1 ? online[0] : matches.length === 1 ? matches[0] : undefined;
  if (!pick) {
    throw new ColdsealError(EXIT.USAGE, `${matches.length} ${kind}s of group ${group} are named "${name}": ${matches.map(describeHost).join(', ')}`, 'Pass --host with the instance id of the one you mean');
  }
  if (pick.pingStatus !== 'Online') {
    warnings.push(`${describeHost(pick)} is not online in SSM: the command waits for it until SSM's delivery timeout`);
  }
  return pick;
}

export async function sendTrigger(ssm: TriggerSsm, plan: TriggerPlan): Promise<string> {
  return callSsm(`send the SSM document ${plan.request.DocumentName}`, () => ssm.sendCommand(plan.request));
}

/** The line that shows the runs' state from anywhere with the AWS CLI. */
export function followCommand(commandId: string, region: string): string {
  return `aws ssm list-command-invocations --region ${region} --command-id ${commandId} --details`;
}

/** Source names as the document's allowedPattern takes them. */
export function sourceNameProblem(name: string): string | undefined {
  return NAME_PATTERN.test(name) ? undefined : `source "${name}" is not a valid name`;
}
