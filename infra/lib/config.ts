import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { nameSchema, tagKeySchema } from '../../format/layout';
import { normalizePrefix } from '../../format/parameters';
import { recipientProblems, type SigningKeysOf } from '../../runtime/key-roles';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { calendarSchema, objectLockSchema, sourceSchema } from '../../format/agent-config';
import { ARCHIVE_STORAGE_CLASSES, cronProblem, retentionProblems, retentionWithDefaults, timeZoneProblem, type RetentionSettings } from './rules';
import type { ColdsealProps } from './coldseal';
import { replicaProblems } from './replica-settings';

/**
 * The `coldseal` context of cdk.json, checked before anything is built: every problem names the
 * field it is in, so `cdk synth` tells the user what to fix rather than failing deep in a construct.
 */

export const CONTEXT_KEY = 'coldseal';

export class ColdsealConfigError extends Error {
  override readonly name = 'ColdsealConfigError';
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
  })
  .strict();

export type ColdsealContext = z.input<typeof contextSchema>;

/** What a context gives the Coldseal construct: its props but the agent bundle, retention complete. */
export type ContextProps = Omit<ColdsealProps, 'agentBundle' | 'retention'> & { readonly retention: RetentionSettings };

function fieldPath(path: readonly PropertyKey[]): string {
  return [CONTEXT_KEY, ...path.map(String)].join('.');
}

function fail(problems: string[]): never {
  throw new ColdsealConfigError(`invalid "${CONTEXT_KEY}" context (cdk.json, or -c):\n  - ${problems.join('\n  - ')}`);
}

function readKeyText(entry: string, baseDir: string, field: string): string {
  if (entry.includes('-----BEGIN ')) return entry;
  const path = isAbsolute(entry) ? entry : resolve(baseDir, entry);
  if (!existsSync(path)) throw new ColdsealConfigError(`${field}: "${entry}" is neither armored key text nor a readable file (looked at ${path})`);
  return readFileSync(path, 'utf8');
}

async function loadKeys(entries: readonly string[], baseDir: string, field: string): Promise<{ armored: string; keys: PublicKey[] }> {
  const armored: string[] = [];
  const keys: PublicKey[] = [];
  for (const [index, entry] of entries.entries()) {
    const what = `${field}[${index}]`;
    const text = readKeyText(entry, baseDir, what);
    try {
      // Every key of the entry: a file may hold several armored keys.
      keys.push(...(await readPublicKeys(text, what)));
    } catch (error) {
      throw new ColdsealConfigError(`${(error as Error).message}`, { cause: error });
    }
    armored.push(text.trim());
  }
  return { armored: `${armored.join('\n')}\n`, keys };
}

/**
 * Turns the raw context into the Coldseal construct's props, reading and checking every key.
 * @param baseDir where relative key paths are resolved (the directory of cdk.json)
 */
export async function resolveContext(raw: unknown, baseDir: string): Promise<ContextProps> {
  if (raw === undefined || raw === null) fail([`"${CONTEXT_KEY}" is missing: add it to the "context" of cdk.json (see README, "Deploying to AWS")`]);
  const parsed = contextSchema.safeParse(raw);
  if (!parsed.success) fail(parsed.error.issues.map((issue) => `${fieldPath(issue.path)}: ${issue.message}`));
  const context = parsed.data;

  const retention = retentionWithDefaults(context.retention);
  const problems = retentionProblems(retention).map((p) => `${fieldPath(['retention', ...p.path])}: ${p.message}`);
  if (context.parameterPrefix !== undefined) {
    try {
      normalizePrefix(context.parameterPrefix);
    } catch (error) {
      problems.push(`${fieldPath(['parameterPrefix'])}: ${(error as Error).message}`);
    }
  }
  if (context.drill && !(context.drill.group in context.groups)) {
    problems.push(`${fieldPath(['drill', 'group'])}: "${context.drill.group}" is not one of the groups (${Object.keys(context.groups).join(', ')})`);
  }
  if (context.replica) {
    for (const p of replicaProblems(context.replica, retention)) problems.push(`${fieldPath(['replica', ...p.path])}: ${p.message}`);
  }
  if (problems.length > 0) fail(problems);

  const recipients = await loadKeys(context.recipients, baseDir, fieldPath(['recipients']));
  const groups = [];
  const signing: SigningKeysOf[] = [];
  for (const [groupName, value] of Object.entries(context.groups)) {
    const field = fieldPath(['groups', groupName, 'signingPublicKeys']);
    const keys = await loadKeys(value.signingPublicKeys, baseDir, field);
    signing.push({ owner: `group ${groupName} (${field})`, keys: keys.keys });
    groups.push({
      name: groupName,
      schedule: value.schedule,
      timeZone: value.timeZone,
      sources: value.sources,
      signingPublicKeys: keys.armored,
    });
  }
  // A signing key's private half is in SSM, and nobody holds the example key's: backups encrypted
  // to either would be readable from AWS, or by nobody, while every private-key-free check passes.
  const keyProblems = recipientProblems(recipients.keys, signing);
  if (keyProblems.length > 0) fail(keyProblems.map((p) => `${fieldPath(['recipients'])}: ${p}`));
  return {
    groups,
    recipients: recipients.armored,
    hostTagKey: context.hostTagKey,
    timeZone: context.timeZone,
    calendar: context.calendar as ColdsealProps['calendar'],
    retention,
    rpoHours: context.rpoHours,
    alertEmails: context.alertEmails,
    drill: context.drill,
    parameterPrefix: context.parameterPrefix,
    replica: context.replica,
  };
}
