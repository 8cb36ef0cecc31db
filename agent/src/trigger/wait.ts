import { isTerminalStatus } from '../../../format/command-status';
import { hostNameFrom } from '../../../format/layout';
import { EXIT, type ExitCode } from '../errors';
import { callSsm, type Invocation, type TriggerSsm } from './ssm';

export interface WaitOptions {
  /** Stop waiting after this long (the command goes on). */
  readonly limitSeconds: number;
  readonly pollSeconds?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Called when the counts change, and at least every heartbeatSeconds. */
  readonly onProgress?: (progress: WaitProgress) => void;
  readonly heartbeatSeconds?: number;
}

export interface WaitProgress {
  readonly elapsedSeconds: number;
  readonly targets: number;
  /** Hosts per status, e.g. { InProgress: 2, Success: 1 }. */
  readonly byStatus: Readonly<Record<string, number>>;
}

export interface WaitOutcome {
  /** false: the time limit came first. */
  readonly finished: boolean;
  readonly commandStatus: string | undefined;
  readonly invocations: readonly Invocation[];
  readonly elapsedSeconds: number;
}

/** Polls until SSM has resolved the targets and every host's run is over, or the time limit. */
export async function waitForCommand(ssm: TriggerSsm, commandId: string, options: WaitOptions): Promise<WaitOutcome> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const pollMs = (options.pollSeconds ?? 10) * 1000;
  const heartbeatMs = (options.heartbeatSeconds ?? 60) * 1000;
  const start = now();
  let lastKey = '';
  let lastReport = -Infinity;
  for (;;) {
    const [command, invocations] = await callSsm(`follow command ${commandId}`, () => Promise.all([ssm.command(commandId), ssm.invocations(commandId)]));
    const elapsedMs = now() - start;
    const byStatus: Record<string, number> = {};
    for (const i of invocations) byStatus[i.status] = (byStatus[i.status] ?? 0) + 1;
    const key = `${command?.targetCount}:${JSON.stringify(byStatus)}`;
    if (options.onProgress && (key !== lastKey || elapsedMs - lastReport >= heartbeatMs)) {
      options.onProgress({ elapsedSeconds: Math.round(elapsedMs / 1000), targets: Math.max(command?.targetCount ?? 0, invocations.length), byStatus });
      lastKey = key;
      lastReport = elapsedMs;
    }
    // By tag, SSM resolves the hosts after the send: an empty list means "not yet" until the command itself is over.
    const finished = command !== null && isTerminalStatus(command.status) && invocations.length >= command.targetCount && invocations.every((i) => isTerminalStatus(i.status));
    if (finished || elapsedMs >= options.limitSeconds * 1000) {
      return { finished, commandStatus: command?.status, invocations, elapsedSeconds: Math.round(elapsedMs / 1000) };
    }
    await sleep(Math.min(pollMs, options.limitSeconds * 1000 - elapsedMs));
  }
}

const KNOWN_EXIT_CODES = new Set<number>(Object.values(EXIT));

/**
 * The exit code of `trigger --wait`, in one place: OK when every host succeeded; PARTIAL when
 * some did and others failed or are still running; when none did and every host ended with the
 * same agent exit code (one host, or one cause everywhere), that code, so a script sees why;
 * FAILURE otherwise (no host received it, time-outs, mixed causes, or the time limit came first).
 */
export function waitExitCode(outcome: Pick<WaitOutcome, 'finished' | 'invocations'>): ExitCode {
  const { invocations } = outcome;
  const succeeded = invocations.filter((i) => i.status === 'Success').length;
  if (outcome.finished && invocations.length > 0 && succeeded === invocations.length) return EXIT.OK;
  if (succeeded > 0) return EXIT.PARTIAL;
  const codes = new Set(invocations.map((i) => i.responseCode));
  const [only] = [...codes];
  if (outcome.finished && codes.size === 1 && only !== undefined && only !== EXIT.OK && KNOWN_EXIT_CODES.has(only) && invocations.every((i) => i.status === 'Failed')) return only as ExitCode;
  return EXIT.FAILURE;
}

/** The last lines of a host's output: where the agent's error is. */
export function outputTail(output: string, lines = 15): string[] {
  return output.replace(/\s+$/, '').split('\n').slice(-lines);
}

export function hostLabel(i: Pick<Invocation, 'instanceId' | 'instanceName'>): string {
  return i.instanceName ? `${hostNameFrom(i.instanceName)} (${i.instanceId})` : i.instanceId;
}
