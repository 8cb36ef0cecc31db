import type { Command } from 'commander';
import { formatBytes } from '../../../runtime/byte-size';
import { isTier, TIERS, type Tier } from '../../../format/layout';
import type { AgentConfig } from '../../../format/agent-config';
import type { AgentClients } from '../aws';
import { drillStates } from '../catalog/drills';
import { listBackups, type BackupEntry, type CatalogFilter } from '../catalog/listing';
import { describeBackups, formatWindows, summarizeWindow, type BackupRow, type RecoveryWindowSummary } from '../catalog/rows';
import { formatBinlogWindows, summarizeBinlogWindow, type BinlogWindowSummary } from '../catalog/binlog-window-rows';
import { ColdsealError, EXIT } from '../errors';
import { listWalSources, sourceRecoveryWindow } from '../pitr/wal-catalog';
import { isBinlogSource, sourceBinlogWindow } from '../pitr/mysql/binlog-catalog';
import { readClients, readLocation, validateReplicaOptions, type ReadLocation, type ReplicaOptions } from '../replica';
import { loadPrivateKey, loadTrustedKeys } from '../restore/select';
import { GROUP_FLAG, JSON_FLAG, loadAgentConfig, ONLY_HOST_FLAG, PASSPHRASE_FILE_FLAG, parseTime, SIGNING_PUBLIC_KEY_FLAG, wantsJson, withConfigOptions, withFlags, withReplicaOptions, type ConfigOrigin, type KeyOptions, type RunAction, type SelectionOptions } from './options';

export interface ListCommandOptions extends ConfigOrigin, ReplicaOptions, SelectionOptions, KeyOptions {
  readonly source?: string;
  readonly tier?: string;
  readonly since?: string;
  readonly until?: string;
  readonly incomplete?: boolean;
}

/** A backup row; rows of a PITR source carry its recovery window (PostgreSQL) or binary log window (MySQL/MariaDB). */
export type ListedRow = BackupRow & { readonly recoveryWindow?: RecoveryWindowSummary; readonly binlogWindow?: BinlogWindowSummary };

export interface ListResult {
  readonly rows: ListedRow[];
  readonly windows: RecoveryWindowSummary[];
  readonly binlogWindows: BinlogWindowSummary[];
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
    { flags: '--key <file>', description: 'PITR sources with several timelines: the recipient private key, to read the timeline history files (without it, timeline switches are assumed from the file names)' },
    PASSPHRASE_FILE_FLAG,
    SIGNING_PUBLIC_KEY_FLAG,
    JSON_FLAG,
  ).action((options: ListCommandOptions, command: Command) =>
    run(async () => {
      const { rows, windows, binlogWindows } = await runList(options);
      console.log(wantsJson(command) ? JSON.stringify(rows, null, 2) : formatRows(rows) + formatWindows(windows) + formatBinlogWindows(binlogWindows, windows.length === 0));
      return EXIT.OK;
    }),
  );
}

export function validateListOptions(options: ListCommandOptions): { tier?: Tier; since?: Date; until?: Date } {
  validateReplicaOptions(options);
  if (options.tier !== undefined && !isTier(options.tier)) throw new ColdsealError(EXIT.USAGE, `--tier "${options.tier}" is not a tier`, `Use one of: ${TIERS.join(', ')}`);
  return { tier: options.tier as Tier | undefined, since: parseTime(options.since, '--since'), until: parseTime(options.until, '--until') };
}

export async function runList(options: ListCommandOptions): Promise<ListResult> {
  const { tier, since, until } = validateListOptions(options);
  const read = await readBackups(options, { source: options.source, tier, since, until });
  const { windows, binlogWindows } = await readRecoveryWindows(options, read);
  const rows: ListedRow[] = (options.incomplete ? read.rows.filter((r) => !r.complete) : read.rows).map((row) => {
    const same = (w: { group: string; host: string; source: string }) => w.group === row.group && w.host === row.host && w.source === row.source;
    const window = windows.find(same);
    const binlog = binlogWindows.find(same);
    return window ? { ...row, recoveryWindow: window } : binlog ? { ...row, binlogWindow: binlog } : row;
  });
  return { rows, windows, binlogWindows };
}

/** The group's backups (as list and status show them), with their drill state. */
export async function readBackupRows(options: ConfigOrigin & ReplicaOptions & SelectionOptions, filter: Omit<CatalogFilter, 'group' | 'host'> = {}): Promise<BackupRow[]> {
  return (await readBackups(options, filter)).rows;
}

interface ReadBackups {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly location: ReadLocation;
  readonly group: string;
  readonly entries: BackupEntry[];
  readonly rows: BackupRow[];
}

async function readBackups(options: ConfigOrigin & ReplicaOptions & SelectionOptions, filter: Omit<CatalogFilter, 'group' | 'host'>): Promise<ReadBackups> {
  const { config, clients } = await loadAgentConfig(options);
  const location = await readLocation(options, config, clients);
  const { s3, bucket } = location;
  const group = options.group ?? config.group;
  const entries = await listBackups(s3, bucket, { group, host: options.host, ...filter });
  const drills = await drillStates(s3, bucket, group).catch(() => new Map());
  return { config, clients, location, group, entries, rows: await describeBackups(s3, bucket, entries, drills) };
}

/**
 * The recovery window of every PITR source in the selection (those with a WAL archive). Base
 * backups count only from their signed manifests, so the group's trusted signing keys are read;
 * a window that cannot be worked out is shown with the reason, and never fails the listing.
 */
async function readRecoveryWindows(options: ListCommandOptions, read: ReadBackups): Promise<{ windows: RecoveryWindowSummary[]; binlogWindows: BinlogWindowSummary[] }> {
  const { s3, bucket } = read.location;
  let sources: { host: string; source: string }[];
  try {
    sources = await listWalSources(s3, bucket, read.group, { host: options.host, source: options.source });
  } catch {
    // Credentials that may not list the WAL archive: the backups are still worth showing.
    return { windows: [], binlogWindows: [] };
  }
  if (sources.length === 0) return { windows: [], binlogWindows: [] };
  const unknown = (host: string, source: string, why: string): RecoveryWindowSummary => ({ group: read.group, host, source, from: null, to: null, ranges: [], gaps: [], newestArchivedWal: null, notes: [why] });
  let trusted;
  try {
    trusted = await loadTrustedKeys(read.config, readClients(read.clients, read.location), options.signingPublicKey);
  } catch (error) {
    return { windows: sources.map(({ host, source }) => unknown(host, source, `recovery window not worked out: ${(error as Error).message}`)), binlogWindows: [] };
  }
  const privateKey = options.key ? await loadPrivateKey(options.key, options.passphraseFile) : undefined;
  const windows: RecoveryWindowSummary[] = [];
  const binlogWindows: BinlogWindowSummary[] = [];
  for (const { host, source } of sources) {
    // The listing already holds every tier of the source unless --tier/--since/--until narrowed it.
    const narrowed = options.tier !== undefined || options.since !== undefined || options.until !== undefined;
    const entries = narrowed ? undefined : read.entries.filter((e) => e.host === host && e.source === source);
    const location = { group: read.group, host, source };
    try {
      if (await isBinlogSource(s3, bucket, read.group, host, source)) {
        const found = await sourceBinlogWindow({ s3, bucket, group: read.group, host, source, trusted, entries });
        binlogWindows.push(summarizeBinlogWindow(location, found.window, found));
        continue;
      }
    } catch (error) {
      if (!(error instanceof ColdsealError)) throw error;
      binlogWindows.push({ ...location, from: null, to: null, ranges: [], gaps: [], newestArchivedBinlog: null, archivedFiles: 0, recordsOpened: 0, notes: [`recovery window not worked out: ${error.message}`] });
      continue;
    }
    try {
      const { window } = await sourceRecoveryWindow({ s3, bucket, group: read.group, host, source, keys: { trusted, privateKey }, entries });
      windows.push(summarizeWindow({ group: read.group, host, source }, window));
    } catch (error) {
      if (!(error instanceof ColdsealError)) throw error;
      windows.push(unknown(host, source, `recovery window not worked out: ${error.message}`));
    }
  }
  return { windows, binlogWindows };
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
