import type { PropsOf, tierRetentionSchema, tierTransitionSchema } from './config';
import { assertName, TIERS, type Tier } from '../../format/layout';

/**
 * The checks the stack applies to what it is asked to build. They live here, not in the
 * constructs, so that the context loader (which names the cdk.json field) and the constructs
 * (which name the prop) give the same answer.
 */

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

const CRON_FIELD = {
  minutes: /^(\*|[0-5]?\d)([-/,][0-5]?\d)*$/,
  hours: /^(\*|[01]?\d|2[0-3])([-/,]([01]?\d|2[0-3]))*$/,
  dayOfMonth: /^(\?|\*|L|LW|([1-9]|[12]\d|3[01])W?)([-/,]([1-9]|[12]\d|3[01]))*$/,
  month: /^(\*|[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)([-/,]([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))*$/i,
  dayOfWeek: /^(\?|\*|[1-7]L?|[1-7]#[1-5]|L|SUN|MON|TUE|WED|THU|FRI|SAT)([-/,]([1-7]|SUN|MON|TUE|WED|THU|FRI|SAT))*$/i,
  year: /^(\*|(19[7-9]\d|2\d{3}))([-/,](19[7-9]\d|2\d{3}|\d+))*$/,
} as const;

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
 * A construct's check of a group (or other) name: the format's name rule, refused naming the prop,
 * e.g. "HostAccess props.group: group "a.b" is not a valid name: use …".
 */
export function checkNameProp(prop: string, kind: string, value: string): void {
  try {
    assertName(kind, value);
  } catch (error) {
    throw new Error(`${prop}: ${(error as Error).message}`, { cause: error });
  }
}
