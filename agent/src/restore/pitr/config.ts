import { formatLsn } from '../../../../format/wal';
import type { RecoveryTarget, TargetTimeline } from './target';

/**
 * What a point-in-time restore writes into the new data directory besides the base backup: the
 * recovery settings appended to postgresql.auto.conf (read after postgresql.conf, so the last value
 * wins; pg_basebackup -R writes there too), and — when the backup came from a server that keeps
 * its configuration outside the data directory, as Debian's /etc/postgresql does — a minimal
 * postgresql.conf, pg_hba.conf and pg_ident.conf. Pure.
 *
 * PostgreSQL docs: "Recovery Target" (recovery_target_time, _lsn, _timeline, _action) and
 * "Archive Recovery" (restore_command) in "Server Configuration / Write Ahead Log", and
 * "Recovering Using a Continuous Archive Backup" (recovery.signal).
 */
export interface RecoveryConfigInput {
  readonly restoreCommand: string;
  readonly target: RecoveryTarget;
  readonly timeline: TargetTimeline;
  readonly port: number;
  /** Where the server's unix socket goes (the spool directory). */
  readonly socketDir: string;
  /**
   * Keep the source's archive_mode/archive_command: the restored server, once promoted, archives
   * its new timeline into the source's archive (for a copy that becomes the new primary). Off by
   * default: a copy restored for inspection must not write into the source's archive.
   */
  readonly keepArchiving: boolean;
  /** A line saying what this is (written as a comment). */
  readonly comment: string;
}

/**
 * A value in a configuration file: single-quoted, ' doubled and \ escaped (the configuration file
 * scanner reads backslash escapes inside quoted strings: guc-file.l, DeescapeQuotedString).
 */
export function confQuote(value: string): string {
  if (/[\n\r\0]/.test(value)) throw new Error(`a configuration value cannot hold a line break or NUL: ${JSON.stringify(value)}`);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function recoverySettings(input: RecoveryConfigInput): Array<[string, string]> {
  const settings: Array<[string, string]> = [['restore_command', confQuote(input.restoreCommand)]];
  const target = input.target;
  if (target.kind === 'time') settings.push(['recovery_target_time', confQuote(target.text)]);
  if (target.kind === 'lsn') settings.push(['recovery_target_lsn', confQuote(formatLsn(target.lsn))]);
  settings.push(['recovery_target_timeline', confQuote(String(input.timeline))]);
  // Without a target PostgreSQL replays to the end of the archive and promotes anyway; with one,
  // "promote" ends recovery there (the default, "pause", would keep a read-only server waiting).
  if (target.kind !== 'latest') settings.push(['recovery_target_action', confQuote('promote')]);
  settings.push(
    ['port', String(input.port)],
    // Reachable from this machine only: the copy holds production data under production roles.
    ['listen_addresses', confQuote('127.0.0.1')],
    ['unix_socket_directories', confQuote(input.socketDir)],
    // The log goes to the file pg_ctl -l names, where the restore reads how recovery ended.
    ['logging_collector', 'off'],
    ['log_destination', confQuote('stderr')],
    ['lc_messages', confQuote('C')],
    // Nobody connects before promotion, and a hot standby pauses recovery when the WAL raises
    // max_connections (or another setting pg_control records) above this server's value
    // (docs "Hot Standby", "Administrator's Overview"); without it recovery only replays.
    ['hot_standby', 'off'],
  );
  if (!input.keepArchiving) settings.push(['archive_mode', 'off']);
  return settings;
}

/** The block appended to postgresql.auto.conf. */
export function recoveryConfBlock(input: RecoveryConfigInput): string {
  const lines = recoverySettings(input).map(([name, value]) => `${name} = ${value}`);
  return `\n# ${input.comment.replace(/\n/g, ' ')}\n# coldseal restore: remove these lines (or run ALTER SYSTEM RESET for each) before making this copy a server of its own\n${lines.join('\n')}\n`;
}

/** Settings pg_control records from the source (pg_controldata "… setting:"): a hot standby needs at least these. */
export const CONTROL_SETTINGS: ReadonlyArray<[string, string]> = [
  ['max_connections setting', 'max_connections'],
  ['max_worker_processes setting', 'max_worker_processes'],
  ['max_wal_senders setting', 'max_wal_senders'],
  ['max_prepared_xacts setting', 'max_prepared_transactions'],
  ['max_locks_per_xact setting', 'max_locks_per_transaction'],
];

/** The source's values of CONTROL_SETTINGS, read from pg_controldata's output. */
export function controlSettings(pgControldataOutput: string): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  for (const [label, name] of CONTROL_SETTINGS) {
    const m = new RegExp(`^${label.replace(/ /g, '\\s+')}:\\s+(\\d+)\\s*$`, 'm').exec(pgControldataOutput);
    if (m) found.push([name, m[1]]);
  }
  return found;
}

/**
 * A postgresql.conf for a data directory that came without one. Hot standby refuses to run with
 * lower max_connections (and the other settings pg_control records) than the source had, so
 * those are the source's.
 */
export function minimalPostgresqlConf(control: ReadonlyArray<[string, string]>): string {
  return [
    '# Written by coldseal restore: the base backup came from a server that keeps its configuration',
    '# outside the data directory (Debian: /etc/postgresql/<version>/<cluster>). These few settings',
    '# let the restored copy start for inspection; postgresql.auto.conf holds the rest.',
    ...control.map(([name, value]) => `${name} = ${value}`),
    '',
  ].join('\n');
}

/** Local connections only: peer over the unix socket, passwords over 127.0.0.1. */
export const MINIMAL_PG_HBA = [
  '# Written by coldseal restore (the base backup had no pg_hba.conf): local connections only.',
  '# TYPE  DATABASE  USER  ADDRESS       METHOD',
  'local   all       all                 peer',
  'host    all       all   127.0.0.1/32  scram-sha-256',
  '',
].join('\n');

export const MINIMAL_PG_IDENT = '# Written by coldseal restore (the base backup had no pg_ident.conf): no user name maps.\n';

/** The command that starts the restored server, as the user types it. */
export function pgCtlStartCommand(input: { pgCtl: string; dataDir: string; logFile: string; runAs?: string }): string[] {
  const pgCtl = [input.pgCtl, '-D', input.dataDir, '-l', input.logFile, 'start'];
  return input.runAs ? ['runuser', '-u', input.runAs, '--', ...pgCtl] : pgCtl;
}

export function pgCtlStopCommand(input: { pgCtl: string; dataDir: string; runAs?: string }): string[] {
  const pgCtl = [input.pgCtl, '-D', input.dataDir, '-m', 'fast', 'stop'];
  return input.runAs ? ['runuser', '-u', input.runAs, '--', ...pgCtl] : pgCtl;
}
