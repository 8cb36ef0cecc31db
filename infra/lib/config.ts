import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { normalizePrefix } from '../../format/parameters';
import { recipientProblems, type SigningKeysOf } from '../../runtime/key-roles';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { ColdsealConfigError, CONTEXT_KEY, contextSchema, crossSettingProblems, retentionProblems, retentionWithDefaults, settingsFromContext, type ColdsealProps, type ColdsealSettings, type PrimaryPlace } from './settings';

/**
 * The `coldseal` context of cdk.json, checked once, before anything is built: every problem names
 * the field it is in, so `cdk synth` tells the user what to fix rather than failing deep in a
 * construct. What comes out is settings the Coldseal construct takes without checking again
 * (settings.ts holds the schema and the rules).
 */

/** What a context gives the Coldseal construct: its checked settings but the agent bundle. */
export type ContextProps = Omit<ColdsealSettings, 'agentExecutables'>;

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
 * Turns the raw context into the Coldseal construct's settings, reading and checking every key.
 * @param baseDir where relative key paths are resolved (the directory of cdk.json)
 * @param primary the primary stack's account and region where known: the replica must be elsewhere
 */
export async function resolveContext(raw: unknown, baseDir: string, primary: PrimaryPlace = {}): Promise<ContextProps> {
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
  for (const p of crossSettingProblems({ ...context, groupNames: Object.keys(context.groups) }, retention, primary)) problems.push(`${fieldPath(p.path)}: ${p.message}`);
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
      ...(value.maxHosts !== undefined ? { maxHosts: value.maxHosts } : {}),
      ...(value.rtoHours !== undefined ? { rtoHours: value.rtoHours } : {}),
    });
  }
  // A signing key's private half is in SSM, and nobody holds the example key's: backups encrypted
  // to either would be readable from AWS, or by nobody, while every private-key-free check passes.
  const keyProblems = recipientProblems(recipients.keys, signing);
  if (keyProblems.length > 0) fail(keyProblems.map((p) => `${fieldPath(['recipients'])}: ${p}`));
  return settingsFromContext({
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
    pitr: context.pitr,
    prices: context.prices,
  }, retention);
}
