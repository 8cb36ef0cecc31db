import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { encryptionKeyIds, readPublicKeys } from '../../../format/pgp';
import type { AgentClients } from '../aws';
import type { AgentConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import { resolvePublicKeys } from '../secrets';

/** Helpers shared by list, status, restore, verify and drill (the read side of the CLI). */

/** The question on the terminal; without one, refuse rather than hang (and never guess "yes"). */
export function terminalConfirm(input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): (question: string) => Promise<boolean> {
  return async (question) => {
    if (!input.isTTY) {
      throw new ColdsealError(EXIT.REFUSED, `${question.replace(/\s*Continue\? \[y\/N\]\s*$/, '')} There is no terminal to confirm on`, 'Nothing was changed. Pass --yes to proceed (a safety dump is still taken), or run the command in a terminal');
    }
    const rl = createInterface({ input, output });
    try {
      const answer = await rl.question(question);
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line as typed, to print "run this later" (it never holds a secret: we refuse those on argv). */
export function rerunCommand(argv: readonly string[] = process.argv.slice(2)): string {
  return ['coldseal', ...argv.map(shellQuote)].join(' ');
}

/** The recipients' key ids the configuration names, when they can be read here; undefined otherwise. */
export async function configuredRecipientKeyIds(config: AgentConfig, clients: AgentClients): Promise<string[] | undefined> {
  try {
    return await encryptionKeyIds(await readPublicKeys(await resolvePublicKeys(clients.ssm, config.recipients, 'recipients'), 'recipients'));
  } catch {
    return undefined;
  }
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

/** --json on the command or on the program. */
export function wantsJson(command: Command): boolean {
  return Boolean(command.optsWithGlobals().json);
}

export function parseTime(value: string | undefined, flag: string): Date | undefined {
  if (value === undefined) return undefined;
  const date = /^\d{8}T\d{6}Z$/.test(value)
    ? new Date(`${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}T${value.slice(9, 11)}:${value.slice(11, 13)}:${value.slice(13, 15)}Z`)
    : new Date(value);
  if (Number.isNaN(date.getTime())) throw new ColdsealError(EXIT.USAGE, `${flag} "${value}" is not a time`, 'Use an ISO time (2026-11-22T01:00:00Z), a date (2026-11-22) or a stamp (20261122T010000Z)');
  return date;
}

export const CONFIG_OPTIONS: [string, string][] = [
  ['--config <file>', 'agent configuration file (JSON): bucket, region, group, keys'],
  ['--config-parameter <name>', 'SSM parameter holding the configuration'],
  ['--region <region>', 'AWS region of the configuration parameter (default: AWS_REGION)'],
];

export function withConfigOptions(command: Command): Command {
  for (const [flags, description] of CONFIG_OPTIONS) command.option(flags, description);
  return command;
}

export const REPLICA_OPTIONS: [string, string][] = [
  ['--replica', 'read from the offsite replica vault instead of the data bucket (no call to the data bucket): its location from the deployment parameter, or from the two options below'],
  ['--replica-bucket <bucket>', 'with --replica: the replica bucket (stack output RestoreFromReplica); with --replica-region, no SSM call is made to find it'],
  ['--replica-region <region>', 'with --replica: the replica bucket\'s region'],
];

export function withReplicaOptions(command: Command): Command {
  for (const [flags, description] of REPLICA_OPTIONS) command.option(flags, description);
  return command;
}
