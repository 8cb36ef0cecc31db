/**
 * SSM Run Command statuses, shared by the monitor (which alerts on a failed run of the agent
 * document), the stack (whose EventBridge rule matches the same statuses) and `coldseal trigger`
 * (which waits for every invocation to end).
 */

/** The statuses of a run that ended without success. */
export const FAILED_STATUSES = ['Failed', 'TimedOut', 'Cancelled'] as const;

/** The statuses of a run that is over: success or one of the failures. */
export const TERMINAL_STATUSES = ['Success', ...FAILED_STATUSES] as const;

export function isFailedStatus(status: string): boolean {
  return (FAILED_STATUSES as readonly string[]).includes(status);
}

export function isTerminalStatus(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** EventBridge's detail type for a Run Command invocation's status change. */
export const COMMAND_STATUS_DETAIL_TYPE_NAME = 'EC2 Command Invocation Status-change Notification';

/** The detail of EventBridge's "EC2 Command Invocation Status-change Notification". */
export interface CommandStatusDetail {
  readonly 'command-id': string;
  readonly 'document-name': string;
  readonly 'instance-id': string;
  readonly 'requested-date-time': string;
  readonly status: string;
}
