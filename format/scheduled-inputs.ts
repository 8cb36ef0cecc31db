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
