import { isFailedStatus, notDelivered, type CommandStatusDetail } from '../../../format/command-status';
import { hostNameFrom } from '../../../format/layout';
import { makeFinding, type Finding } from '../../shared/findings';
import type { CommandHistory, CommandInvocation, InstanceDirectory, Log, ManagedInstance } from '../../shared/ports';
import type { Settings } from '../../../format/lambda-settings';


const TAIL_LINES = 15;
const TAIL_CHARS = 1500;

export function tail(text: string): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  const kept = lines.slice(-TAIL_LINES).join('\n');
  return kept.length > TAIL_CHARS ? `...${kept.slice(-TAIL_CHARS)}` : kept;
}

/**
 * The tier is chosen on the host (the calendar), so it is read from what the command said: a
 * "tier" parameter, a --tier argument, or the agent's JSON log lines.
 */
export function tierOf(parameters: Record<string, string[]> | null, invocation: CommandInvocation | null): string | undefined {
  const direct = parameters?.tier?.[0] ?? parameters?.Tier?.[0];
  if (direct) return direct;
  const text = [...Object.values(parameters ?? {}).flat(), invocation?.standardOutput ?? '', invocation?.standardError ?? ''].join('\n');
  return /--tier[= ](daily|weekly|monthly|yearly)\b/.exec(text)?.[1] ?? /"tier"\s*:\s*"(daily|weekly|monthly|yearly)"/.exec(text)?.[1];
}

function advice(status: string, commandId: string, instanceId: string, host: string, group: string): string {
  const fetch = `Full output: aws ssm get-command-invocation --command-id ${commandId} --instance-id ${instanceId}`;
  const rerun = `When fixed, run coldseal trigger --group ${group} --host ${host}; the monitor reports the backup as late until one succeeds.`;
  if (status === 'TimedOut') return `The run exceeded the document's execution timeout: check the dump's size and duration trend and the network path to S3, and raise executionTimeout in the coldseal context if the backup needs longer. ${fetch}. ${rerun}`;
  if (status === 'Cancelled') return `Someone or something (maintenance window, instance stop, a newer command) cancelled the run: check CloudTrail for CancelCommand and the instance's state. ${rerun}`;
  return `Read the error output above (exit codes are listed by coldseal --help). ${fetch}. ${rerun}`;
}

/** Where a failed command ran, as the monitor found the instance behind it. */
interface CommandPlace {
  readonly instance: ManagedInstance | null;
  readonly host: string;
  readonly group: string;
  readonly tier: string | undefined;
}

/** What every command-failed finding says of its place, delivered or not. */
function commandFindingPlace(detail: CommandStatusDetail, { instance, host, group, tier }: CommandPlace) {
  return {
    group: instance?.group,
    host,
    tier,
    where: `SSM command ${detail['command-id']} on ${detail['instance-id']}${instance ? ` (${instance.computerName})` : ''}, document ${detail['document-name']}`,
    subject: `${group}/${host}`,
    check: 'command-failed',
    severity: 'fail',
  } as const;
}

/**
 * A command that never reached the host: nothing ran, so there is no exit code or output to show;
 * what matters is why SSM could not deliver it and what to change.
 */
function notDeliveredFinding(details: 'DeliveryTimedOut' | 'Undeliverable', detail: CommandStatusDetail, on: CommandPlace): Finding {
  const { instance, host, group } = on;
  const instanceId = detail['instance-id'];
  const state = instance
    ? `SSM last heard from the instance at ${instance.lastPingAt?.toISOString() ?? 'no time it remembers'} (ping status ${instance.pingStatus}).`
    : `SSM does not list ${instanceId} as a managed instance tagged for coldseal any more.`;
  const rerun = `When it is back, run coldseal trigger --group ${group} --host ${host}; the monitor reports the backup as late until one succeeds.`;
  const action =
    details === 'Undeliverable'
      ? `SSM could not deliver to this instance at all: it was deregistered, terminated, or is not a Linux managed node. If it was retired, remove its coldseal tag; otherwise re-register its SSM agent. ${rerun}`
      : `The host was offline or its SSM agent could not reach SSM until the command expired: check that the instance is running and its SSM agent is online (aws ssm describe-instance-information --filters Key=InstanceIds,Values=${instanceId}). If the host was online, its turn came too late: the group has more hosts than the group's maxHosts in the coldseal context (cdk.json) plans for, so raise it (or maxConcurrency) and deploy. ${rerun}`;
  return makeFinding({
    ...commandFindingPlace(detail, on),
    since: detail['requested-date-time'],
    summary: `backup command ${details} on ${host} (group ${group}): the host never received the command, so nothing ran`,
    detail: `${state} A delivery time-out is not a failed backup run: there is no exit code and no output.`,
    action,
  });
}

export async function commandFailureFinding(
  deps: { instances: InstanceDirectory; commands: CommandHistory; settings: Settings; log: Log },
  detail: CommandStatusDetail,
): Promise<Finding | undefined> {
  const { settings, log } = deps;
  if (detail['document-name'] !== settings.documentName || !isFailedStatus(detail.status)) {
    log.debug('command status event ignored', { document: detail['document-name'], status: detail.status });
    return undefined;
  }
  const instanceId = detail['instance-id'];
  const commandId = detail['command-id'];
  const instance = await deps.instances.describe(instanceId, settings.tagKey, settings.groups.map((g) => g.name));
  const host = instance ? hostNameFrom(instance.computerName) : instanceId;
  const group = instance?.group ?? '(untagged)';
  const invocation = await deps.commands.invocation(commandId, instanceId);
  const parameters = await deps.commands.parameters(commandId).catch((error: Error) => {
    log.warn('command parameters unavailable', { commandId, error: error.message });
    return null;
  });
  const tier = tierOf(parameters, invocation);
  const on: CommandPlace = { instance, host, group, tier };
  const undelivered = notDelivered(invocation?.statusDetails);
  if (undelivered) return notDeliveredFinding(undelivered, detail, on);
  const code = invocation?.responseCode;
  const errorTail = tail(invocation?.standardError || invocation?.standardOutput || '');
  const since = invocation?.executionEndedAt?.toISOString() ?? invocation?.executionStartedAt?.toISOString() ?? detail['requested-date-time'];
  return makeFinding({
    ...commandFindingPlace(detail, on),
    since,
    summary: `backup command ${detail.status} on ${host} (group ${group}, tier ${tier ?? 'not known'})${code !== undefined && code >= 0 ? `, exit code ${code}` : ''}${invocation?.statusDetails && invocation.statusDetails !== detail.status ? ` [${invocation.statusDetails}]` : ''}`,
    detail: errorTail ? `last lines of the command's error output:\n${errorTail}` : 'the command left no error output',
    action: advice(detail.status, commandId, instanceId, host, group),
  });
}
