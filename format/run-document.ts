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
