/**
 * What the stack's schedules send the Lambdas: the EventBridge rule's constant input, and the
 * event shape each handler recognises it by. Both sides import these, so neither spells them.
 */

/** The verifier's daily sweep (every backup checked, the report written). */
export const SWEEP_INPUT = { action: 'sweep' } as const;
export type SweepInput = typeof SWEEP_INPUT;

/** The monitor's periodic check (freshness, SSM reachability, metrics, heartbeat). */
export const CHECK_INPUT = { action: 'check' } as const;
export type CheckInput = typeof CHECK_INPUT;

/**
 * The monitor's frequent WAL check (every few minutes, only when a group has a PITR source): the
 * age of each host's newest archived WAL per PITR source, its metric, and the late-archive alert.
 * Kept apart from CHECK_INPUT so that a 5-minute schedule never pays for the full freshness run.
 */
export const WAL_CHECK_INPUT = { action: 'check', check: 'wal' } as const;
export type WalCheckInput = typeof WAL_CHECK_INPUT;

/** Whether a monitor event is the WAL check (its `check` field), not the full periodic check. */
export function isWalCheck(event: unknown): event is WalCheckInput {
  const e = event as { action?: unknown; check?: unknown } | null;
  return typeof e === 'object' && e !== null && e.action === WAL_CHECK_INPUT.action && e.check === WAL_CHECK_INPUT.check;
}
