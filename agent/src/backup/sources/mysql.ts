import { randomBytes } from 'node:crypto';
import { chown, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { MysqlSourceConfig } from '../../../../format/agent-config';
import type { BinlogFlavor } from '../../../../format/binlog';
import { mysqlInventory } from '../../inventory/mysql';
import { asUser } from '../../db/as-user';
import { mysqldumpArgs } from '../../db/mysql';
import { ColdsealError, EXIT } from '../../errors';
import { DumpPositionReader } from './mysql-dump-position';
import { parseSizes, runCapture, toolVersion, type DumpStep, type PreparedSource, type StepCompanion } from './source';

/**
 * MySQL/MariaDB: one mysqldump per database, consistent without locking InnoDB tables
 * (--single-transaction), with routines, triggers and events, blobs as hex so the SQL survives any
 * transport. Connection settings and the password go into a 0600 option file that only the dump's
 * user can read, removed when the source is done; argv carries only its path.
 */
const SYSTEM_DATABASES = new Set(['information_schema', 'performance_schema', 'sys', 'mysql']);

export function diagnoseMysql(stderr: string): { message: string; hint: string } | undefined {
  const line = (stderr.split('\n').map((l) => l.replace(/^(mysqldump|mariadb-dump|mysql|mariadb): /, '').trim()).find(Boolean) ?? '').slice(0, 300);
  // "Access denied; you need (at least one of) the RELOAD privilege(s)": logged in, but not allowed (MySQL's --source-data takes FLUSH TABLES WITH READ LOCK).
  const privilege = /you need \(at least one of\) the (.+?) privilege/i.exec(stderr);
  if (privilege) return { message: `the source's user lacks the ${privilege[1]} privilege (${line})`, hint: `GRANT ${privilege[1]} ON *.* TO the source's user; coldseal pitr setup --source <name> lists every privilege a point-in-time recovery source needs` };
  if (/You are not using binary logging|\(1381\)/.test(stderr)) {
    return { message: `the server's binary log is off, so the dump cannot record its binary log position (${line})`, hint: 'Turn binary logging on: coldseal pitr setup --source <name> prints the configuration lines (log_bin needs a server restart)' };
  }
  if (/Access denied/i.test(stderr)) return { message: `authentication failed (${line})`, hint: "Check the source's user and password parameter, or use runAs with socket authentication" };
  if (/Can't connect|Unknown MySQL server host|Lost connection|Connection refused/i.test(stderr)) {
    return { message: `the database server is unreachable (${line})`, hint: "Check that MySQL/MariaDB is running and that the source's host, port or socket are right" };
  }
  if (/Unknown database|Got error: 1049/i.test(stderr)) return { message: line, hint: "Fix the source's databases list, or use \"all\"" };
  return undefined;
}

function optionFileValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export async function prepareMysql(source: MysqlSourceConfig, password: string | undefined): Promise<PreparedSource> {
  const bin = (tool: string) => (source.binDir ? join(source.binDir, tool) : tool);
  const lines = ['[client]', `port=${source.port}`];
  if (source.host) lines.push(`host=${optionFileValue(source.host)}`);
  if (source.socket) lines.push(`socket=${optionFileValue(source.socket)}`);
  if (source.user) lines.push(`user=${optionFileValue(source.user)}`);
  if (password !== undefined) lines.push(`password=${optionFileValue(password)}`);
  const optionFile = join(tmpdir(), `coldseal-${randomBytes(8).toString('hex')}.cnf`);
  await writeFile(optionFile, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  const cleanup = () => rm(optionFile, { force: true });
  try {
    if (source.runAs && userInfo().uid === 0) {
      const uid = Number(execFileSync('id', ['-u', source.runAs]).toString().trim());
      await chown(optionFile, uid, -1);
    }
    const defaults = `--defaults-extra-file=${optionFile}`;
    const mysql = (sql: string, what: string) => {
      const { command, args } = asUser(source.runAs, bin('mysql'), [defaults, '--batch', '--skip-column-names', '-e', sql]);
      return runCapture(command, args, {}, `source ${source.name}: ${what}`, diagnoseMysql);
    };
    const serverVersion = (await mysql('select version()', 'reading the server version')).trim();
    let databases: string[];
    if (source.databases === 'all') {
      const listed = await mysql('show databases', 'listing databases');
      databases = listed.split('\n').filter(Boolean).filter((d) => !SYSTEM_DATABASES.has(d) && !source.excludeDatabases.includes(d));
    } else {
      databases = source.databases;
    }
    const sizes = parseSizes(await mysql('select table_schema, sum(data_length + index_length) from information_schema.tables group by table_schema', 'reading database sizes'), '\t');
    const flavor: BinlogFlavor = /mariadb/i.test(serverVersion) ? 'mariadb' : 'mysql';
    const dumpVersion = toolVersion(await runCapture(bin('mysqldump'), ['--version'], {}, `source ${source.name}: mysqldump --version`, undefined, { mysqlFlavor: flavor }));
    const pitr = source.pitr?.enabled === true;
    if (pitr) {
      const logBin = (await mysql('select @@global.log_bin', 'checking that the binary log is on')).trim();
      if (logBin !== '1') {
        throw new ColdsealError(
          EXIT.SOURCE,
          `source ${source.name}: point-in-time recovery is enabled but the server's binary log is off (log_bin=${logBin || 'unknown'}): a dump without a binary log position cannot start a replay`,
          `Run coldseal pitr setup --source ${source.name}: it prints the lines for the server's configuration (log_bin needs a restart); or set pitr.enabled to false`,
        );
      }
    }
    const positionArgs = pitr ? dumpPositionArgs(dumpVersion) : [];
    const steps: DumpStep[] = databases.map((database) => {
      const run = asUser(source.runAs, bin('mysqldump'), mysqldumpArgs([defaults, ...positionArgs], database));
      return {
        name: database,
        kind: 'database',
        contentFormat: 'sql',
        extension: 'sql',
        command: run.command,
        args: run.args,
        env: {},
        tool: { name: 'mysqldump', version: dumpVersion },
        completion: { method: 'marker', marker: '-- Dump completed' },
        estimatedBytes: sizes.get(database),
        stillExists:
          source.databases === 'all'
            ? async () => (await mysql(`select count(*) from information_schema.schemata where schema_name = '${database.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`, `checking that database ${database} still exists`)).trim() === '1'
            : undefined,
        diagnose: diagnoseMysql,
        companion: pitr ? async () => positionCompanion(source.name, database, flavor) : undefined,
        // Counted in a consistent snapshot of its own just before mysqldump takes its own: approximate.
        inventory: source.inventory
          ? async () => {
              const inventory = mysqlInventory({ args: [defaults], runAs: source.runAs, binDir: source.binDir }, database, 'approximate');
              await inventory;
              return { args: [], inventory, close: async () => {} };
            }
          : undefined,
      } satisfies DumpStep;
    });
    return { engine: { kind: 'mysql', version: serverVersion }, steps, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/**
 * The dump options that print the snapshot's binary log position as comments (=2), chosen by the
 * dump tool (its options, not the server's version, decide what it accepts):
 * - mariadb-dump: --master-data=2 --gtid. With --single-transaction, MariaDB reads the position of
 *   its consistent snapshot (Binlog_snapshot_file/position) and takes no FLUSH TABLES WITH READ
 *   LOCK, so it needs neither RELOAD nor BINLOG MONITOR (MariaDB KB "Enhancements for START
 *   TRANSACTION WITH CONSISTENT SNAPSHOT", section mysqldump; "mariadb-dump", --master-data and
 *   --gtid). Checked on 10.11.19 in the server's general log: SHOW STATUS LIKE 'binlog_snapshot_%',
 *   START TRANSACTION WITH CONSISTENT SNAPSHOT, SELECT BINLOG_GTID_POS(file, pos); no FTWRL.
 * - mysqldump 8.0.26+: --source-data=2 (--master-data is deprecated there and gone in 8.4); older,
 *   --master-data=2. MySQL takes FLUSH TABLES WITH READ LOCK for a moment at the start and runs SHOW
 *   MASTER STATUS: RELOAD and REPLICATION CLIENT (MySQL 8.0 manual, mysqldump, --source-data).
 */
export function dumpPositionArgs(dumpToolVersion: string): string[] {
  if (/mariadb/i.test(dumpToolVersion)) return ['--master-data=2', '--gtid'];
  const match = /Ver (\d+)\.(\d+)\.(\d+)/.exec(dumpToolVersion);
  const [major, minor, patch] = match ? match.slice(1).map(Number) : [0, 0, 0];
  const sourceData = major > 8 || (major === 8 && (minor > 0 || patch >= 26));
  return [sourceData ? '--source-data=2' : '--master-data=2'];
}

function positionCompanion(source: string, database: string, flavor: BinlogFlavor): StepCompanion {
  const reader = new DumpPositionReader(flavor);
  return {
    args: [],
    observe: (chunk) => reader.push(chunk),
    async settle() {
      const position = reader.result();
      if (position instanceof Error) {
        throw new ColdsealError(
          EXIT.SOURCE,
          `source ${source}, database ${database}: the dump carries no binary log position, which point-in-time recovery starts from: ${position.message}`,
          `Run coldseal pitr setup --source ${source} to check the server and the account; nothing of this run was committed`,
        );
      }
      return { binlogPosition: { file: position.file, position: position.position, gtid: position.gtid, flavor: position.flavor, readAt: position.readAt.toISOString() } };
    },
    close: async () => {},
  };
}
