import { ColdsealError, EXIT } from '../errors';

/**
 * The plan behind `coldseal pitr setup --source pg`: from the server's settings as read, the
 * `ALTER SYSTEM SET` statements that make it archive WAL through our archive_command, what is
 * already as wanted, and whether a reload or a restart makes them take effect. Pure: the caller
 * reads `PITR_SETTINGS_QUERY`, runs the statements with --apply and reports.
 *
 * PostgreSQL docs relied on:
 * - "Continuous Archiving and Point-in-Time Recovery (PITR)", "Setting Up WAL Archiving":
 *   wal_level replica or higher, archive_mode on, archive_command with %p and %f.
 * - "Write Ahead Log" settings (Server Configuration): wal_level and archive_mode "can only be set at server
 *   start"; archive_command and archive_timeout "in the postgresql.conf file or on the server
 *   command line" (a reload); archive_timeout in seconds; archive_mode `always` also archives
 *   (it includes `on`); PostgreSQL 15's archive_library: archive_command is used only when it is
 *   empty, and setting both is an error.
 * - "ALTER SYSTEM": superuser only (or a role granted ALTER SYSTEM on the parameter, 15+), writes
 *   postgresql.auto.conf, takes effect at the next reload or, for server-start settings, restart.
 */

/** The rows the planner reads. `reset_val`: for archive_command, `setting` shows "(disabled)"
 *  while archive_mode is off (its show hook), so the configured value is read from reset_val. */
export const PITR_SETTING_NAMES = ['wal_level', 'archive_mode', 'archive_command', 'archive_timeout', 'archive_library'] as const;
export const PITR_SETTINGS_QUERY =
  'SELECT name, setting, unit, context, pending_restart, reset_val FROM pg_settings WHERE name IN (' +
  PITR_SETTING_NAMES.map((n) => `'${n}'`).join(', ') +
  ')';

export interface PgSettingRow {
  name: string;
  setting: string;
  unit: string | null;
  /** 'postmaster': a restart applies it; 'sighup': a reload does. */
  context: string;
  pending_restart: boolean;
  reset_val: string | null;
}

export interface PitrSetupInput {
  settings: readonly PgSettingRow[];
  superuser: boolean;
  /** server_version_num, e.g. 150020. */
  serverVersionNum: number;
  /** Built by the caller (path, %p, %f). */
  archiveCommand: string;
  archiveTimeoutSeconds: number;
  replace: boolean;
}

export interface SettingChange {
  name: string;
  from: string;
  to: string;
  statement: string;
  takesEffect: 'restart' | 'reload';
}

export interface PitrSetupPlan {
  changes: SettingChange[];
  /** Settings already as wanted (or better: wal_level logical, archive_mode always). */
  satisfied: Array<{ name: string; value: string }>;
  /** 'none': nothing to do; 'reload': `SELECT pg_reload_conf()`; 'restart': the server must restart. */
  apply: 'none' | 'reload' | 'restart';
}

export type PitrSetupOutcome = { kind: 'plan'; plan: PitrSetupPlan } | { kind: 'refused'; error: ColdsealError };

export const RELOAD_STATEMENT = 'SELECT pg_reload_conf()';
/** wal_level 'replica' exists from 9.6 (before it was 'archive'/'hot_standby'). */
const MIN_VERSION_NUM = 90600;
/** archive_library exists from PostgreSQL 15. */
const ARCHIVE_LIBRARY_VERSION_NUM = 150000;
/** archive_timeout's maximum in pg_settings (INT_MAX / 2 seconds). */
const MAX_ARCHIVE_TIMEOUT = 1073741823;

const WAL_LEVEL_RANK: Record<string, number> = { minimal: 0, replica: 1, logical: 2 };

/**
 * A PostgreSQL string literal. Single quotes are doubled; a value with a backslash gets the E''
 * form with backslashes doubled, so it means the same whatever standard_conforming_strings says
 * (libpq's PQescapeLiteral does the same). NUL cannot be stored; ALTER SYSTEM refuses newlines
 * (postgresql.auto.conf is line-based), so both are refused here with the setting's name.
 */
export function quotePgLiteral(value: string, what = 'value'): string {
  if (/[\0\r\n]/.test(value)) {
    throw new ColdsealError(EXIT.USAGE, `${what} contains a NUL or line break`, 'PostgreSQL cannot store it in a setting: use a value on one line');
  }
  const quoted = value.replace(/'/g, "''");
  return value.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

function alterSystem(name: string, value: string): string {
  return `ALTER SYSTEM SET ${name} = ${quotePgLiteral(value, name)}`;
}

function refuse(exitCode: typeof EXIT[keyof typeof EXIT], message: string, hint: string): PitrSetupOutcome {
  return { kind: 'refused', error: new ColdsealError(exitCode, message, hint) };
}

export function planPitrSetup(input: PitrSetupInput): PitrSetupOutcome {
  const { archiveCommand, archiveTimeoutSeconds } = input;
  if (archiveCommand.trim() === '') return refuse(EXIT.USAGE, 'the archive_command to set is empty', 'this is a bug in the caller: please report it');
  if (/[\0\r\n]/.test(archiveCommand)) return refuse(EXIT.USAGE, 'the archive_command to set contains a NUL or line break', 'use a path without line breaks');
  if (!Number.isInteger(archiveTimeoutSeconds) || archiveTimeoutSeconds < 1 || archiveTimeoutSeconds > MAX_ARCHIVE_TIMEOUT) {
    return refuse(EXIT.USAGE, `archive timeout ${archiveTimeoutSeconds} is not a whole number of seconds from 1 to ${MAX_ARCHIVE_TIMEOUT}`, 'pass --archive-timeout in seconds, e.g. 60');
  }
  if (input.serverVersionNum < MIN_VERSION_NUM) {
    return refuse(EXIT.SOURCE, `PostgreSQL server version ${input.serverVersionNum} is older than 9.6`, 'point-in-time recovery needs PostgreSQL 9.6 or later');
  }
  if (!input.superuser) {
    return refuse(EXIT.SOURCE, 'the role coldseal connects as is not a superuser, and ALTER SYSTEM needs one', 'run pitr setup as a superuser (e.g. the postgres role), or set the settings yourself');
  }

  const byName = new Map(input.settings.map((row) => [row.name, row]));
  const wanted: string[] = ['wal_level', 'archive_mode', 'archive_command', 'archive_timeout'];
  if (input.serverVersionNum >= ARCHIVE_LIBRARY_VERSION_NUM) wanted.push('archive_library');
  const missing = wanted.filter((name) => !byName.has(name));
  if (missing.length > 0) {
    return refuse(EXIT.SOURCE, `pg_settings has no row for ${missing.join(', ')}`, 'check that the server is PostgreSQL and the version it reports');
  }
  const row = (name: string): PgSettingRow => byName.get(name)!;

  const library = byName.get('archive_library');
  if (library !== undefined) {
    const value = library.reset_val ?? library.setting;
    if (value !== '') {
      return refuse(EXIT.REFUSED, `archive_library is set to '${value}', so archive_command would not be used`, 'clear it (ALTER SYSTEM RESET archive_library) if coldseal is to archive WAL instead, then rerun');
    }
  }

  // archive_command: setting shows "(disabled)" while archive_mode is off; the configured value is reset_val.
  const commandRow = row('archive_command');
  const currentCommand = commandRow.reset_val ?? commandRow.setting;
  if (currentCommand !== '' && currentCommand !== archiveCommand && !input.replace) {
    return refuse(EXIT.REFUSED, `archive_command is already set to '${currentCommand}'`, 'pass --replace to replace it with coldseal\'s (whatever archives WAL today stops doing so)');
  }

  const timeoutRow = row('archive_timeout');
  if (timeoutRow.unit !== 's' || !/^\d+$/.test(timeoutRow.setting)) {
    return refuse(EXIT.SOURCE, `archive_timeout reads '${timeoutRow.setting}' with unit '${timeoutRow.unit ?? ''}', not whole seconds`, 'this server reports settings in a way coldseal does not know: please report it');
  }

  const decisions: Array<{ name: string; current: string; target: string; ok: boolean }> = [];
  const walLevel = row('wal_level').setting;
  const walOk = (WAL_LEVEL_RANK[walLevel] ?? -1) >= WAL_LEVEL_RANK.replica!;
  decisions.push({ name: 'wal_level', current: walLevel, target: walOk ? walLevel : 'replica', ok: walOk });
  const mode = row('archive_mode').setting;
  const modeOk = mode === 'on' || mode === 'always';
  decisions.push({ name: 'archive_mode', current: mode, target: modeOk ? mode : 'on', ok: modeOk });
  decisions.push({ name: 'archive_command', current: currentCommand, target: archiveCommand, ok: currentCommand === archiveCommand });
  const timeout = String(archiveTimeoutSeconds);
  decisions.push({ name: 'archive_timeout', current: timeoutRow.setting, target: timeout, ok: timeoutRow.setting === timeout });

  const changes: SettingChange[] = [];
  const satisfied: PitrSetupPlan['satisfied'] = [];
  for (const d of decisions) {
    const r = row(d.name);
    if (r.context !== 'postmaster' && r.context !== 'sighup') {
      return refuse(EXIT.SOURCE, `${d.name} has context '${r.context}', not postmaster or sighup`, 'this server reports settings in a way coldseal does not know: please report it');
    }
    // A value already right but with a restart pending may be about to change (e.g. wal_level lowered
    // in postgresql.conf): setting it again in postgresql.auto.conf, read last, keeps it.
    if (d.ok && !r.pending_restart) {
      satisfied.push({ name: d.name, value: d.current });
      continue;
    }
    changes.push({
      name: d.name,
      from: d.current,
      to: d.target,
      statement: alterSystem(d.name, d.target),
      takesEffect: r.context === 'postmaster' ? 'restart' : 'reload',
    });
  }
  const apply = changes.some((c) => c.takesEffect === 'restart') ? 'restart' : changes.length > 0 ? 'reload' : 'none';
  return { kind: 'plan', plan: { changes, satisfied, apply } };
}
