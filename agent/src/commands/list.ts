import type { Command } from 'commander';
import { isTier, TIERS, type Tier } from '../../../format/layout';
import { describeBackups, drillStates, listBackups, type BackupRow } from '../catalog/catalog';
import { ColdsealError, EXIT } from '../errors';
import { formatBytes } from '../../../format/byte-size';
import { readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { loadAgentConfig, type ConfigOrigin } from './common';
import { parseTime, wantsJson, withConfigOptions, withReplicaOptions } from './restore-common';

export interface ListCommandOptions extends ConfigOrigin, ReplicaOptions {
  readonly group?: string;
  readonly host?: string;
  readonly source?: string;
  readonly tier?: string;
  readonly since?: string;
  readonly until?: string;
  readonly incomplete?: boolean;
}

export function validateListOptions(options: ListCommandOptions): { tier?: Tier; since?: Date; until?: Date } {
  validateReplicaOptions(options);
  if (options.tier !== undefined && !isTier(options.tier)) throw new ColdsealError(EXIT.USAGE, `--tier "${options.tier}" is not a tier`, `Use one of: ${TIERS.join(', ')}`);
  return { tier: options.tier as Tier | undefined, since: parseTime(options.since, '--since'), until: parseTime(options.until, '--until') };
}

export async function runList(options: ListCommandOptions): Promise<BackupRow[]> {
  const { tier, since, until } = validateListOptions(options);
  const { config, clients } = await loadAgentConfig(options);
  const { s3, bucket } = await readLocation(options, config, clients);
  const group = options.group ?? config.group;
  const entries = await listBackups(s3, bucket, { group, host: options.host, source: options.source, tier, since, until });
  const drills = await drillStates(s3, bucket, group).catch(() => new Map());
  const rows = await describeBackups(s3, bucket, entries, drills);
  return options.incomplete ? rows.filter((r) => !r.complete) : rows;
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

export function defineListCommand(program: Command, run: (action: () => Promise<number>) => Promise<void>): void {
  withReplicaOptions(withConfigOptions(
    program
      .command('list')
      .description('list backups (by group, host, source, tier, time) with size, storage class and verification state'),
  ))
    .option('--group <name>', 'host group (default: the configuration\'s)')
    .option('--host <name>', 'only this host')
    .option('--source <name>', 'only this source')
    .option('--tier <tier>', `only this tier: ${TIERS.join(', ')}`)
    .option('--since <time>', 'only backups at or after this time')
    .option('--until <time>', 'only backups at or before this time')
    .option('--incomplete', 'only backups without a manifest (never committed)')
    .option('--json', 'print JSON for scripts')
    .action((options: ListCommandOptions, command: Command) =>
      run(async () => {
        const rows = await runList(options);
        console.log(wantsJson(command) ? JSON.stringify(rows, null, 2) : formatRows(rows));
        return EXIT.OK;
      }),
    );
}
