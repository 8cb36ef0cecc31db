import type { Command } from 'commander';
import { formatBytes } from '../../../runtime/byte-size';
import { summarize, type SourceStatus } from '../catalog/rows';
import { EXIT } from '../errors';
import { validateReplicaOptions, type ReplicaOptions } from '../replica';
import { readBackupRows } from './list';
import { GROUP_FLAG, JSON_FLAG, ONLY_HOST_FLAG, wantsJson, withConfigOptions, withFlags, withReplicaOptions, type ConfigOrigin, type RunAction, type SelectionOptions } from './options';

export interface StatusCommandOptions extends ConfigOrigin, ReplicaOptions, SelectionOptions {}

export function defineStatusCommand(program: Command, run: RunAction): void {
  withFlags(withReplicaOptions(withConfigOptions(program.command('status').description('latest backup, age, size and verification of every source of the group'))), GROUP_FLAG, ONLY_HOST_FLAG, JSON_FLAG).action(
    (options: StatusCommandOptions, command: Command) =>
      run(async () => {
        const statuses = await runStatus(options);
        console.log(wantsJson(command) ? JSON.stringify(statuses, null, 2) : formatStatus(statuses));
        return EXIT.OK;
      }),
  );
}

export function validateStatusOptions(options: StatusCommandOptions): void {
  validateReplicaOptions(options);
}

export async function runStatus(options: StatusCommandOptions, now = new Date()): Promise<SourceStatus[]> {
  validateStatusOptions(options);
  return summarize(await readBackupRows(options), now);
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
