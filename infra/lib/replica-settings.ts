import { Token } from 'aws-cdk-lib';
import { TIERS, type Tier } from '../../format/layout';
import { ACCOUNT_PATTERN, REGION_PATTERN } from '../../format/replica';
import type { PropsOf, replicaSchema } from './config';
import { tierRetentionProblems, type RetentionSettings, type RuleProblem, type TierRetention } from './rules';

/**
 * The offsite replica of a deployment, as the user asks for it (the `replica` of the coldseal
 * context, documented by its schema in config.ts, or ColdsealProps.replica). Checked here so that
 * the context loader (which names the cdk.json field) and the constructs (which name the prop)
 * give the same answer.
 */
export interface ReplicaSettings extends Omit<PropsOf<typeof replicaSchema>, 'archiveAfterDays'> {
  /**
   * Per tier, the day on which the replica moves the tier to its archive class (the schema takes
   * any key, so that an unknown tier is refused by replicaProblems, naming it).
   * @default - the primary's transitions
   */
  readonly archiveAfterDays?: Partial<Record<Tier, number>>;
}

export const DEFAULT_MAX_PENDING_HOURS = 24;

/** The replica's lifecycle: the primary's expiry per tier, archived on `archiveAfterDays` where given. */
export function replicaRetention(retention: RetentionSettings, archiveAfterDays: Partial<Record<Tier, number>> = {}): RetentionSettings {
  const result = {} as Record<Tier, TierRetention>;
  for (const tier of TIERS) {
    const primary = retention[tier];
    const day = archiveAfterDays[tier];
    if (day === undefined) {
      result[tier] = primary;
      continue;
    }
    const [first, ...rest] = primary.transitions ?? [];
    const transitions = first ? [{ storageClass: first.storageClass, afterDays: day }, ...rest] : [{ storageClass: 'GLACIER' as const, afterDays: day }];
    result[tier] = { ...primary, transitions };
  }
  return result;
}

/**
 * Problems with the replica settings, each with its path below `replica`. The primary's account
 * and region may be unknown (tokens) at this point; the same-place check then waits for the
 * construct, which knows them.
 */
export function replicaProblems(replica: ReplicaSettings, retention: RetentionSettings, primary: { account?: string; region?: string } = {}): RuleProblem[] {
  const problems: RuleProblem[] = [];
  if (!REGION_PATTERN.test(replica.region)) problems.push({ path: ['region'], message: `"${replica.region}" is not an AWS region (e.g. eu-west-3)` });
  if (replica.account !== undefined && !ACCOUNT_PATTERN.test(replica.account)) problems.push({ path: ['account'], message: `"${replica.account}" is not a 12-digit AWS account id` });
  const known = (value: string | undefined): value is string => value !== undefined && !Token.isUnresolved(value);
  if (known(primary.region) && replica.region === primary.region) {
    const sameAccount = replica.account === undefined || (known(primary.account) && replica.account === primary.account);
    if (sameAccount) {
      problems.push({
        path: ['region'],
        message: `the replica would be in the primary's own region (${primary.region}) and account: it would share their fate; choose another region, or another account`,
      });
    }
  }
  const maxPending = replica.maxPendingHours ?? DEFAULT_MAX_PENDING_HOURS;
  if (!(maxPending > 0) || maxPending > 24 * 14) problems.push({ path: ['maxPendingHours'], message: `must be more than 0 and at most ${24 * 14} hours, got ${maxPending}` });
  for (const [tier, day] of Object.entries(replica.archiveAfterDays ?? {})) {
    if (!(TIERS as readonly string[]).includes(tier)) {
      problems.push({ path: ['archiveAfterDays', tier], message: `unknown tier "${tier}": the tiers are ${TIERS.join(', ')}` });
      continue;
    }
    if (!Number.isInteger(day) || day < 0) {
      problems.push({ path: ['archiveAfterDays', tier], message: `must be a whole number of days ≥ 0, got ${day}` });
      continue;
    }
    const replicaTier = replicaRetention(retention, { [tier]: day })[tier as Tier];
    for (const problem of tierRetentionProblems(tier, replicaTier)) {
      problems.push({ path: ['archiveAfterDays', tier], message: `in the replica, ${problem.message}` });
    }
  }
  return problems;
}
