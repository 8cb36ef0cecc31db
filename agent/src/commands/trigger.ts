import { hostname, userInfo } from 'node:os';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Command } from 'commander';
import { isFailedStatus, isTerminalStatus } from '../../../format/command-status';
import { MAX_EXECUTION_TIMEOUT_SECONDS } from '../../../format/run-document';
import { assertName, hostNameFrom, type Tier } from '../../../format/layout';
import { DEFAULT_PARAMETER_PREFIX, normalizePrefix } from '../../../format/parameters';
import { ColdsealError, EXIT, type ExitCode } from '../errors';
import type { Log } from '../log';
import { followCommand, loadDeployment, planTrigger, sendTrigger, sourceNameProblem } from '../trigger/plan';
import { SdkTriggerSsm, type TriggerSsm } from '../trigger/ssm';
import { hostLabel, outputTail, waitExitCode, waitForCommand, type WaitOptions, type WaitOutcome } from '../trigger/wait';
import { forcedTierFlag, SOURCES_FLAG, validateRunScope, wantsJson, withFlags, type GetLog, type RunAction, type RunScopeOptions } from './options';

export interface TriggerCommandOptions extends RunScopeOptions {
  readonly group?: string;
  readonly host?: string;
  readonly drill?: boolean;
  readonly timeout?: string;
  readonly wait?: boolean;
  readonly waitLimit?: string;
  readonly prefix?: string;
  readonly region?: string;
}

export function defineTriggerCommand(program: Command, run: RunAction, log: GetLog): void {
  withFlags(
    program.command('trigger').description("run the deployed agent document now, as the schedule does: a group's hosts, one host, or the drill (from an operator's machine)"),
    { flags: '--group <name>', description: 'host group (default: the only deployed group, or the drill\'s with --drill)' },
    { flags: '--host <name>', description: 'only this host: its name as alerts show it (first label of its host name) or its instance id' },
    { flags: '--drill', description: 'run the restore drill on the drill host instead of a backup' },
    forcedTierFlag(),
    SOURCES_FLAG,
    { flags: '--timeout <seconds>', description: "the run's time limit (default: the document's)" },
    { flags: '--wait', description: 'wait until every host has finished; exit with the outcome' },
    { flags: '--wait-limit <seconds>', description: 'stop waiting after this long (default: the run\'s time limit + 10 minutes)' },
    { flags: '--prefix <prefix>', description: "the stack's parameter prefix", default: DEFAULT_PARAMETER_PREFIX },
    { flags: '--region <region>', description: "the stack's region (default: AWS_REGION)" },
  ).action((options: TriggerCommandOptions, command: Command) =>
    run(async () => {
      const json = wantsJson(command);
      // With --json, stdout holds only the JSON result.
      const result = await runTrigger(options, log(), json ? { print: (line) => console.error(line) } : {});
      if (json) console.log(JSON.stringify(result, null, 2));
      return result.exitCode;
    }),
  );
}

export interface ValidTriggerOptions {
  readonly group?: string;
  readonly host?: string;
  readonly drill: boolean;
  readonly tier?: Tier;
  readonly sources?: string[];
  readonly timeoutSeconds?: number;
  readonly wait: boolean;
  readonly waitLimitSeconds?: number;
  readonly prefix: string;
  readonly region?: string;
}

/** The document's executionTimeout bounds (infra/lib/agent-delivery.ts). */
const TIMEOUT_RANGE = [60, MAX_EXECUTION_TIMEOUT_SECONDS] as const;

function seconds(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new ColdsealError(EXIT.USAGE, `${flag} "${value}" is not a number of seconds from ${min} to ${max}`, `Give whole seconds, e.g. ${flag} 7200`);
  return n;
}

export function validateTriggerOptions(options: TriggerCommandOptions): ValidTriggerOptions {
  const usage = (check: () => void) => {
    try {
      check();
    } catch (error) {
      throw new ColdsealError(EXIT.USAGE, (error as Error).message, 'See coldseal trigger --help');
    }
  };
  if (options.group !== undefined) usage(() => assertName('group', options.group!));
  if (options.host !== undefined && !/^[A-Za-z0-9_.-]{1,253}$/.test(options.host)) {
    throw new ColdsealError(EXIT.USAGE, `--host "${options.host}" is not a host name or instance id`, 'Give the host name as alerts and coldseal status show it (e.g. web-1), or an instance id');
  }
  const drill = Boolean(options.drill);
  if (drill && ((options.tier !== undefined && options.tier !== 'auto') || options.source !== undefined)) {
    throw new ColdsealError(EXIT.USAGE, '--tier and --source apply to a backup, not to a drill', 'Leave them out with --drill: the drill restores the latest backup of every source');
  }
  const { tier, sources } = validateRunScope({ tier: options.tier, source: options.source });
  for (const source of sources ?? []) {
    const problem = sourceNameProblem(source);
    if (problem) throw new ColdsealError(EXIT.USAGE, `--source: ${problem}`, 'Give source names from the group configuration, comma-separated');
  }
  let prefix = DEFAULT_PARAMETER_PREFIX;
  usage(() => (prefix = normalizePrefix(options.prefix ?? DEFAULT_PARAMETER_PREFIX)));
  if (options.waitLimit !== undefined && !options.wait) throw new ColdsealError(EXIT.USAGE, '--wait-limit applies only with --wait', 'Add --wait, or leave out --wait-limit');
  return {
    group: options.group,
    host: options.host,
    drill,
    tier,
    sources,
    timeoutSeconds: seconds(options.timeout, '--timeout', ...TIMEOUT_RANGE),
    wait: Boolean(options.wait),
    waitLimitSeconds: seconds(options.waitLimit, '--wait-limit', 1, 30 * 86400),
    prefix,
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION,
  };
}

export interface TriggerResult {
  readonly commandId: string;
  readonly group: string;
  readonly action: 'backup' | 'drill';
  readonly target: string;
  readonly documentName: string;
  readonly region: string;
  readonly follow: string;
  readonly wait?: WaitOutcome;
  readonly exitCode: ExitCode;
}

export interface TriggerDependencies {
  readonly ssm?: TriggerSsm;
  readonly requestedBy?: string;
  readonly wait?: Omit<WaitOptions, 'limitSeconds' | 'onProgress'>;
  /** Where the human-readable lines go (the JSON result is printed by the caller). */
  readonly print?: (line: string) => void;
}

/** A delivery timeout's worth of slack past the run's own limit, before --wait gives up. */
const WAIT_SLACK_SECONDS = 600;

export async function runTrigger(options: TriggerCommandOptions, log: Log, deps: TriggerDependencies = {}): Promise<TriggerResult> {
  const valid = validateTriggerOptions(options);
  const print = deps.print ?? ((line: string) => console.log(line));
  const ssm = deps.ssm ?? new SdkTriggerSsm(new SSMClient({ ...(valid.region ? { region: valid.region } : {}) }));
  const deployment = await loadDeployment(ssm, valid.prefix, valid.region);
  const plan = await planTrigger(ssm, deployment, {
    group: valid.group,
    host: valid.host,
    drill: valid.drill,
    tier: valid.tier,
    sources: valid.sources,
    timeoutSeconds: valid.timeoutSeconds,
    requestedBy: deps.requestedBy ?? `${userInfo().username}@${hostNameFrom(hostname())}`,
    prefix: valid.prefix,
  });
  for (const warning of plan.warnings) log.warn(warning);
  const commandId = await sendTrigger(ssm, plan);
  const follow = followCommand(commandId, deployment.region);
  print(`sent ${plan.action} of group ${plan.group} to ${plan.targetDescription}: command ${commandId}`);
  print(`follow it: ${follow}`);
  if (deployment.commandLogGroup) print(`output: CloudWatch log group ${deployment.commandLogGroup}`);
  const base = { commandId, group: plan.group, action: plan.action, target: plan.targetDescription, documentName: deployment.documentName, region: deployment.region, follow };
  if (!valid.wait) return { ...base, exitCode: EXIT.OK };

  const limitSeconds = valid.waitLimitSeconds ?? (valid.timeoutSeconds ?? deployment.executionTimeoutSeconds) + WAIT_SLACK_SECONDS;
  const outcome = await waitForCommand(ssm, commandId, {
    ...deps.wait,
    limitSeconds,
    onProgress: (p) => {
      const counts = Object.entries(p.byStatus).map(([status, n]) => `${n} ${status}`).join(', ') || 'no host has it yet';
      log.info(`waiting for command ${commandId}: ${p.targets} host${p.targets === 1 ? '' : 's'}: ${counts} (${p.elapsedSeconds} s)`);
    },
  });
  const exitCode = waitExitCode(outcome);
  for (const i of outcome.invocations) {
    const code = i.responseCode === undefined || i.responseCode === -1 ? '' : `  exit ${i.responseCode}`;
    print(`${i.status.padEnd(10)}  ${hostLabel(i)}${i.statusDetails && i.statusDetails !== i.status ? `  ${i.statusDetails}` : ''}${code}`);
    if (isFailedStatus(i.status)) for (const line of outputTail(i.output)) print(`    | ${line}`);
  }
  if (!outcome.finished) {
    const running = outcome.invocations.filter((i) => !isTerminalStatus(i.status)).map(hostLabel);
    log.warn(`stopped waiting after ${outcome.elapsedSeconds} s (--wait-limit ${limitSeconds}); command ${commandId} goes on${running.length ? ` on ${running.join(', ')}` : ''}. Follow it with: ${follow}`);
  } else if (outcome.invocations.length === 0) {
    const tag = plan.action === 'drill' ? deployment.drill!.hostTagKey : deployment.hostTagKey;
    log.error(`no host received command ${commandId}: no managed instance carries the tag ${tag}=${plan.group}. Tag the hosts (and check they are registered with SSM), then trigger again`);
  } else if (exitCode !== EXIT.OK) {
    log.error(`${outcome.invocations.filter((i) => i.status !== 'Success').length} of ${outcome.invocations.length} hosts did not succeed. The exit codes are listed by coldseal --help; the full output is in ${deployment.commandLogGroup ? `the log group ${deployment.commandLogGroup}` : 'SSM Run Command history'}`);
  }
  return { ...base, wait: outcome, exitCode };
}
