import {
  DescribeInstanceInformationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SendCommandCommandInput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { ColdsealError, EXIT } from '../errors';

/** A managed instance as SSM's inventory lists it. */
export interface ManagedHost {
  readonly instanceId: string;
  readonly computerName: string;
  /** Online | ConnectionLost | Inactive */
  readonly pingStatus: string;
}

/** One host's run of a command. */
export interface Invocation {
  readonly instanceId: string;
  /** The host name SSM reports (fully qualified); may be empty. */
  readonly instanceName: string;
  /** Pending | InProgress | Delayed | Success | Cancelled | TimedOut | Failed | Cancelling */
  readonly status: string;
  /** Finer than status: Undeliverable, DeliveryTimedOut, ExecutionTimedOut, Terminated, … */
  readonly statusDetails: string;
  /** The script's exit status: the agent's exit code (coldseal --help). */
  readonly responseCode: number | undefined;
  /** What SSM kept of stdout and stderr (at most 2,500 characters in this API). */
  readonly output: string;
}

export interface CommandState {
  readonly status: string;
  /** Hosts the command was sent to (by tag: resolved by SSM after the send). */
  readonly targetCount: number;
}

/** The SSM calls trigger makes; the SDK adapter is below, tests give fakes where moto cannot answer. */
export interface TriggerSsm {
  /** null when the parameter does not exist. */
  getParameter(name: string): Promise<string | null>;
  /** Managed instances that carry tagKey = value. */
  listTaggedHosts(tagKey: string, value: string): Promise<ManagedHost[]>;
  /** Returns the command id. */
  sendCommand(input: SendCommandCommandInput): Promise<string>;
  /** null while SSM does not know the command (yet). */
  command(commandId: string): Promise<CommandState | null>;
  invocations(commandId: string): Promise<Invocation[]>;
}

export class SdkTriggerSsm implements TriggerSsm {
  constructor(private readonly client: SSMClient) {}

  async getParameter(name: string): Promise<string | null> {
    try {
      return (await this.client.send(new GetParameterCommand({ Name: name }))).Parameter?.Value ?? null;
    } catch (error) {
      if ((error as Error).name === 'ParameterNotFound') return null;
      throw error;
    }
  }

  async listTaggedHosts(tagKey: string, value: string): Promise<ManagedHost[]> {
    const hosts: ManagedHost[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: `tag:${tagKey}`, Values: [value] }], NextToken: token, MaxResults: 50 }));
      for (const i of page.InstanceInformationList ?? []) {
        hosts.push({ instanceId: i.InstanceId ?? '', computerName: i.ComputerName ?? i.Name ?? '', pingStatus: i.PingStatus ?? 'Unknown' });
      }
      token = page.NextToken;
    } while (token);
    return hosts;
  }

  async sendCommand(input: SendCommandCommandInput): Promise<string> {
    const id = (await this.client.send(new SendCommandCommand(input))).Command?.CommandId;
    if (!id) throw new Error('SSM SendCommand answered without a command id');
    return id;
  }

  async command(commandId: string): Promise<CommandState | null> {
    try {
      const c = (await this.client.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
      return c ? { status: c.Status ?? 'Pending', targetCount: c.TargetCount ?? 0 } : null;
    } catch (error) {
      if ((error as Error).name === 'InvalidCommandId') return null;
      throw error;
    }
  }

  async invocations(commandId: string): Promise<Invocation[]> {
    const out: Invocation[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListCommandInvocationsCommand({ CommandId: commandId, Details: true, NextToken: token }));
      for (const i of page.CommandInvocations ?? []) {
        const plugins = i.CommandPlugins ?? [];
        out.push({
          instanceId: i.InstanceId ?? '',
          instanceName: i.InstanceName ?? '',
          status: i.Status ?? 'Pending',
          statusDetails: i.StatusDetails ?? '',
          responseCode: responseCode(plugins),
          output: plugins.map((p) => p.Output ?? '').filter(Boolean).join('\n'),
        });
      }
      token = page.NextToken;
    } while (token);
    return out;
  }
}

/** AWS errors become errors that say what was being done and what to check. */
export async function callSsm<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ColdsealError) throw error;
    const message = (error as Error).message;
    if (/region is missing/i.test(message)) throw new ColdsealError(EXIT.CONFIG, `no AWS region to ${what} in`, 'Pass --region (the stack\'s region) or set AWS_REGION', { cause: error });
    throw new ColdsealError(EXIT.STORAGE, `cannot ${what}: ${(error as Error).name}: ${message}`, 'Check your AWS credentials (profile), their permissions and the region', { cause: error });
  }
}

/**
 * The command's code on a host: the document's steps run in order (the downloads, then the agent)
 * and stop at the first failure (onFailure: exit), so the first step that failed decides, else the
 * last step that ran, which is the agent's own exit code.
 */
export function responseCode(plugins: readonly { ResponseCode?: number; Status?: string }[]): number | undefined {
  const ran = plugins.filter((p) => p.ResponseCode !== undefined && p.ResponseCode !== -1);
  return (ran.find((p) => p.ResponseCode !== 0) ?? ran.at(-1) ?? plugins[0])?.ResponseCode;
}
