import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { nameSchema, tagKeySchema } from '../../format/layout';
import { normalizePrefix } from '../../format/parameters';
import { recipientProblems, type SigningKeysOf } from '../../format/key-roles';
import { readPublicKeys, type PublicKey } from '../../format/pgp';
import { calendarSchema, objectLockSchema, sourceSchema } from '../../format/agent-config';
import { cronProblem, retentionProblems, retentionWithDefaults, timeZoneProblem, type RetentionSettings } from './rules';
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

const tierRetention = z
  .object({
    expireAfterDays: z.number().int().min(1),
    lock: objectLockSchema,
    transitions: z
      .array(z.object({ storageClass: z.enum(['GLACIER', 'DEEP_ARCHIVE']), afterDays: z.number().int().min(0) }).strict())
      .optional(),
  })
  .strict();

const group = z
  .object({
    schedule: cron,
    timeZone: timeZone.optional(),
    signingPublicKeys: keySources,
    sources: z.array(sourceSchema).min(1, 'at least one source is needed'),
  })
  .strict();

export const contextSchema = z
  .object({
    groups: z.record(name, group).refine((groups) => Object.keys(groups).length > 0, 'at least one group is needed'),
    hostTagKey: tagKeySchema.optional(),
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
    retention: z.record(z.string(), tierRetention).optional(),
    rpoHours: z.number().positive().max(24 * 366).optional(),
    alertEmails: z.array(z.email('must be an email address')).optional(),
    recipients: keySources,
    drill: z
      .object({
        group: name,
        schedule: cron,
        timeZone: timeZone.optional(),
        hostTagKey: tagKeySchema.optional(),
      })
      .strict()
      .optional(),
    parameterPrefix: z.string().optional(),
    /** The offsite replica vault: another region, optionally another account. */
    replica: z
      .object({
        region: z.string(),
        account: z.string().optional(),
        archiveAfterDays: z.record(z.string(), z.number()).optional(),
        replicationTimeControl: z.boolean().optional(),
        maxPendingHours: z.number().optional(),
      })
      .strict()
      .optional(),
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
    replica: context.replica as ColdsealProps['replica'],
  };
}
