import type { Command } from 'commander';
import { describeBackups, drillStates, listBackups, summarize, type SourceStatus } from '../catalog/catalog';
import { EXIT } from '../errors';
import { formatBytes } from '../../../format/byte-size';
import { readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { loadAgentConfig, type ConfigOrigin } from './common';
import { wantsJson, withConfigOptions, withReplicaOptions } from './restore-common';

export interface StatusCommandOptions extends ConfigOrigin, ReplicaOptions {
  readonly group?: string;
  readonly host?: string;
}

export async function runStatus(options: StatusCommandOptions, now = new Date()): Promise<SourceStatus[]> {
  validateReplicaOptions(options);
  const { config, clients } = await loadAgentConfig(options);
  const { s3, bucket } = await readLocation(options, config, clients);
  const group = options.group ?? config.group;
  const entries = await listBackups(s3, bucket, { group, host: options.host });
  const drills = await drillStates(s3, bucket, group).catch(() => new Map());
  return summarize(await describeBackups(s3, bucket, entries, drills), now);
}

export function formatStatus(statuses: readonly SourceStatus[]): string {
  if (statuses.length === 0) return 'no backups yet';
  const head = ['HOST', 'SOURCE', 'LATEST', 'AGE', 'TIER', 'SIZE', 'STORAGE', 'VERIFIED', 'BACKUPS', 'INCOMPLETE'];
  const table = statuses.map((s) => [
    s.host,
    s.source,
    s.latest?.stamp ?? 'never',
    s.ageHours === undefined ? '-' : s.ageHours < 48 ? `${s.ageHours.toFixed(1)} h` : `${(s.ageHours / 24).toFixed(1)} d`,
    s.latest?.tier ?? '-',
    s.latest ? formatBytes(s.latest.bytes) : '-',
    s.latest?.storage ?? '-',
    s.latest?.drill ? `drill ${s.latest.drill.ok ? 'ok' : 'FAILED'}` : '-',
    Object.entries(s.byTier).map(([t, n]) => `${n} ${t}`).join(', ') || '0',
    String(s.incomplete),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  return [head, ...table].map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function defineStatusCommand(program: Command, run: (action: () => Promise<number>) => Promise<void>): void {
  withReplicaOptions(withConfigOptions(program.command('status').description('latest backup, age, size and verification of every source of the group')))
    .option('--group <name>', 'host group (default: the configuration\'s)')
    .option('--host <name>', 'only this host')
    .option('--json', 'print JSON for scripts')
    .action((options: StatusCommandOptions, command: Command) =>
      run(async () => {
        const statuses = await runStatus(options);
        console.log(wantsJson(command) ? JSON.stringify(statuses, null, 2) : formatStatus(statuses));
        return EXIT.OK;
      }),
    );
}
