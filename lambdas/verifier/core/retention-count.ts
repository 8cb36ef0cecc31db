import { calendarSchema, type CalendarConfig } from '../../../format/agent-config';
import type { GroupSettings } from '../../../format/lambda-settings';
import { TIERS, type Tier } from '../../../format/layout';
import { tierFor } from '../../../format/tier-calendar';
import type { ReplicaState } from './replica';

/**
 * Retention as promised, per source and tier: how many copies the settings promise (the tier's
 * retentionDays, the calendar that promotes a day's dump to weekly, monthly or yearly, and the
 * schedule's runs per day), how many good copies exist, the oldest restorable point, and, with an
 * offsite replica, whether it holds the same copies.
 *
 * The promise is counted run by run, not divided out: each scheduled run in the tier's window
 * (since the source's first backup: the settings promise nothing before the system existed) whose
 * day the calendar gives to the tier is one promised copy. A daily copy is therefore not promised
 * on a Sunday, the 1st of a month or the 1st of January, and a weekly one only on the configured
 * weekday. The run's time of day is taken from the newest backup (the schedule's cron is not in
 * the Lambda's settings), which is what decides the calendar day in the calendar's time zone.
 *
 * Figures only: the WARN on missing or overdue copies is fleet.ts retentionFindings', and the
 * replica's per-backup findings are replica.ts'.
 */

const DAY_MS = 86_400_000;
/** A run's finish time wanders by minutes to hours (dump length, queueing); an instant is matched to the window with this slack. */
const RUN_SLACK_MS = 12 * 3_600_000;

/** A good backup of the source, with its replica state when a replica is configured (CheckedBackup.replica). */
export interface RetentionCopy {
  readonly stamp: string;
  readonly tier: Tier;
  readonly finishedAt: string;
  readonly replica?: ReplicaState;
}

export interface RetentionCountInput {
  readonly group: GroupSettings;
  readonly history: readonly RetentionCopy[];
  readonly now: Date;
  /** The agents' tier calendar; the agent's defaults (1 January yearly, the 1st monthly, Sunday weekly, UTC) when absent. */
  readonly calendar?: CalendarConfig;
  /** Runs of the group's schedule per day (each run is a dump, tiered by its day). */
  readonly runsPerDay?: number;
  /** When the source's first backup was made, if known from elsewhere; else its oldest good copy. */
  readonly since?: string;
  /** Whether the deployment has an offsite replica. */
  readonly replicaConfigured: boolean;
}

export interface TierCount {
  readonly tier: Tier;
  /** Null for a tier the settings do not keep (no retentionDays): nothing promised, copies still counted. */
  readonly retentionDays: number | null;
  readonly promised: number | null;
  /** Good copies listed, and those inside the retention window (older ones are the lifecycle's to expire). */
  readonly exist: number;
  readonly inWindow: number;
  /** Promised copies not found in the window. */
  readonly short: number;
  readonly oldest: { readonly stamp: string; readonly finishedAt: string } | null;
  readonly newest: { readonly stamp: string; readonly finishedAt: string } | null;
  /** Null without a replica. holdsSame: every copy is replicated. unknown: copies whose state was not read. */
  readonly replica: { readonly replicated: number; readonly pending: number; readonly missing: number; readonly unknown: number; readonly holdsSame: boolean } | null;
}

export interface RetentionCounts {
  readonly tiers: readonly TierCount[];
  /** The oldest point any tier can restore. */
  readonly oldestRestorable: { readonly stamp: string; readonly finishedAt: string; readonly tier: Tier } | null;
}

/** Scheduled run instants in (from, to], one a day at the newest backup's time of day, newest first. */
function runInstants(anchor: number, from: number, to: number): number[] {
  const latest = anchor + Math.floor((to - anchor) / DAY_MS) * DAY_MS;
  const out: number[] = [];
  for (let t = latest; t > from; t -= DAY_MS) out.push(t);
  return out;
}

export function retentionCounts(input: RetentionCountInput): RetentionCounts {
  const { group, now } = input;
  const calendar = input.calendar ?? calendarSchema.parse({});
  const runsPerDay = input.runsPerDay ?? 1;
  const sorted = [...input.history].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  const first = sorted[0];
  const newest = sorted[sorted.length - 1];
  const since = input.since ? Date.parse(input.since) : first ? Date.parse(first.finishedAt) : undefined;
  const nowMs = now.getTime();

  const tiers: TierCount[] = TIERS.map((tier) => {
    const days = group.retentionDays[tier] ?? null;
    const copies = sorted.filter((c) => c.tier === tier);
    const windowStart = days === null ? Number.NEGATIVE_INFINITY : nowMs - days * DAY_MS;
    const inWindow = copies.filter((c) => Date.parse(c.finishedAt) > windowStart - RUN_SLACK_MS).length;
    let promised: number | null = null;
    if (days !== null) {
      promised = 0;
      if (newest && since !== undefined) {
        const instants = runInstants(Date.parse(newest.finishedAt), Math.max(windowStart, since - RUN_SLACK_MS), nowMs);
        promised = instants.filter((t) => tierFor(new Date(t), calendar) === tier).length * runsPerDay;
      }
    }
    let replica: TierCount['replica'] = null;
    if (input.replicaConfigured) {
      const count = (s: ReplicaState) => copies.filter((c) => c.replica === s).length;
      const replicated = count('replicated');
      replica = { replicated, pending: count('pending'), missing: count('missing'), unknown: copies.filter((c) => c.replica === undefined).length, holdsSame: replicated === copies.length };
    }
    const pick = (c: RetentionCopy | undefined) => (c ? { stamp: c.stamp, finishedAt: c.finishedAt } : null);
    return { tier, retentionDays: days, promised, exist: copies.length, inWindow, short: promised === null ? 0 : Math.max(0, promised - inWindow), oldest: pick(copies[0]), newest: pick(copies[copies.length - 1]), replica };
  });
  return { tiers, oldestRestorable: first ? { stamp: first.stamp, finishedAt: first.finishedAt, tier: first.tier } : null };
}
