import { z } from 'zod';
import { bucketNameSchema, DEFAULT_HOST_TAG_KEY, nameSchema, TIERS } from './layout';
import { DEFAULT_PARAMETER_PREFIX, normalizePrefix } from './parameters';
import { calendarSchema } from './agent-config';
import { PRICED_CLASSES, priceOverrideSchema, type PriceOverride } from './prices';
import { REGION_PATTERN } from './replica';

/**
 * The Lambdas' settings, read from environment variables that the stack fills. Validated once at
 * cold start: a typo in the stack fails the first invocation loudly instead of checking nothing.
 */

const name = nameSchema;

/** Recovery point objective when the deployment sets none: a daily run plus slack. */
export const DEFAULT_RPO_HOURS = 26;
/** The SSM document the monitor watches when the stack names none. */
export const DEFAULT_DOCUMENT_NAME = 'coldseal-backup';

export const groupSettingsSchema = z
  .object({
    name,
    /** Newest backup of every expected source must be younger than this. */
    rpoHours: z.number().positive().default(DEFAULT_RPO_HOURS),
    /**
     * Recovery time objective: the report's estimate of restoring the newest backup (the last
     * drill's measured throughput scaled to its size, plus any archive retrieval) should stay
     * within it. Optional: without it the estimate is shown and judged against nothing.
     */
    rtoHours: z.number().positive().optional(),
    /** Source names every host of the group backs up (the group's agent config). */
    sources: z.array(name).min(1),
    /** Hosts expected even without an SSM tag (on-prem hosts, or pinned names). */
    hosts: z.array(name).default([]),
    /** Retention per tier in days, as the bucket's lifecycle applies it; a tier left out is not counted. */
    retentionDays: z.partialRecord(z.enum(TIERS), z.number().int().positive()).default({}),
    /** Object Lock term per tier in days, as the agents set it; where absent, the retention above stands in. */
    lockDays: z.partialRecord(z.enum(TIERS), z.number().int().positive()).optional(),
    /**
     * The group's point-in-time-recovery sources (PostgreSQL WAL archive, MySQL/MariaDB binary log
     * archive): the monitor alerts when a host's newest archived log is older than
     * archiveTimeoutSeconds + COLDSEAL_WAL_GRACE_MINUTES, and the verifier proves each archive's
     * continuity from every kept base backup (PostgreSQL) or dump position (MySQL).
     */
    pitrSources: z
      .array(
        z
          .object({
            source: name,
            /** Which archive: "postgres" (WAL under timelines) or "mysql" (binary logs under binlog/). */
            engine: z.enum(['postgres', 'mysql']).default('postgres'),
            /** PostgreSQL's archive_timeout, or a MySQL source's binlog-push interval: how often a quiet server still archives. */
            archiveTimeoutSeconds: z.number().int().positive(),
          })
          .strict(),
      )
      .optional(),
    /** Restore drills: the newest receipt must be younger than this; null when the group runs no drills. */
    drillMaxAgeDays: z.number().positive().nullable().default(null),
    /** The agents' tier calendar (which day's dump is weekly, monthly, yearly, in which time zone): the report counts promised copies with it. */
    calendar: calendarSchema.optional(),
    /** Scheduled backup runs per day (from the group's cron): each is one promised copy. */
    runsPerDay: z.number().int().positive().optional(),
    /** Days after which the lifecycle moves a tier's objects into each storage class: the report prices the month's transitions with it. */
    transitionAfterDays: z.partialRecord(z.enum(PRICED_CLASSES), z.number().int().nonnegative()).optional(),
  })
  .strict();
export type GroupSettings = z.infer<typeof groupSettingsSchema>;

const positiveNumber = (fallback: number) => z.coerce.number().positive().default(fallback);

export const settingsSchema = z
  .object({
    COLDSEAL_BUCKET: bucketNameSchema,
    COLDSEAL_TOPIC_ARN: z.string().regex(/^arn:aws[a-z-]*:sns:/, 'must be an SNS topic ARN'),
    COLDSEAL_PARAMETER_PREFIX: z.string().default(DEFAULT_PARAMETER_PREFIX).transform((p, ctx) => {
      try {
        return normalizePrefix(p);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
    /** JSON array of group settings. */
    COLDSEAL_GROUPS: z.string().transform((text, ctx) => {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `is not JSON (${(error as Error).message})` });
        return z.NEVER;
      }
      const parsed = z.array(groupSettingsSchema).min(1).safeParse(value);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: `${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}: ${issue.message}` });
        return z.NEVER;
      }
      const names = parsed.data.map((g) => g.name);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) {
        ctx.addIssue({ code: 'custom', message: `group "${dup}" is listed twice` });
        return z.NEVER;
      }
      return parsed.data;
    }),
    /** The SSM document that runs the agent: its failures are what the monitor alerts on. */
    COLDSEAL_DOCUMENT_NAME: z.string().min(1).default(DEFAULT_DOCUMENT_NAME),
    /** Tag whose value is the host group, on EC2 instances and hybrid managed nodes. */
    COLDSEAL_TAG_KEY: z.string().min(1).default(DEFAULT_HOST_TAG_KEY),
    /** An open problem is announced again after this long (at most daily by default). */
    COLDSEAL_REPEAT_HOURS: positiveNumber(24),
    /** Ciphertext without a manifest is an orphan once it is older than this (a running upload is younger). */
    COLDSEAL_ORPHAN_MINUTES: positiveNumber(60),
    /** A size below (1 - ratio) × the recent median is a sudden drop. */
    COLDSEAL_SIZE_DROP_RATIO: z.coerce.number().gt(0).lt(1).default(0.5),
    /** Read-verified objects are hashed again after this many days (bit rot, replaced versions). */
    COLDSEAL_REVERIFY_DAYS: positiveNumber(30),
    /** A managed instance whose last SSM ping is older than this has stopped reporting. */
    COLDSEAL_PING_STALE_MINUTES: positiveNumber(60),
    /** Leave this much of the invocation's time for writing the report and alerts. */
    COLDSEAL_TIME_MARGIN_SECONDS: positiveNumber(90),
    /** Optional cap on bytes hashed per invocation (on top of the time limit). */
    COLDSEAL_HASH_BUDGET_MB: z.coerce.number().positive().optional(),
    /**
     * Set by the stack when the deployment has an offsite replica: the verifier then reads each
     * backup object's replication status, and a replication still pending after this many hours
     * is reported replica-missing (FAIL) instead of replica-pending (WARN).
     */
    COLDSEAL_REPLICA_MAX_PENDING_HOURS: z.coerce.number().positive().optional(),
    /** The offsite replica's bucket and region (both or neither): the verifier lists it once a sweep for the report's storage and cost. */
    COLDSEAL_REPLICA_BUCKET: bucketNameSchema.optional(),
    COLDSEAL_REPLICA_REGION: z.string().regex(REGION_PATTERN, 'must be an AWS region, e.g. eu-west-3').optional(),
    /** A PITR source's newest archived WAL may be this much older than its archive_timeout before the monitor alerts. */
    COLDSEAL_WAL_GRACE_MINUTES: positiveNumber(5),
    /** JSON price override (format/prices.ts priceOverrideSchema): a negotiated price, or a region the committed table lacks. */
    COLDSEAL_PRICE_OVERRIDE: z
      .string()
      .optional()
      .transform((text, ctx) => {
        if (text === undefined || text === '') return undefined;
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `is not JSON (${(error as Error).message})` });
          return z.NEVER;
        }
        const parsed = priceOverrideSchema.safeParse(value);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: `${issue.path.map(String).join('.')}: ${issue.message}` });
          return z.NEVER;
        }
        return parsed.data;
      }),
    /** Ask the AWS Price List API (pricing:GetProducts) for S3 prices; "false" keeps to the committed table and the override. */
    COLDSEAL_PRICE_LIST: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
    /** Set by Lambda: the region whose S3 prices apply to the bucket. */
    AWS_REGION: z.string().optional(),
    /** Send the daily report even when everything is OK (its absence is then itself a signal). */
    COLDSEAL_REPORT_WHEN_OK: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
  })
  .loose()
  .refine((s) => (s.COLDSEAL_REPLICA_BUCKET === undefined) === (s.COLDSEAL_REPLICA_REGION === undefined), {
    message: 'COLDSEAL_REPLICA_BUCKET and COLDSEAL_REPLICA_REGION go together: set both (the replica is listed in its own region) or neither',
    path: ['COLDSEAL_REPLICA_BUCKET'],
  });

export type RawSettings = z.infer<typeof settingsSchema>;

export interface Settings {
  readonly bucket: string;
  readonly topicArn: string;
  readonly parameterPrefix: string;
  readonly groups: readonly GroupSettings[];
  readonly documentName: string;
  readonly tagKey: string;
  readonly repeatHours: number;
  readonly orphanMinutes: number;
  readonly sizeDropRatio: number;
  readonly reverifyDays: number;
  readonly pingStaleMinutes: number;
  readonly timeMarginSeconds: number;
  readonly hashBudgetBytes: number | undefined;
  readonly reportWhenOk: boolean;
  /** Present when a replica is expected: hours a replication may stay pending before it is a FAIL. */
  readonly replicaMaxPendingHours: number | undefined;
  /** The offsite replica to list for the report's storage and cost; undefined without one (or from a stack that does not set it). */
  readonly replica: { readonly bucket: string; readonly region: string } | undefined;
  /** A PITR source's newest archived WAL may be this much older than its archive_timeout before the monitor alerts. */
  readonly walGraceMinutes: number;
  /** Prices the deployment sets over the Price List's or the committed table's. */
  readonly priceOverride: PriceOverride | undefined;
  /** Whether the verifier asks the AWS Price List API. */
  readonly priceList: boolean;
  /** The bucket's region (Lambda's AWS_REGION); undefined outside Lambda. */
  readonly region: string | undefined;
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

export function loadSettings(env: Record<string, string | undefined> = process.env): Settings {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${issue.path.join('.')}${issue.message.startsWith('[') || issue.message.startsWith('.') ? '' : ': '}${issue.message}`);
    throw new SettingsError(`coldseal Lambda settings are invalid (check the stack's environment variables):\n${lines.join('\n')}`);
  }
  const s = parsed.data;
  return {
    bucket: s.COLDSEAL_BUCKET,
    topicArn: s.COLDSEAL_TOPIC_ARN,
    parameterPrefix: s.COLDSEAL_PARAMETER_PREFIX,
    groups: s.COLDSEAL_GROUPS,
    documentName: s.COLDSEAL_DOCUMENT_NAME,
    tagKey: s.COLDSEAL_TAG_KEY,
    repeatHours: s.COLDSEAL_REPEAT_HOURS,
    orphanMinutes: s.COLDSEAL_ORPHAN_MINUTES,
    sizeDropRatio: s.COLDSEAL_SIZE_DROP_RATIO,
    reverifyDays: s.COLDSEAL_REVERIFY_DAYS,
    pingStaleMinutes: s.COLDSEAL_PING_STALE_MINUTES,
    timeMarginSeconds: s.COLDSEAL_TIME_MARGIN_SECONDS,
    hashBudgetBytes: s.COLDSEAL_HASH_BUDGET_MB === undefined ? undefined : Math.floor(s.COLDSEAL_HASH_BUDGET_MB * 1024 * 1024),
    reportWhenOk: s.COLDSEAL_REPORT_WHEN_OK,
    replicaMaxPendingHours: s.COLDSEAL_REPLICA_MAX_PENDING_HOURS,
    replica: s.COLDSEAL_REPLICA_BUCKET && s.COLDSEAL_REPLICA_REGION ? { bucket: s.COLDSEAL_REPLICA_BUCKET, region: s.COLDSEAL_REPLICA_REGION } : undefined,
    walGraceMinutes: s.COLDSEAL_WAL_GRACE_MINUTES,
    priceOverride: s.COLDSEAL_PRICE_OVERRIDE,
    priceList: s.COLDSEAL_PRICE_LIST,
    region: s.AWS_REGION,
  };
}

/** What the stack writes: the inverse of loadSettings, so the two can never disagree on names. */
export function settingsEnvironment(input: {
  bucket: string;
  topicArn: string;
  parameterPrefix?: string;
  groups: readonly z.input<typeof groupSettingsSchema>[];
  documentName?: string;
  tagKey?: string;
  extra?: Partial<Record<keyof RawSettings, string>>;
}): Record<string, string> {
  const env: Record<string, string> = {
    COLDSEAL_BUCKET: input.bucket,
    COLDSEAL_TOPIC_ARN: input.topicArn,
    COLDSEAL_PARAMETER_PREFIX: input.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX,
    COLDSEAL_GROUPS: JSON.stringify(input.groups),
  };
  if (input.documentName) env.COLDSEAL_DOCUMENT_NAME = input.documentName;
  if (input.tagKey) env.COLDSEAL_TAG_KEY = input.tagKey;
  for (const [k, v] of Object.entries(input.extra ?? {})) if (v !== undefined) env[k] = v;
  return env;
}
