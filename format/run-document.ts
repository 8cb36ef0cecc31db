import { AGENT_PLATFORMS, type AgentArch } from './agent-executables';
import { NAME_PATTERN, TIERS } from './layout';
import { AGENT_DOCUMENT_VERSION } from './parameters';

/**
 * The agent's SSM document as its senders see it: the parameters it declares (the stack writes
 * them into the document, infra/lib/agent-delivery.ts) and the SendCommand request that runs it,
 * built the same way by the schedules (infra/lib/schedules.ts) and by `coldseal trigger`
 * (agent/src/trigger/plan.ts).
 */

export type RunAction = 'backup' | 'drill';

/** One name (group, host, source) without the anchors of NAME_PATTERN, to compose patterns. */
const NAME = NAME_PATTERN.source.replace(/^\^/, '').replace(/\$$/, '');

/**
 * The longest run the document accepts (its executionTimeout parameter's maximum): the
 * aws:runShellScript step's timeoutSeconds limit, 48 hours. A run by hand (`coldseal trigger
 * --timeout`) may ask for it whatever the stack's default is, so this, not the default, is the
 * longest run the stack allows: the data bucket keeps incomplete uploads at least this long.
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#aws-runShellScript
 */
export const MAX_EXECUTION_TIMEOUT_SECONDS = 172800;
/** A run's time limit when the stack sets none (the document's default; the schedules send it too). */
export const DEFAULT_EXECUTION_TIMEOUT_SECONDS = 4 * 3600;

const DAY_SECONDS = 86_400;

/**
 * The abort age for incomplete uploads: whole days that cover the longest run, and one more. S3
 * aborts an upload once DaysAfterInitiation days have passed since it began, rounded up to the next
 * midnight UTC (so between N and N+1 days); the spare day covers the upload the agent starts last
 * and its complete or abort after the timeout's SIGTERM. An orphaned upload costs a day more storage.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html (days are counted from creation and rounded to the next midnight UTC)
 */
export function incompleteUploadAbortDays(longestRunSeconds: number): number {
  return Math.ceil(longestRunSeconds / DAY_SECONDS) + 1;
}

/** What the stack sets by default (3 days): what the agent tells of an upload it could not abort. */
export const INCOMPLETE_UPLOAD_ABORT_DAYS = incompleteUploadAbortDays(MAX_EXECUTION_TIMEOUT_SECONDS);

/** Document parameters: `{{ … }}` placeholders, each limited so substitution cannot inject shell. */
export function documentParameters(defaultExecutionTimeoutSeconds: number): Record<string, Record<string, unknown>> {
  return {
    group: {
      type: 'String',
      description: 'Host group to back up: its configuration is read from SSM Parameter Store.',
      allowedPattern: NAME_PATTERN.source,
    },
    action: {
      type: 'String',
      description: 'backup (the default) or drill (restore the latest backups into scratch and sign a receipt).',
      default: 'backup',
      allowedValues: ['backup', 'drill'],
    },
    tier: {
      type: 'String',
      description: 'auto (the calendar chooses: yearly, monthly, weekly or daily) or a tier to force.',
      default: 'auto',
      allowedValues: ['auto', ...TIERS],
    },
    sources: {
      type: 'String',
      description: 'all, or a comma-separated list of source names from the group configuration.',
      default: 'all',
      allowedPattern: `^(all|${NAME}(,${NAME})*)$`,
    },
    executionTimeout: {
      type: 'String',
      description: 'Seconds the run may take before SSM stops it.',
      default: String(defaultExecutionTimeoutSeconds),
      // 10 to MAX_EXECUTION_TIMEOUT_SECONDS (172800), so a run by hand cannot ask for more.
      allowedPattern: '^([1-9][0-9]{1,4}|1[0-6][0-9]{4}|17[01][0-9]{3}|172[0-7][0-9]{2}|172800)$',
    },
  };
}

/** SendCommand's TimeoutSeconds range. https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html */
export const DELIVERY_TIMEOUT_RANGE_SECONDS = [30, 2_592_000] as const;

/** How long SSM waits for a host that is offline when its turn comes, unless told otherwise. */
export const DEFAULT_OFFLINE_GRACE_SECONDS = 3600;

/**
 * The most hosts a group is planned for when its settings name no number: with the default spread
 * (10 at once) and run limit (4 h) the delivery timeout stays under a day (17 h), so a host that is
 * offline for longer does not collect a command per scheduled run.
 */
export const DEFAULT_MAX_HOSTS = 50;

export interface RunSpreadInput {
  /** The most hosts the command may go to (the stack cannot count them: a configured bound). */
  readonly hosts: number;
  /** SendCommand MaxConcurrency: a number of hosts or a percentage of them. */
  readonly maxConcurrency: string;
  /** The longest one host's run may take (the document's executionTimeout). */
  readonly executionTimeoutSeconds: number;
  /** How long a host that is offline when its turn comes is waited for. @default DEFAULT_OFFLINE_GRACE_SECONDS */
  readonly offlineGraceSeconds?: number;
}

export interface RunSpread {
  /** Hosts running at once (for a percentage: of the planned hosts, rounded down, at least one). */
  readonly concurrency: number;
  /** Rounds of `concurrency` hosts, each as long as a run may take at worst. */
  readonly waves: number;
  /** When the last host may start at worst, after the send. */
  readonly lastStartSeconds: number;
  /** SendCommand TimeoutSeconds: the last host's start at worst, and the offline grace. */
  readonly deliveryTimeoutSeconds: number;
  /** When SSM expires the command (delivery + execution timeout), after the send. */
  readonly expiresAfterSeconds: number;
}

/**
 * The delivery timeout of one SendCommand that reaches every planned host. SSM runs the command on
 * MaxConcurrency hosts at a time and sends it to the next host as one finishes; the whole command
 * expires at its send time plus TimeoutSeconds plus the execution timeout, and every invocation
 * still pending, delayed or in progress then ends as DeliveryTimedOut: a host in a later wave whose
 * turn came too late never receives it. So TimeoutSeconds covers the waves before the last at their
 * longest, and then the offline grace for the last host itself. One command per schedule (not one
 * per batch): Scheduler's universal target makes one API call, and SSM's rate control is the batching.
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html (Pending → Delivery Timed Out after the sum of the two timeouts)
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Command.html (ExpiresAfter)
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/send-commands-multiple.html (MaxConcurrency)
 * Throws a RangeError saying which input to change when no delivery timeout SSM accepts would do.
 */
export function runSpread(input: RunSpreadInput): RunSpread {
  const { hosts, maxConcurrency, executionTimeoutSeconds } = input;
  const grace = input.offlineGraceSeconds ?? DEFAULT_OFFLINE_GRACE_SECONDS;
  if (!Number.isInteger(hosts) || hosts < 1) throw new RangeError(`hosts must be a whole number of at least 1, got ${hosts}`);
  if (!Number.isInteger(executionTimeoutSeconds) || executionTimeoutSeconds < 1) throw new RangeError(`executionTimeoutSeconds must be a whole number of seconds, got ${executionTimeoutSeconds}`);
  const number = /^[1-9][0-9]*$/.exec(maxConcurrency);
  const percent = /^([1-9][0-9]?|100)%$/.exec(maxConcurrency);
  if (!number && !percent) throw new RangeError(`maxConcurrency "${maxConcurrency}" is neither a number of hosts nor a percentage (e.g. 10 or 25%)`);
  // A percentage rounded down: the smaller spread asks for the longer (safe) timeout.
  const concurrency = Math.min(hosts, number ? Number(maxConcurrency) : Math.max(1, Math.floor((hosts * Number(percent![1])) / 100)));
  const waves = Math.ceil(hosts / concurrency);
  const lastStartSeconds = (waves - 1) * executionTimeoutSeconds;
  const deliveryTimeoutSeconds = Math.max(DELIVERY_TIMEOUT_RANGE_SECONDS[0], lastStartSeconds + grace);
  if (deliveryTimeoutSeconds > DELIVERY_TIMEOUT_RANGE_SECONDS[1]) {
    throw new RangeError(
      `${hosts} hosts, ${concurrency} at a time, take ${waves} waves of up to ${executionTimeoutSeconds / 3600} h: the last host may start ${Math.round(lastStartSeconds / 3600)} h after the send, beyond the 30 days SSM waits to deliver a command. Raise maxConcurrency, lower the execution timeout, or split the group`,
    );
  }
  return { concurrency, waves, lastStartSeconds, deliveryTimeoutSeconds, expiresAfterSeconds: deliveryTimeoutSeconds + executionTimeoutSeconds };
}

export interface RunTarget {
  readonly Targets?: { Key: string; Values: string[] }[];
  readonly InstanceIds?: string[];
}

/** Every host of a group, by the tag the stack puts on them. */
export function taggedHosts(tagKey: string, group: string): RunTarget {
  return { Targets: [{ Key: `tag:${tagKey}`, Values: [group] }] };
}

export interface RunRequestInput {
  readonly documentName: string;
  readonly comment: string;
  readonly target: RunTarget;
  readonly group: string;
  readonly action: RunAction;
  /** Left out: the document's default (auto). */
  readonly tier?: string;
  /** Left out: the document's default (all). */
  readonly sources?: string;
  readonly executionTimeoutSeconds: number | string;
  readonly maxConcurrency: string;
  readonly maxErrors: string;
  /** SendCommand's delivery timeout; left out: SSM's default. */
  readonly timeoutSeconds?: number;
  /** The log group the output goes to; left out: no CloudWatch output. */
  readonly logGroup?: string;
}

/** The SendCommand request that runs the agent document (fields as the SSM API names them). */
export interface RunRequest extends RunTarget {
  readonly DocumentName: string;
  readonly DocumentVersion: string;
  readonly Comment: string;
  readonly Parameters: Record<string, string[]>;
  readonly MaxConcurrency: string;
  readonly MaxErrors: string;
  readonly TimeoutSeconds?: number;
  readonly CloudWatchOutputConfig?: { CloudWatchOutputEnabled: boolean; CloudWatchLogGroupName: string };
}

export function runRequest(input: RunRequestInput): RunRequest {
  return {
    DocumentName: input.documentName,
    DocumentVersion: AGENT_DOCUMENT_VERSION,
    Comment: input.comment,
    ...input.target,
    Parameters: {
      group: [input.group],
      action: [input.action],
      ...(input.tier !== undefined ? { tier: [input.tier] } : {}),
      ...(input.sources !== undefined ? { sources: [input.sources] } : {}),
      executionTimeout: [String(input.executionTimeoutSeconds)],
    },
    MaxConcurrency: input.maxConcurrency,
    MaxErrors: input.maxErrors,
    ...(input.timeoutSeconds !== undefined ? { TimeoutSeconds: input.timeoutSeconds } : {}),
    ...(input.logGroup ? { CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: input.logGroup } } : {}),
  };
}

/** The document's aws:downloadContent step that fetches an architecture's executable. */
export function downloadStepName(arch: AgentArch): string {
  return `downloadAgent${arch.charAt(0).toUpperCase()}${arch.slice(1)}`;
}

/** The document's aws:runShellScript step: picks, checks and runs the executable. */
export const RUN_STEP_NAME = 'runColdsealAgent';

/**
 * The document's steps, in the order the SSM Agent runs them (infra/lib/agent-delivery.ts writes
 * them; a deploy test checks the deployed document against this). SSM reports each step apart:
 * GetCommandInvocation takes the step's name as PluginName, and must be given one when the
 * document has more than one step.
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
 */
export const RUN_DOCUMENT_STEPS: readonly string[] = [...AGENT_PLATFORMS.map((p) => downloadStepName(p.arch)), RUN_STEP_NAME];
