import type { MysqlPitrConfig } from '../../../../format/agent-config';
import type { BinlogFlavor } from '../../../../format/binlog';

/**
 * The plan of `coldseal pitr setup` for a MySQL/MariaDB source, from what the server says
 * (SHOW GLOBAL VARIABLES, SHOW GRANTS, whether it replicates): each check either holds, or says
 * exactly what to do, as a statement --apply may run (what can change at run time and is safe to),
 * as lines for the server's configuration file plus a restart, or as a GRANT for an administrator.
 * Pure: setup.ts reads the server and runs what is chosen here.
 *
 * Privileges, as MariaDB 10.11.19 answered with one account per privilege (each statement tried):
 * SHOW BINARY LOGS and SHOW MASTER STATUS need BINLOG MONITOR (REPLICATION CLIENT is its old name
 * and shows as BINLOG MONITOR) or SUPER; FLUSH BINARY LOGS needs RELOAD (neither BINLOG ADMIN nor
 * SUPER will do); SET GLOBAL binlog_format / binlog_expire_logs_seconds need BINLOG ADMIN or SUPER;
 * SHOW SLAVE STATUS needs SLAVE MONITOR or SUPER; @@gtid_binlog_pos needs none (MariaDB KB "GRANT",
 * global privileges). mariadb-dump --single-transaction --master-data=2 --gtid needs none of them
 * (backup/sources/mysql.ts says why). MySQL 8 (not tested here): SHOW BINARY LOGS needs REPLICATION
 * CLIENT, FLUSH BINARY LOGS RELOAD, SET GLOBAL/PERSIST SYSTEM_VARIABLES_ADMIN, and mysqldump
 * --source-data RELOAD and REPLICATION CLIENT (it takes FLUSH TABLES WITH READ LOCK for a moment),
 * plus PROCESS since 8.0.21 for tablespace information (MySQL 8.0 manual, "mysqldump").
 */

/** How long the server must keep a binary log beyond one push interval: see expiryCheck. */
export const EXPIRY_MARGIN_SECONDS = 24 * 3600;
/** What --apply sets the expiry to when it is too short: a week covers a failed push noticed after a weekend. */
export const RECOMMENDED_EXPIRY_SECONDS = 7 * 24 * 3600;

export interface MysqlServerFacts {
  /** SHOW GLOBAL VARIABLES, names in lower case (a variable the server does not have is absent). */
  readonly variables: ReadonlyMap<string, string>;
  /** SHOW GRANTS of the account coldseal uses, one line each. */
  readonly grants: readonly string[];
  /** Whether the server is a replica (SHOW SLAVE/REPLICA STATUS has a row); null when the account may not ask. */
  readonly replica: boolean | null;
}

export type CheckStatus = 'ok' | 'apply' | 'configure' | 'grant' | 'advice';

export interface SetupCheck {
  readonly name: string;
  readonly status: CheckStatus;
  /** What the server has now (or holds, for a privilege). */
  readonly current: string;
  /** One sentence: what is wrong (or fine) and what to do. */
  readonly message: string;
  /** Statement --apply runs (status "apply"). */
  readonly statement?: string;
  /** Lines for the configuration file ("configure"; also to keep an applied setting after a restart). */
  readonly configLines?: readonly string[];
  /** Statement an administrator runs ("grant"). */
  readonly grant?: string;
}

export interface MysqlSetupPlan {
  readonly flavor: BinlogFlavor;
  readonly checks: readonly SetupCheck[];
  /** The configuration file and section the lines go into. */
  readonly configFile: string;
  readonly configSection: string;
  /** Every line for the configuration file, once each, in check order. */
  readonly configLines: readonly string[];
  /** Lines that take effect only at a restart (log_bin, server_id, gtid_mode, or a setting --apply may not change). */
  readonly restartNeeded: boolean;
  /** The privilege --apply's statements need, when the account lacks it (they are then printed, not run). */
  readonly applyPrivilegeMissing: string | null;
}

export function flavorOf(version: string): BinlogFlavor {
  return /mariadb/i.test(version) ? 'mariadb' : 'mysql';
}

/** Global privileges of SHOW GRANTS lines (ON *.*), upper case; "ALL" for ALL PRIVILEGES. */
export function globalPrivileges(grants: readonly string[]): Set<string> {
  const held = new Set<string>();
  for (const line of grants) {
    const m = /^GRANT (.+?) ON \*\.\* TO /i.exec(line.trim());
    if (!m) continue;
    for (const p of m[1].split(',')) {
      const name = p.trim().toUpperCase().replace(/\s+/g, ' ');
      held.add(name === 'ALL PRIVILEGES' || name === 'ALL' ? 'ALL' : name);
    }
  }
  return held;
}

/** The account as SHOW GRANTS names it (`user`@`host`), for the GRANT lines printed. */
export function grantee(grants: readonly string[]): string {
  for (const line of grants) {
    const m = / TO ((?:`[^`]*`|'[^']*'|\S+)@(?:`[^`]*`|'[^']*'|\S+))/.exec(line);
    if (m) return m[1];
  }
  return "'<user>'@'<host>'";
}

function holdsAny(held: Set<string>, ...privileges: string[]): boolean {
  return held.has('ALL') || privileges.some((p) => held.has(p));
}

function seconds(value: number): string {
  if (value === 0) return 'never';
  if (value % 86400 === 0) return `${value / 86400} d`;
  if (value % 3600 === 0) return `${value / 3600} h`;
  return `${value} s`;
}

export interface PlanInput {
  readonly facts: MysqlServerFacts;
  readonly pitr: MysqlPitrConfig;
  readonly source: string;
}

export function planMysqlPitrSetup(input: PlanInput): MysqlSetupPlan {
  const { facts, pitr } = input;
  const v = (name: string) => facts.variables.get(name);
  const version = v('version') ?? '';
  const flavor = flavorOf(version);
  const section = flavor === 'mariadb' ? '[mariadbd]' : '[mysqld]';
  const configFile = flavor === 'mariadb' ? '/etc/mysql/mariadb.conf.d/60-coldseal.cnf' : '/etc/mysql/mysql.conf.d/60-coldseal.cnf';
  const held = globalPrivileges(facts.grants);
  const who = grantee(facts.grants);
  const checks: SetupCheck[] = [];
  const logBin = (v('log_bin') ?? 'OFF').toUpperCase();
  const binlogOn = logBin === 'ON' || logBin === '1';
  const adminPrivilege = flavor === 'mariadb' ? 'BINLOG ADMIN' : 'SYSTEM_VARIABLES_ADMIN';
  const canSetGlobal = holdsAny(held, adminPrivilege, 'SUPER');
  // MySQL 8 keeps a SET PERSIST across restarts (mysqld-auto.cnf); MariaDB has no such statement.
  const persist = flavor === 'mysql' && /^(?:[89]|\d{2,})\./.test(version) ? 'PERSIST' : 'GLOBAL';

  // log_bin is read-only at run time in both (MariaDB KB "Activating the Binary Log"; MySQL "Binary Logging Options").
  const defaultBasename = flavor === 'mariadb' ? '/var/log/mysql/mariadb-bin' : '/var/log/mysql/mysql-bin';
  checks.push(
    binlogOn
      ? { name: 'log_bin', status: 'ok', current: `ON (${v('log_bin_basename') ?? 'basename unknown'})`, message: 'the binary log is on' }
      : {
          name: 'log_bin',
          status: 'configure',
          current: 'OFF',
          message: 'the binary log is off: nothing can be archived; it can only be turned on in the configuration file, then restart the server',
          configLines: [`log_bin = ${defaultBasename}`],
        },
  );

  const format = (v('binlog_format') ?? '').toUpperCase();
  if (format === 'ROW') {
    checks.push({ name: 'binlog_format', status: 'ok', current: format, message: 'row-based logging: replay applies each row as it was changed' });
  } else {
    // Changing the global format affects only sessions that connect afterwards (MySQL 8.0 manual,
    // "Setting The Binary Log Format"; MariaDB KB "Binary Log Formats"). Not safe on a replica: its
    // applier logs what its source sends, and a format change under running replication or Galera
    // (which needs ROW anyway) is for the operator, not for a backup tool.
    const galera = (v('wsrep_on') ?? 'OFF').toUpperCase() === 'ON';
    const unsafe = !binlogOn ? null : galera ? 'this is a Galera node' : facts.replica === true ? 'this server is a replica' : facts.replica === null ? 'the account may not ask whether this server is a replica (SHOW SLAVE STATUS needs SLAVE MONITOR)' : null;
    const line = 'binlog_format = ROW';
    if (!binlogOn) {
      checks.push({ name: 'binlog_format', status: 'configure', current: format || 'unknown', message: 'log rows, not statements: replaying statements is not exact (non-deterministic functions, triggers)', configLines: [line] });
    } else if (unsafe) {
      checks.push({ name: 'binlog_format', status: 'configure', current: format, message: `must be ROW; not changed at run time because ${unsafe}: set it in the configuration file and restart in a maintenance window`, configLines: [line] });
    } else {
      checks.push({
        name: 'binlog_format',
        status: 'apply',
        current: format,
        message: 'must be ROW; sessions connected before the change keep their format until they reconnect (restart the application\'s connection pool); keep the line in the configuration file so a restart does not undo it',
        statement: `SET ${persist} binlog_format = 'ROW'`,
        configLines: persist === 'PERSIST' ? [] : [line],
      });
    }
  }

  const serverId = Number(v('server_id') ?? '0');
  checks.push(
    serverId !== 0
      ? { name: 'server_id', status: 'ok', current: String(serverId), message: 'set (each server of a replication topology needs its own)' }
      : {
          name: 'server_id',
          status: 'configure',
          current: '0',
          message: 'server_id 0 refuses replication connections and names no server in GTIDs: choose a number no other server of this topology has, in the configuration file, and restart',
          configLines: ['server_id = 1'],
        },
  );

  checks.push(expiryCheck({ variables: facts.variables, intervalMinutes: pitr.intervalMinutes, binlogOn, persist }));
  checks.push(...gtidChecks(flavor, facts.variables));

  const checksum = (v('binlog_checksum') ?? '').toUpperCase();
  checks.push(
    checksum === 'CRC32'
      ? { name: 'binlog_checksum', status: 'ok', current: checksum, message: 'each event carries a CRC32, which binlog-push checks before upload' }
      : {
          name: 'binlog_checksum',
          status: 'advice',
          current: checksum || 'unknown',
          message: 'without event checksums a log damaged on the server\'s disk is archived as it is; CRC32 (the default) lets binlog-push notice',
          configLines: ['binlog_checksum = CRC32'],
        },
  );

  checks.push(...privilegeChecks({ flavor, held, who, read: pitr.read, version }));
  if (facts.grants.some((l) => /^GRANT [`'][^`']+[`']@?/.test(l.trim()) && !/ ON /i.test(l))) {
    checks.push({ name: 'roles', status: 'advice', current: 'granted roles', message: 'privileges held through roles are not counted above; binlog-push and the dump check them when they run' });
  }

  const configLines = [...new Set(checks.flatMap((c) => (c.status === 'advice' ? [] : (c.configLines ?? []))))];
  const restartNeeded = checks.some((c) => c.status === 'configure');
  const needsApply = checks.some((c) => c.status === 'apply');
  return {
    flavor,
    checks,
    configFile,
    configSection: section,
    configLines,
    restartNeeded,
    applyPrivilegeMissing: needsApply && !canSetGlobal ? `${adminPrivilege} (or SUPER)` : null,
  };
}

/**
 * The server must keep each binary log until binlog-push has archived it: at least one interval,
 * plus a margin of EXPIRY_MARGIN_SECONDS (a day). The margin is the time someone has to repair a
 * push that stopped working (credentials, network, S3, a full disk) after the monitor's lag alert
 * (interval plus its grace) and before the server deletes a file no one archived: that file's
 * transactions would be a hole in the recovery window. A day covers an alert raised at night; the
 * value --apply sets, a week, covers a weekend.
 * binlog_expire_logs_seconds is dynamic in MySQL 8 and MariaDB 10.6+, where it and
 * expire_logs_days are two views of one setting (0: never expire); before 10.6, expire_logs_days
 * alone (MariaDB KB "Using and Maintaining the Binary Log", "binlog_expire_logs_seconds").
 */
function expiryCheck(args: { variables: ReadonlyMap<string, string>; intervalMinutes: number; binlogOn: boolean; persist: 'PERSIST' | 'GLOBAL' }): SetupCheck {
  const { variables, intervalMinutes, binlogOn, persist } = args;
  const hasSeconds = variables.has('binlog_expire_logs_seconds');
  const bySeconds = Number(variables.get('binlog_expire_logs_seconds') ?? '0');
  const byDays = Math.round(Number(variables.get('expire_logs_days') ?? '0') * 86400);
  const current = bySeconds || byDays;
  const minimum = intervalMinutes * 60 + EXPIRY_MARGIN_SECONDS;
  const name = hasSeconds ? 'binlog_expire_logs_seconds' : 'expire_logs_days';
  const value = hasSeconds ? String(RECOMMENDED_EXPIRY_SECONDS) : String(RECOMMENDED_EXPIRY_SECONDS / 86400);
  const line = `${name} = ${value}`;
  if (current === 0) {
    return {
      name,
      status: 'advice',
      current: 'never expire',
      message: `the server keeps every binary log forever (coldseal never deletes them): its disk fills unless something purges them; an expiry of ${seconds(RECOMMENDED_EXPIRY_SECONDS)} leaves binlog-push (every ${intervalMinutes} min) ample time`,
      configLines: [line],
    };
  }
  if (current >= minimum) return { name, status: 'ok', current: seconds(current), message: `logs are kept ${seconds(current)}, longer than the push interval (${intervalMinutes} min) plus a ${seconds(EXPIRY_MARGIN_SECONDS)} margin to repair a failed push` };
  const message = `logs are kept ${seconds(current)}, less than the push interval (${intervalMinutes} min) plus a ${seconds(EXPIRY_MARGIN_SECONDS)} margin to repair a failed push before a log no one archived is deleted`;
  if (!binlogOn) return { name, status: 'configure', current: seconds(current), message, configLines: [line] };
  return { name, status: 'apply', current: seconds(current), message, statement: `SET ${persist} ${name} = ${value}`, configLines: persist === 'PERSIST' ? [] : [line] };
}

function gtidChecks(flavor: BinlogFlavor, variables: ReadonlyMap<string, string>): SetupCheck[] {
  const v = (name: string) => variables.get(name);
  if (flavor === 'mariadb') {
    const pos = v('gtid_binlog_pos');
    const strict = (v('gtid_strict_mode') ?? 'OFF').toUpperCase();
    return [
      pos === undefined
        ? { name: 'gtid_binlog_pos', status: 'configure', current: 'unreadable', message: 'the server does not report its GTID position: MariaDB 10.0 or later is needed' }
        : { name: 'gtid_binlog_pos', status: 'ok', current: pos || '(none logged yet)', message: 'GTIDs are always on in MariaDB; the archive chains files by their Gtid_list' },
      strict === 'ON' || strict === '1'
        ? { name: 'gtid_strict_mode', status: 'ok', current: 'ON', message: 'out-of-order GTIDs are refused, so every archived file continues the previous one' }
        : {
            name: 'gtid_strict_mode',
            status: 'advice',
            current: 'OFF',
            message: 'with gtid_strict_mode ON the server refuses out-of-order GTIDs (e.g. a second writer with the same domain), which would otherwise show as a GTID discontinuity in the archive; set it at run time (SET GLOBAL gtid_strict_mode = ON) and in the configuration file (MariaDB KB "Global Transaction ID", gtid_strict_mode)',
            configLines: ['gtid_strict_mode = ON'],
          },
    ];
  }
  const mode = (v('gtid_mode') ?? 'OFF').toUpperCase();
  const enforce = (v('enforce_gtid_consistency') ?? 'OFF').toUpperCase();
  if (mode === 'ON' && enforce === 'ON') return [{ name: 'gtid_mode', status: 'ok', current: 'ON', message: 'GTIDs on, enforce_gtid_consistency ON: --to-gtid and the archive\'s GTID continuity work' }];
  return [
    {
      name: 'gtid_mode',
      status: 'configure',
      current: `gtid_mode=${mode}, enforce_gtid_consistency=${enforce}`,
      message: 'GTIDs must be on for --to-gtid and for the archive to prove that no transaction is missing between files: set both in the configuration file and restart (or follow MySQL 8.0 manual "Enabling GTID Transactions Online": enforce_gtid_consistency WARN then ON, gtid_mode OFF_PERMISSIVE, ON_PERMISSIVE, ON)',
      configLines: ['gtid_mode = ON', 'enforce_gtid_consistency = ON'],
    },
  ];
}

function privilegeChecks(args: { flavor: BinlogFlavor; held: Set<string>; who: string; read: 'files' | 'server'; version: string }): SetupCheck[] {
  const { flavor, held, who, read } = args;
  const checks: SetupCheck[] = [];
  const need = (name: string, grant: string, alternatives: string[], why: string) => {
    const has = holdsAny(held, grant, ...alternatives);
    checks.push(
      has
        ? { name, status: 'ok', current: `holds ${[grant, ...alternatives].find((p) => held.has(p)) ?? 'ALL PRIVILEGES'}`, message: why }
        : { name, status: 'grant', current: 'missing', message: `${why}: the account lacks ${[grant, ...alternatives].join(' or ')}`, grant: `GRANT ${grant} ON *.* TO ${who}` },
    );
  };
  const monitor = flavor === 'mariadb' ? 'BINLOG MONITOR' : 'REPLICATION CLIENT';
  need('privilege: list binary logs', monitor, flavor === 'mariadb' ? ['REPLICATION CLIENT', 'SUPER'] : ['SUPER'], 'binlog-push reads SHOW BINARY LOGS');
  need('privilege: rotate', 'RELOAD', [], 'binlog-push closes the current file with FLUSH BINARY LOGS each interval, so a quiet server still reaches the archive');
  if (read === 'server') need('privilege: read over the protocol', 'REPLICATION SLAVE', [], 'pitr.read is "server": binlog-push reads the files with mariadb-binlog --read-from-remote-server');
  if (flavor === 'mysql') {
    need('privilege: dump position', 'RELOAD', [], 'mysqldump --source-data takes FLUSH TABLES WITH READ LOCK for a moment');
    need('privilege: dump tablespaces', 'PROCESS', [], 'mysqldump 8.0.21+ reads tablespace information (or the dump fails unless --no-tablespaces)');
  }
  const select = holdsAny(held, 'SELECT');
  checks.push({
    name: 'privilege: dump',
    status: select ? 'ok' : 'advice',
    current: select ? 'holds SELECT on *.*' : 'no global SELECT',
    message: flavor === 'mariadb'
      ? 'the dump needs SELECT, SHOW VIEW, TRIGGER and EVENT on the dumped databases; its binary log position needs no more (the consistent snapshot, no FLUSH TABLES WITH READ LOCK)'
      : 'the dump needs SELECT, SHOW VIEW, TRIGGER and EVENT on the dumped databases, and RELOAD and REPLICATION CLIENT for its position',
  });
  return checks;
}
