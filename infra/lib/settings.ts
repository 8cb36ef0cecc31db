import { Token, type Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { z } from 'zod';
import { assertName, DEFAULT_DRILL_TAG_KEY, DEFAULT_HOST_TAG_KEY, nameSchema, tagKeySchema, TIERS, type Tier } from '../../format/layout';
import { calendarSchema, DEFAULT_TIME_ZONE, mysqlPitrSchema, objectLockSchema, postgresPitrSchema, sourceSchema, type CalendarConfig } from '../../format/agent-config';
import type { AgentExecutable } from '../../format/agent-executables';
import { ACCOUNT_PATTERN, REGION_PATTERN } from '../../format/replica';
import { DEFAULT_RPO_HOURS, type GroupSettings } from '../../format/lambda-settings';
import { DEFAULT_PARAMETER_PREFIX } from '../../format/parameters';
import { priceOverrideSchema } from '../../format/prices';

/**
 * The settings of a deployment, the bottom of infra/: the `coldseal` context's schema (which
 * documents every setting; the constructs' prop types derive from it), the Coldseal construct's
 * props, the defaults, and every rule the stack applies to what it is asked to build. The context
 * loader (config.ts, naming the cdk.json field) and the constructs (naming the prop) both check
 * through here, so they give the same answer; settings that passed here are not checked again.
 * This file imports only format/ and aws-cdk-lib's types, so that every construct can import it.
 */

export const CONTEXT_KEY = 'coldseal';

export class ColdsealConfigError extends Error {
  override readonly name = 'ColdsealConfigError';
}


export const ARCHIVE_STORAGE_CLASSES = ['GLACIER', 'DEEP_ARCHIVE'] as const;
export type ArchiveStorageClass = (typeof ARCHIVE_STORAGE_CLASSES)[number];

/**
 * S3 bills an object for at least this many days once it is in the class, even if it is
 * deleted or moved on earlier (S3 pricing: "minimum storage duration").
 */
export const MINIMUM_STORAGE_DAYS: Readonly<Record<ArchiveStorageClass, number>> = {
  GLACIER: 90,
  DEEP_ARCHIVE: 180,
};

/** One archive transition of a tier (the context's schema, config.ts). */
export type TierTransition = PropsOf<typeof tierTransitionSchema>;

/** One tier's expiry, Object Lock and archive transitions (the context's schema, config.ts). */
export type TierRetention = PropsOf<typeof tierRetentionSchema>;

export type RetentionSettings = Readonly<Record<Tier, TierRetention>>;

/** Design defaults: daily 35 d; weekly 90 d; monthly to Glacier, 400 d; yearly to Deep Archive, 7 y. */
export const DEFAULT_RETENTION: RetentionSettings = {
  daily: { expireAfterDays: 35, lock: { mode: 'GOVERNANCE', days: 30 } },
  weekly: { expireAfterDays: 90, lock: { mode: 'GOVERNANCE', days: 84 } },
  monthly: { expireAfterDays: 400, lock: { mode: 'GOVERNANCE', days: 365 }, transitions: [{ storageClass: 'GLACIER', afterDays: 30 }] },
  yearly: { expireAfterDays: 2557, lock: { mode: 'GOVERNANCE', days: 2557 }, transitions: [{ storageClass: 'DEEP_ARCHIVE', afterDays: 1 }] },
};

/** Each tier's retention: the given one, else the default (the only place defaults are merged). */
export function retentionWithDefaults(retention: Readonly<Partial<Record<string, TierRetention>>> = {}): RetentionSettings {
  return { ...DEFAULT_RETENTION, ...retention };
}

export interface RuleProblem {
  /** Path below the object that was checked, e.g. ["monthly", "expireAfterDays"]. */
  readonly path: (string | number)[];
  readonly message: string;
}

/** Problems with one tier's retention; empty when it can be built. */
export function tierRetentionProblems(tier: string, retention: TierRetention): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const { expireAfterDays, lock } = retention;
  const transitions = retention.transitions ?? [];
  if (!Number.isInteger(expireAfterDays) || expireAfterDays < 1) {
    problems.push({ path: ['expireAfterDays'], message: `must be a whole number of days ≥ 1, got ${expireAfterDays}` });
  }
  if (!Number.isInteger(lock.days) || lock.days < 1) {
    problems.push({ path: ['lock', 'days'], message: `must be a whole number of days ≥ 1, got ${lock.days}` });
  }
  if (lock.days > expireAfterDays) {
    problems.push({
      path: ['lock', 'days'],
      message: `${tier} backups would be locked for ${lock.days} days but expire after ${expireAfterDays}: the lock must not outlast the expiry (raise expireAfterDays or shorten the lock)`,
    });
  }
  transitions.forEach((transition, index) => {
    if (!ARCHIVE_STORAGE_CLASSES.includes(transition.storageClass)) {
      problems.push({ path: ['transitions', index, 'storageClass'], message: `"${transition.storageClass}" is not one of ${ARCHIVE_STORAGE_CLASSES.join(', ')}` });
      return;
    }
    if (!Number.isInteger(transition.afterDays) || transition.afterDays < 0) {
      problems.push({ path: ['transitions', index, 'afterDays'], message: `must be a whole number of days ≥ 0, got ${transition.afterDays}` });
      return;
    }
    const previous = transitions[index - 1];
    if (previous && (transition.afterDays <= previous.afterDays || transition.storageClass === previous.storageClass || previous.storageClass === 'DEEP_ARCHIVE')) {
      problems.push({ path: ['transitions', index], message: 'transitions must go GLACIER then DEEP_ARCHIVE, on strictly later days' });
      return;
    }
    const leaves = transitions[index + 1]?.afterDays ?? expireAfterDays;
    const stays = leaves - transition.afterDays;
    const minimum = MINIMUM_STORAGE_DAYS[transition.storageClass];
    if (stays < minimum) {
      problems.push({
        path: index + 1 < transitions.length ? ['transitions', index + 1, 'afterDays'] : ['expireAfterDays'],
        message: `${tier} backups would stay ${stays} days in ${transition.storageClass}, under its minimum storage duration of ${minimum} days (S3 bills the minimum anyway): expire or move them on at day ${transition.afterDays + minimum} or later`,
      });
    }
  });
  return problems;
}

export function retentionProblems(retention: Readonly<Record<string, TierRetention>>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  for (const [tier, value] of Object.entries(retention)) {
    if (!(TIERS as readonly string[]).includes(tier)) {
      problems.push({ path: [tier], message: `unknown tier "${tier}": the tiers are ${TIERS.join(', ')}` });
      continue;
    }
    for (const problem of tierRetentionProblems(tier, value)) problems.push({ path: [tier, ...problem.path], message: problem.message });
  }
  return problems;
}

/**
 * The WAL archive of PostgreSQL point-in-time recovery (wal/ in the data bucket), for the whole
 * deployment. How long WAL is kept is the recovery window: a restore to a time T needs a base
 * backup taken before T and every WAL file from that backup's start to T. Base backups carry the
 * WAL of their own consistency inside their tar (pg_basebackup -X fetch), so a base backup older
 * than the window still restores to its own end; only the points between base backups need the
 * archive. Hence one window for all tiers, not the lifecycle of the tier a base backup is in.
 */
export interface PitrSettings {
  /**
   * Days each archived WAL file is kept (then expired; never moved to an archive class: restore
   * reads WAL file by file, and a Glacier restore of thousands of small objects would take hours
   * and cost more than keeping them in Standard).
   * @default the daily tier's expireAfterDays
   */
  readonly windowDays?: number;
  /**
   * Minutes a PITR source's newest archived WAL may be older than its archive_timeout before the
   * monitor alerts (COLDSEAL_WAL_GRACE_MINUTES).
   * @default 5
   */
  readonly graceMinutes?: number;
}

export const DEFAULT_WAL_GRACE_MINUTES = 5;

/** The WAL window when the deployment gives none: as long as the daily tier keeps its base backups. */
export function walWindowDays(pitr: PitrSettings | undefined, retention: RetentionSettings): number {
  return pitr?.windowDays ?? retention.daily.expireAfterDays;
}

/**
 * Problems with the PITR settings against the retention, each with its path below `pitr`.
 * - The agent locks every WAL object like the daily tier (config.objectLock.daily): a window
 *   shorter than that lock would expire WAL S3 must keep (the expiry only hides it behind a delete
 *   marker until the lock ends, and the bill runs on), the same rule as a tier's lock and expiry.
 * - A window longer than the longest tier's retention keeps WAL older than every base backup that
 *   could replay it: it restores nothing and is paid for.
 */
export function pitrProblems(pitr: PitrSettings, retention: RetentionSettings): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const grace = pitr.graceMinutes ?? DEFAULT_WAL_GRACE_MINUTES;
  if (!(grace > 0) || grace > 24 * 60) problems.push({ path: ['graceMinutes'], message: `must be more than 0 and at most ${24 * 60} minutes, got ${grace}` });
  // The default window is the daily tier's own expiry, which the tier's rules already hold to its lock.
  const window = pitr.windowDays;
  if (window === undefined) return problems;
  const lock = retention.daily.lock.days;
  const longest = Math.max(...TIERS.map((tier) => retention[tier].expireAfterDays));
  if (!Number.isInteger(window) || window < 1) {
    problems.push({ path: ['windowDays'], message: `must be a whole number of days ≥ 1, got ${window}` });
  } else if (window < lock) {
    problems.push({
      path: ['windowDays'],
      message: `WAL would be kept ${window} days but each WAL object is locked like the daily tier, for ${lock} days: the window must not be shorter than the lock (raise windowDays to ${lock} or more, or shorten retention.daily.lock.days)`,
    });
  } else if (window > longest) {
    problems.push({
      path: ['windowDays'],
      message: `WAL would be kept ${window} days, longer than any base backup is kept (${longest} days, the longest tier): WAL older than every base backup restores nothing; give at most ${longest}`,
    });
  }
  return problems;
}

/**
 * A group's PITR sources as the Lambdas expect them (format/lambda-settings.ts pitrSources): its
 * PostgreSQL sources with pitr.enabled, with archive_timeout as the agent will set it, and its
 * MySQL/MariaDB sources with pitr.enabled, with the binlog-push timer's interval.
 */
export function pitrSourcesOf(sources: readonly PropsOf<typeof sourceSchema>[]): NonNullable<GroupSettings['pitrSources']> {
  return sources.flatMap((source): NonNullable<GroupSettings['pitrSources']> => {
    if (source.type === 'postgres' && source.pitr) {
      const pitr = postgresPitrSchema.parse(source.pitr);
      return pitr.enabled ? [{ source: source.name, engine: 'postgres' as const, archiveTimeoutSeconds: pitr.archiveTimeoutSeconds }] : [];
    }
    if (source.type === 'mysql' && source.pitr) {
      const pitr = mysqlPitrSchema.parse(source.pitr);
      return pitr.enabled ? [{ source: source.name, engine: 'mysql' as const, archiveTimeoutSeconds: pitr.intervalMinutes * 60 }] : [];
    }
    return [];
  });
}

export const pitrSchema = z
  .object({
    /**
     * Days archived WAL is kept: the point-in-time recovery window.
     * @default the daily tier's expireAfterDays
     */
    windowDays: z.number().int().min(1).optional(),
    /**
     * Minutes the newest archived WAL may be older than archive_timeout before the monitor alerts.
     * @default 5
     */
    graceMinutes: z.number().positive().optional(),
  })
  .strict();

const CRON_FIELD = {
  minutes: /^(\*|[0-5]?\d)([-/,][0-5]?\d)*$/,
  hours: /^(\*|[01]?\d|2[0-3])([-/,]([01]?\d|2[0-3]))*$/,
  dayOfMonth: /^(\?|\*|L|LW|([1-9]|[12]\d|3[01])W?)([-/,]([1-9]|[12]\d|3[01]))*$/,
  month: /^(\*|[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)([-/,]([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))*$/i,
  dayOfWeek: /^(\?|\*|[1-7]L?|[1-7]#[1-5]|L|SUN|MON|TUE|WED|THU|FRI|SAT)([-/,]([1-7]|SUN|MON|TUE|WED|THU|FRI|SAT))*$/i,
  year: /^(\*|(19[7-9]\d|2\d{3}))([-/,](19[7-9]\d|2\d{3}|\d+))*$/,
} as const;

/**
 * How many times a day an EventBridge Scheduler cron fires on a day it fires: the minutes field's
 * values times the hours field's ("cron(0 1,13 * * ? *)" is 2, a step of 6 in the hours field is 4). The
 * report counts one promised copy per run. https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
 */
export function runsPerDayOf(expression: string): number {
  const fields = /^cron\((.*)\)$/.exec(expression.trim())?.[1].trim().split(/\s+/) ?? [];
  const count = (field: string | undefined, size: number): number =>
    (field ?? '0').split(',').reduce((n, part) => {
      const [range, step] = part.split('/');
      const [from, to] = range === '*' ? [0, size - 1] : range.includes('-') ? range.split('-').map(Number) : [Number(range), step ? size - 1 : Number(range)];
      return n + Math.max(1, Math.floor((to - from) / Number(step ?? 1)) + 1);
    }, 0);
  return count(fields[0], 60) * count(fields[1], 24);
}

/** Why an EventBridge Scheduler cron expression is not one, or null when it is. */
export function cronProblem(expression: string): string | null {
  const match = /^cron\((.*)\)$/.exec(expression.trim());
  const example = 'e.g. "cron(30 1 * * ? *)" for 01:30 every day';
  if (!match) return `"${expression}" is not an EventBridge Scheduler cron expression: write cron(minutes hours day-of-month month day-of-week year), ${example}`;
  const fields = match[1].trim().split(/\s+/);
  if (fields.length !== 6) return `"${expression}" has ${fields.length} fields; EventBridge cron takes 6 (minutes hours day-of-month month day-of-week year), ${example}`;
  const names = Object.keys(CRON_FIELD) as (keyof typeof CRON_FIELD)[];
  for (let i = 0; i < 6; i++) {
    if (!CRON_FIELD[names[i]].test(fields[i])) return `"${expression}": "${fields[i]}" is not a valid ${names[i]} field`;
  }
  if ((fields[2] === '?') === (fields[4] === '?')) {
    return `"${expression}": exactly one of day-of-month and day-of-week must be "?", ${example}`;
  }
  return null;
}

export function timeZoneProblem(timeZone: string): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return null;
  } catch {
    return `"${timeZone}" is not an IANA time zone (e.g. "UTC", "Europe/Paris", "America/New_York")`;
  }
}

/**
 * A cheap, synchronous look at armored key text: enough for a construct's constructor, which
 * cannot await openpgp. The context loader parses the keys fully (readPublicKeys) before.
 */
export function armoredPublicKeyProblem(armored: string): string | null {
  if (/-----BEGIN PGP PRIVATE KEY BLOCK-----/.test(armored)) {
    return 'holds a PRIVATE key; give only the public half (the .pub.asc file coldseal keys generate wrote, or gpg --export --armor)';
  }
  if (!/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]+-----END PGP PUBLIC KEY BLOCK-----/.test(armored)) {
    return 'is not an armored OpenPGP public key (expected a -----BEGIN PGP PUBLIC KEY BLOCK----- block)';
  }
  return null;
}

/**
 * Names already accepted by checkNameProp or by the context's schema. The name rule is a pure
 * function of the name, so a name that passed once is not checked again when the next construct
 * of the same deployment receives it.
 */
const acceptedNames = new Set<string>();

/** Names the context's schema has already checked (format's nameSchema, the same rule). */
function acceptNames(names: Iterable<string>): void {
  for (const name of names) acceptedNames.add(name);
}

/**
 * A construct's check of a group (or other) name: the format's name rule, refused naming the prop,
 * e.g. "HostAccess props.group: group "a.b" is not a valid name: use …".
 */
export function checkNameProp(prop: string, kind: string, value: string): void {
  if (acceptedNames.has(value)) return;
  try {
    assertName(kind, value);
  } catch (error) {
    throw new Error(`${prop}: ${(error as Error).message}`, { cause: error });
  }
  acceptedNames.add(value);
}

const name = nameSchema;

const cron = z.string().superRefine((value, ctx) => {
  const problem = cronProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const timeZone = z.string().superRefine((value, ctx) => {
  const problem = timeZoneProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** A key is given as a path to an armored file (relative to the app's directory) or as the armored text. */
const keySources = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

/**
 * A schema's input as construct props take it, read-only all the way down. The schemas below are
 * where the settings are documented: the constructs' prop types are derived from them (PropsOf).
 */
export type PropsOf<S extends z.ZodType> = DeepReadonly<z.input<S>>;
type DeepReadonly<T> = T extends readonly (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

export const tierTransitionSchema = z
  .object({
    /** Storage class the tier's objects move to. */
    storageClass: z.enum(ARCHIVE_STORAGE_CLASSES),
    /** Days after the object is written. */
    afterDays: z.number().int().min(0),
  })
  .strict();

export const tierRetentionSchema = z
  .object({
    /** Days after which a backup of this tier is deleted (a delete marker, then the version once unlocked). */
    expireAfterDays: z.number().int().min(1),
    /** Object Lock the agent sets on each object of this tier. */
    lock: objectLockSchema,
    /**
     * Archive transitions, in order.
     * @default - none: the tier stays in S3 Standard
     */
    transitions: z.array(tierTransitionSchema).optional(),
  })
  .strict();

/** A group as the context gives it (its name is its key in `groups`). */
export const groupSchema = z
  .object({
    /** EventBridge Scheduler cron, e.g. "cron(30 1 * * ? *)". */
    schedule: cron,
    /**
     * Time zone of the schedule and of the group's calendar.
     * @default the deployment's timeZone
     */
    timeZone: timeZone.optional(),
    /** Armored signing PUBLIC key(s) of the group (coldseal keys generate), as files or text. Never the private half. */
    signingPublicKeys: keySources,
    /** What the group's hosts back up (the agent's source schema: postgres, mysql, files). */
    sources: z.array(sourceSchema).min(1, 'at least one source is needed'),
    /**
     * The most hosts that carry the group's tag. The stack cannot count them, so SSM's delivery
     * timeout is planned for this many (format/run-document.ts runSpread): a host queued behind
     * the first waves of a larger group would expire (DeliveryTimedOut) before its turn.
     * @default 50
     */
    maxHosts: z.number().int().positive().optional(),
    /**
     * Recovery time objective in hours: the daily report estimates restoring each source's newest
     * backup from the last drill's measured speed (plus any Glacier retrieval) and warns
     * (rto-exceeded) when the estimate is over it.
     * @default - none: the estimate is shown and judged against nothing
     */
    rtoHours: z.number().positive().max(24 * 366).optional(),
  })
  .strict();

/** A restore drill on a designated host. */
export const drillSchema = z
  .object({
    /** Group whose latest backups are restored. */
    group: name,
    /** EventBridge Scheduler cron. */
    schedule: cron,
    /** @default the deployment's timeZone */
    timeZone: timeZone.optional(),
    /**
     * Tag key that marks the drill host; its value is the group.
     * @default 'coldseal-drill'
     */
    hostTagKey: tagKeySchema.optional(),
  })
  .strict();

/**
 * The offsite replica of a deployment. Its keys are checked by replicaProblems (replica-settings.ts)
 * so that the context loader and the constructs give the same answer.
 */
export const replicaSchema = z
  .object({
    /** Region of the replica bucket; must differ from the primary's unless the account does. */
    region: z.string(),
    /**
     * Account that owns the replica (the replicas are owned by it, and the primary account's
     * principals get no way to delete them or shorten their locks).
     * @default - the primary's account (protects against a region's loss, not an account's)
     */
    account: z.string().optional(),
    /**
     * Per tier, the day on which the replica moves the tier to its archive class (the class of the
     * primary's first transition, or GLACIER when the primary keeps the tier in Standard). The
     * replica is read only after a disaster, so it may archive sooner than the primary.
     * @default - the primary's transitions
     */
    archiveAfterDays: z.record(z.string(), z.number()).optional(),
    /**
     * S3 Replication Time Control: 99.99 % of objects replicated within 15 minutes, with
     * threshold events. Costs extra per GB replicated.
     * @default false - replication metrics and failure events only
     */
    replicationTimeControl: z.boolean().optional(),
    /**
     * A backup whose replication is still pending after this many hours is reported
     * `replica-missing` (FAIL) instead of `replica-pending` (WARN).
     * @default 24
     */
    maxPendingHours: z.number().optional(),
  })
  .strict();

export const contextSchema = z
  .object({
    groups: z.record(name, groupSchema).refine((groups) => Object.keys(groups).length > 0, 'at least one group is needed'),
    /**
     * Tag key whose value names a host's group.
     * @default 'coldseal-group'
     */
    hostTagKey: tagKeySchema.optional(),
    /**
     * Default time zone of schedules and calendars.
     * @default 'UTC'
     */
    timeZone: timeZone.optional(),
    /** Which day is promoted to which tier; the time zone is each group's schedule's. */
    calendar: z
      .record(z.string(), z.unknown())
      .superRefine((value, ctx) => {
        if ('timeZone' in value) {
          ctx.addIssue({ code: 'custom', path: ['timeZone'], message: 'set the time zone with coldseal.timeZone (or a group\'s timeZone): the calendar follows the schedule' });
          return;
        }
        const parsed = calendarSchema.safeParse(value);
        if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      })
      .optional(),
    retention: z.record(z.string(), tierRetentionSchema).optional(),
    /**
     * Recovery point objective: a source whose newest backup is older is late (the monitor's concern).
     * @default 26 hours (a daily run plus slack)
     */
    rpoHours: z.number().positive().max(24 * 366).optional(),
    /**
     * Email addresses subscribed to alerts.
     * @default - none
     */
    alertEmails: z.array(z.email('must be an email address')).optional(),
    recipients: keySources,
    drill: drillSchema.optional(),
    /** @default '/coldseal' */
    parameterPrefix: z.string().optional(),
    /** The offsite replica vault: another region, optionally another account. */
    replica: replicaSchema.optional(),
    /** The WAL archive of point-in-time recovery (sources with pitr.enabled). */
    pitr: pitrSchema.optional(),
    /**
     * S3 prices (USD) the report's cost estimate uses over the AWS Price List's or the committed
     * table's (format/prices.ts): a negotiated price, or a region the table lacks. Any subset of
     * storagePerGbMonth (per class), requestsPer1000 (tier1, tier2), transitionsPer1000,
     * intelligentTieringMonitoringPer1000Objects, interRegionTransferPerGb.
     * @default - the Price List API's prices, else the committed table
     */
    prices: priceOverrideSchema.optional(),
  })
  .strict();

export type ColdsealContext = z.input<typeof contextSchema>;

/**
 * The offsite replica of a deployment, as the user asks for it (the `replica` of the coldseal
 * context, documented by replicaSchema above, or ColdsealProps.replica). Checked here so that
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

/** A group: the context's group settings (contextSchema above), with its name, and its signing keys as armored text. */
export interface BackupGroupSettings extends Omit<PropsOf<typeof groupSchema>, 'signingPublicKeys'> {
  /** Group name: hosts carry it as the value of the host tag. */
  readonly name: string;
  /** Armored signing PUBLIC key(s) of the group (coldseal keys generate). Never the private half. */
  readonly signingPublicKeys: string;
}

/** A restore drill on a designated host (the context's drill settings, config.ts). */
export type DrillSettings = PropsOf<typeof drillSchema>;

/** The settings a context can give (contextSchema documents them), and what only code can give. */
export interface ColdsealProps extends Pick<PropsOf<typeof contextSchema>, 'hostTagKey' | 'timeZone' | 'rpoHours' | 'alertEmails' | 'parameterPrefix' | 'prices'> {
  readonly groups: readonly BackupGroupSettings[];
  /** Armored public key(s) every dump is encrypted to. Never a private key. */
  readonly recipients: string;
  /**
   * Which day is promoted to which tier.
   * @default 1 January yearly, the 1st monthly, Sunday weekly
   */
  readonly calendar?: Omit<Partial<CalendarConfig>, 'timeZone'>;
  /**
   * Expiry, archive transitions and Object Lock per tier; tiers left out keep the default.
   * @default DEFAULT_RETENTION (daily 35 d; weekly 90 d; monthly Glacier at 30 d, 400 d; yearly Deep Archive, 7 y)
   */
  readonly retention?: Partial<Record<Tier, TierRetention>>;
  /**
   * A restore drill on a designated host.
   * @default - no drill schedule
   */
  readonly drill?: DrillSettings;
  /**
   * An offsite replica vault in another region (optionally another account), filled by S3
   * replication; deploy ColdsealReplicaStack there first (buildApp adds it). The stack needs an
   * explicit region (env.region) then.
   * @default - no replica
   */
  readonly replica?: ReplicaSettings;
  /**
   * The WAL archive of point-in-time recovery: its window and the monitor's grace.
   * @default window = the daily tier's retention, grace 5 minutes
   */
  readonly pitr?: PitrSettings;
  /**
   * Names the replica bucket, its key alias and the replication role (format/replica.ts).
   * @default - derived from the stack name
   */
  readonly deploymentName?: string;
  /**
   * The self-contained agent, one executable per host architecture (`npm run build:agent`, or
   * scripts/build-agent.ts buildAgentExecutablesSync(), writes them to dist/agent).
   */
  readonly agentExecutables: readonly AgentExecutable[];
  /**
   * What happens to the data bucket, the log bucket, the keys and the command logs when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Time a backup may take before SSM stops it.
   * @default Duration.hours(4)
   */
  readonly executionTimeout?: Duration;
  /**
   * Hosts of a group backed up at once.
   * @default '10'
   */
  readonly maxConcurrency?: string;
  /**
   * @default '100%' - every host is attempted; each failure alerts on its own
   */
  readonly maxErrors?: string;
  /**
   * Retention of the command output log group.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly commandLogRetention?: logs.RetentionDays;
}


/** The Coldseal construct's props once checked: every default filled in (see coldsealSettings). */
export interface ColdsealSettings extends Omit<ColdsealProps, 'groups' | 'timeZone' | 'rpoHours' | 'hostTagKey' | 'parameterPrefix' | 'retention' | 'drill' | 'pitr'> {
  readonly groups: readonly (BackupGroupSettings & { readonly timeZone: string })[];
  readonly timeZone: string;
  readonly rpoHours: number;
  readonly hostTagKey: string;
  readonly parameterPrefix: string;
  readonly retention: RetentionSettings;
  readonly drill?: Required<DrillSettings>;
  readonly pitr: Required<PitrSettings>;
}

/** Props that passed coldsealSettings (or the context loader): the Coldseal construct takes them as they are. */
const checkedProps = new WeakSet<object>();

/** What a settings check needs to know of the primary stack (tokens when it is environment-agnostic). */
export interface PrimaryPlace {
  readonly account?: string;
  readonly region?: string;
}

/**
 * The rules between settings that no single field's schema can apply: the drill's group and tag
 * key, and the replica against the primary's place. Each problem has its path below the props.
 */
export function crossSettingProblems(props: Pick<ColdsealProps, 'hostTagKey' | 'drill' | 'replica' | 'pitr'> & { readonly groupNames: readonly string[] }, retention: RetentionSettings, primary: PrimaryPlace = {}): RuleProblem[] {
  const problems: RuleProblem[] = [];
  if (props.drill && !props.groupNames.includes(props.drill.group)) {
    problems.push({ path: ['drill', 'group'], message: `"${props.drill.group}" is not one of the groups (${props.groupNames.join(', ')})` });
  }
  if (props.drill && (props.drill.hostTagKey ?? DEFAULT_DRILL_TAG_KEY) === (props.hostTagKey ?? DEFAULT_HOST_TAG_KEY)) {
    problems.push({ path: ['drill', 'hostTagKey'], message: 'must differ from hostTagKey: the drill host is picked by its own tag' });
  }
  if (props.replica) {
    for (const p of replicaProblems(props.replica, retention, primary)) problems.push({ path: ['replica', ...p.path], message: p.message });
  }
  for (const p of pitrProblems(props.pitr ?? {}, retention)) problems.push({ path: ['pitr', ...p.path], message: p.message });
  return problems;
}

/** The props with every default filled in, marked as checked. The caller has checked them. */
function settled<P extends Omit<ColdsealProps, 'agentExecutables'>>(props: P, retention: RetentionSettings): P & Omit<ColdsealSettings, 'agentExecutables'> {
  const timeZone = props.timeZone ?? DEFAULT_TIME_ZONE;
  const settings = {
    ...props,
    groups: props.groups.map((g) => ({ ...g, timeZone: g.timeZone ?? timeZone })),
    timeZone,
    rpoHours: props.rpoHours ?? DEFAULT_RPO_HOURS,
    hostTagKey: props.hostTagKey ?? DEFAULT_HOST_TAG_KEY,
    parameterPrefix: props.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX,
    retention,
    drill: props.drill
      ? { group: props.drill.group, schedule: props.drill.schedule, timeZone: props.drill.timeZone ?? timeZone, hostTagKey: props.drill.hostTagKey ?? DEFAULT_DRILL_TAG_KEY }
      : undefined,
    pitr: { windowDays: walWindowDays(props.pitr, retention), graceMinutes: props.pitr?.graceMinutes ?? DEFAULT_WAL_GRACE_MINUTES },
  };
  checkedProps.add(settings);
  return settings;
}

/**
 * The context loader's half: the context's schema has checked every field and the cross-setting
 * rules have passed (crossSettingProblems, with the primary's place); only the defaults remain.
 */
export function settingsFromContext(props: Omit<ColdsealProps, 'agentExecutables'>, retention: RetentionSettings): Omit<ColdsealSettings, 'agentExecutables'> {
  acceptNames(props.groups.map((g) => g.name));
  return settled(props, retention);
}

/**
 * The Coldseal construct's props, checked once: props from the context loader (or already
 * checked here) are taken as they are, with the agent executables added; any other props are checked,
 * refused naming the prop ("Coldseal props.…").
 */
export function coldsealSettings(props: ColdsealProps, primary: PrimaryPlace): ColdsealSettings {
  if (checkedProps.has(props)) return props as ColdsealSettings;
  const where = 'Coldseal props';
  if (props.groups.length === 0) throw new Error(`${where}.groups: at least one group is needed`);
  props.groups.forEach((group, index) => checkNameProp(`${where}.groups[${index}].name`, 'group', group.name));
  const zoneProblem = timeZoneProblem(props.timeZone ?? DEFAULT_TIME_ZONE);
  if (zoneProblem) throw new Error(`${where}.timeZone: ${zoneProblem}`);
  const rpoHours = props.rpoHours ?? DEFAULT_RPO_HOURS;
  if (!(rpoHours > 0)) throw new Error(`${where}.rpoHours must be positive, got ${rpoHours}`);
  const retention = retentionWithDefaults(props.retention);
  const problems = crossSettingProblems({ ...props, groupNames: props.groups.map((g) => g.name) }, retention, primary);
  if (problems.length > 0) throw new Error(problems.map((p) => `${where}.${p.path.join('.')}: ${p.message}`).join('; '));
  return settled(props, retention);
}

/** Settings from the context, with the agent executables: still checked, so Coldseal takes them as they are. */
export function withAgentExecutables(settings: Omit<ColdsealSettings, 'agentExecutables'>, agentExecutables: readonly AgentExecutable[]): ColdsealSettings {
  const result = { ...settings, agentExecutables };
  if (checkedProps.has(settings)) checkedProps.add(result);
  return result;
}
