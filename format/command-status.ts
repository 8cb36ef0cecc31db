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

/**
 * An invocation that never reached its host: SSM's StatusDetails DeliveryTimedOut (the command
 * expired before the host picked it up: offline, or queued behind earlier waves past the delivery
 * timeout) or Undeliverable. Its Status is TimedOut, like a run that overran; only the details
 * tell them apart. The documentation spells the details with spaces ("Delivery Timed Out"), the
 * API without, so both are taken.
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
 */
export const NOT_DELIVERED_DETAILS = ['DeliveryTimedOut', 'Undeliverable'] as const;

/** The StatusDetails as the API spells it (no spaces), or undefined when the command did reach the host. */
export function notDelivered(statusDetails: string | undefined): (typeof NOT_DELIVERED_DETAILS)[number] | undefined {
  const compact = (statusDetails ?? '').replace(/\s+/g, '').toLowerCase();
  return NOT_DELIVERED_DETAILS.find((d) => d.toLowerCase() === compact);
}
