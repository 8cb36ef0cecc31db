import { SSMClient } from '@aws-sdk/client-ssm';
import type { Command } from 'commander';
import { isTier, TIERS, type Tier } from '../../../format/layout';
import type { AgentConfig } from '../../../format/agent-config';
import { createClients, type AgentClients } from '../aws';
import { loadConfigFile, loadConfigParameter } from '../config/load';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';

/**
 * The options the commands share, declared once: their flags and help, the shape commander hands
 * them over in, and the checks that turn them into values. A command file declares only its own.
 */

/** What cli.ts gives every command: runs the action and maps its outcome to the exit code. */
export type RunAction = (action: () => Promise<number>) => Promise<void>;
export type GetLog = () => Log;

export interface Flag {
  readonly flags: string;
  readonly description: string;
  /** For repeatable flags (collect). */
  readonly parse?: (value: string, previous: string[]) => string[];
  readonly default?: string;
}

export function withFlags(command: Command, ...flags: readonly Flag[]): Command {
  for (const f of flags) {
    if (f.parse) command.option(f.flags, f.description, f.parse);
    else command.option(f.flags, f.description, f.default);
  }
  return command;
}

/** Comma-separated or repeated values, in the order given. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

/** --json on the command or on the program. */
export function wantsJson(command: Command): boolean {
  return Boolean(command.optsWithGlobals().json);
}

export const JSON_FLAG: Flag = { flags: '--json', description: 'print JSON for scripts' };

// Where the configuration comes from (every command that runs with the group's configuration).

export interface ConfigOrigin {
  readonly config?: string;
  readonly configParameter?: string;
  readonly region?: string;
}

export function withConfigOptions(command: Command, help: { config?: string; configParameter?: string } = {}): Command {
  return withFlags(
    command,
    { flags: '--config <file>', description: help.config ?? 'agent configuration file (JSON): bucket, region, group, keys' },
    { flags: '--config-parameter <name>', description: help.configParameter ?? 'SSM parameter holding the configuration' },
    { flags: '--region <region>', description: 'AWS region of the configuration parameter (default: AWS_REGION)' },
  );
}

/** The configuration from a file or an SSM parameter, and the clients it calls for. */
export async function loadAgentConfig(origin: ConfigOrigin): Promise<{ config: AgentConfig; clients: AgentClients }> {
  if (origin.config && origin.configParameter) throw new ColdsealError(EXIT.USAGE, '--config and --config-parameter exclude each other', 'Give one of them');
  if (!origin.config && !origin.configParameter) throw new ColdsealError(EXIT.USAGE, 'no configuration given', 'Use --config FILE or --config-parameter NAME');
  const region = origin.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const config = origin.config
    ? await loadConfigFile(origin.config)
    : await loadConfigParameter(new SSMClient({ ...(region ? { region } : {}) }), origin.configParameter!);
  return { config, clients: createClients(config) };
}

// Reading from the offsite replica (the read side: list, status, restore, verify, drill; checked by replica.ts).

export function withReplicaOptions(command: Command): Command {
  return withFlags(
    command,
    { flags: '--replica', description: 'read from the offsite replica vault instead of the data bucket (no call to the data bucket): its location from the deployment parameter, or from the two options below' },
    { flags: '--replica-bucket <bucket>', description: 'with --replica: the replica bucket (stack output RestoreFromReplica); with --replica-region, no SSM call is made to find it' },
    { flags: '--replica-region <region>', description: 'with --replica: the replica bucket\'s region' },
  );
}

// Which backups (the read side).

export interface SelectionOptions {
  readonly group?: string;
  readonly host?: string;
}

export const GROUP_FLAG: Flag = { flags: '--group <name>', description: 'host group (default: the configuration\'s)' };
export const ONLY_HOST_FLAG: Flag = { flags: '--host <name>', description: 'only this host' };

export function parseTime(value: string | undefined, flag: string): Date | undefined {
  if (value === undefined) return undefined;
  const date = /^\d{8}T\d{6}Z$/.test(value)
    ? new Date(`${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}T${value.slice(9, 11)}:${value.slice(11, 13)}:${value.slice(13, 15)}Z`)
    : new Date(value);
  if (Number.isNaN(date.getTime())) throw new ColdsealError(EXIT.USAGE, `${flag} "${value}" is not a time`, 'Use an ISO time (2026-11-22T01:00:00Z), a date (2026-11-22) or a stamp (20261122T010000Z)');
  return date;
}

// The keys a read checks and decrypts with (restore, verify, drill).

export interface KeyOptions {
  readonly key?: string;
  readonly passphraseFile?: string;
  readonly signingPublicKey?: string;
}

export const PASSPHRASE_FILE_FLAG: Flag = { flags: '--passphrase-file <file>', description: 'file holding the private key\'s passphrase' };
export const SIGNING_PUBLIC_KEY_FLAG: Flag = { flags: '--signing-public-key <file>', description: 'trusted signing public key(s) of the group' };

// Scratch servers for test restores (verify --deep, drill).

export interface ScratchOptions {
  readonly scratchPostgres?: string;
  readonly scratchMysql?: string;
}

export function withScratchOptions(command: Command): Command {
  return withFlags(
    command,
    { flags: '--scratch-postgres <url>', description: 'PostgreSQL server for scratch restores (default: the first postgres source\'s)' },
    { flags: '--scratch-mysql <url>', description: 'MySQL/MariaDB server for scratch restores (default: the first mysql source\'s)' },
  );
}

export function scratchUrls(options: ScratchOptions): { postgres?: string; mysql?: string } {
  return { postgres: options.scratchPostgres, mysql: options.scratchMysql };
}

// What a backup run does (backup, trigger).

export interface RunScopeOptions {
  readonly tier?: string;
  readonly source?: string;
}

export function forcedTierFlag(defaultValue?: string): Flag {
  return { flags: '--tier <tier>', description: `force a tier: auto (calendar) or ${TIERS.join(', ')}`, default: defaultValue };
}

export const SOURCES_FLAG: Flag = { flags: '--source <names>', description: 'only these sources, comma-separated (default: all)' };

/** undefined tier: the calendar decides (auto); undefined sources: all of them. */
export function validateRunScope(options: RunScopeOptions): { tier?: Tier; sources?: string[] } {
  if (options.tier !== undefined && options.tier !== 'auto' && !isTier(options.tier)) {
    throw new ColdsealError(EXIT.USAGE, `--tier "${options.tier}" is not a tier`, `Use one of: auto, ${TIERS.join(', ')}`);
  }
  const sources = options.source?.split(',').map((s) => s.trim()).filter(Boolean);
  return { tier: options.tier === 'auto' ? undefined : (options.tier as Tier | undefined), sources: sources?.length ? sources : undefined };
}
