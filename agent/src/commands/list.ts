import type { Command } from 'commander';
import { formatBytes } from '../../../runtime/byte-size';
import { isTier, TIERS, type Tier } from '../../../format/layout';
import { drillStates } from '../catalog/drills';
import { listBackups, type CatalogFilter } from '../catalog/listing';
import { describeBackups, type BackupRow } from '../catalog/rows';
import { ColdsealError, EXIT } from '../errors';
import { readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { GROUP_FLAG, JSON_FLAG, loadAgentConfig, ONLY_HOST_FLAG, parseTime, wantsJson, withConfigOptions, withFlags, withReplicaOptions, type ConfigOrigin, type RunAction, type SelectionOptions } from './options';

export interface ListCommandOptions extends ConfigOrigin, ReplicaOptions, SelectionOptions {
  readonly source?: string;
  readonly tier?: string;
  readonly since?: string;
  readonly until?: string;
  readonly incomplete?: boolean;
}

export function defineListCommand(program: Command, run: RunAction): void {
  withFlags(
    withReplicaOptions(withConfigOptions(program.command('list').description('list backups (by group, host, source, tier, time) with size, storage class and verification state'))),
    GROUP_FLAG,
    ONLY_HOST_FLAG,
    { flags: '--source <name>', description: 'only this source' },
    { flags: '--tier <tier>', description: `only this tier: ${TIERS.join(', ')}` },
    { flags: '--since <time>', description: 'only backups at or after this time' },
    { flags: '--until <time>', description: 'only backups at or before this time' },
    { flags: '--incomplete', description: 'only backups without a manifest (never committed)' },
    JSON_FLAG,
  ).action((options: ListCommandOptions, command: Command) =>
    run(async () => {
      const rows = await runList(options);
      console.log(wantsJson(command) ? JSON.stringify(rows, null, 2) : formatRows(rows));
      return EXIT.OK;
    }),
  );
}

export function validateListOptions(options: ListCommandOptions): { tier?: Tier; since?: Date; until?: Date } {
  validateReplicaOptions(options);
  if (options.tier !== undefined && !isTier(options.tier)) throw new ColdsealError(EXIT.USAGE, `--tier "${options.tier}" is not a tier`, `Use one of: ${TIERS.join(', ')}`);
  return { tier: options.tier as Tier | undefined, since: parseTime(options.since, '--since'), until: parseTime(options.until, '--until') };
}

export async function runList(options: ListCommandOptions): Promise<BackupRow[]> {
  const { tier, since, until } = validateListOptions(options);
  const rows = await readBackupRows(options, { source: options.source, tier, since, until });
  return options.incomplete ? rows.filter((r) => !r.complete) : rows;
}

/** The group's backups (as list and status show them), with their drill state. */
export async function readBackupRows(options: ConfigOrigin & ReplicaOptions & SelectionOptions, filter: Omit<CatalogFilter, 'group' | 'host'> = {}): Promise<BackupRow[]> {
  const { config, clients } = await loadAgentConfig(options);
  const { s3, bucket } = await readLocation(options, config, clients);
  const group = options.group ?? config.group;
  const entries = await listBackups(s3, bucket, { group, host: options.host, ...filter });
  const drills = await drillStates(s3, bucket, group).catch(() => new Map());
  return describeBackups(s3, bucket, entries, drills);
}

export function formatRows(rows: readonly BackupRow[]): string {
  if (rows.length === 0) return 'no backups match';
  const table = rows.map((r) => [
    r.stamp,
    r.tier,
    r.host,
    r.source,
    formatBytes(r.bytes),
    r.storage,
    r.complete ? 'complete' : 'INCOMPLETE (no manifest)',
    r.drill ? `drill ${r.drill.ok ? 'ok' : 'FAILED'} ${r.drill.at.slice(0, 10)}` : '-',
    r.artifacts.map((a) => a.name).join(','),
  ]);
  const head = ['STAMP', 'TIER', 'HOST', 'SOURCE', 'SIZE', 'STORAGE', 'STATE', 'VERIFIED', 'ARTIFACTS'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  return [head, ...table].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}
