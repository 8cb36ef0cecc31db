import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { keepTail, lastLines } from '../process-output';
import { ColdsealError, EXIT } from '../errors';
import type { ToolRun } from '../pipeline/sink';
import { asUser } from './as-user';

/** How to reach a MySQL/MariaDB server with its client tools (mysql, mysqldump). */
export interface MysqlConnection {
  /** Connection flags (--defaults-extra-file=… first, or --host/--port/--user); never a password. */
  readonly args: readonly string[];
  readonly runAs?: string;
  readonly binDir?: string;
}

export function mysqlCommand(conn: MysqlConnection, tool: string, args: readonly string[]): { command: string; args: string[] } {
  return asUser(conn.runAs, conn.binDir ? join(conn.binDir, tool) : tool, [...conn.args, ...args]);
}

export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function sqlIdent(value: string): string {
  return `\`${value.replace(/`/g, '``')}\``;
}

/** Runs SQL given on stdin (not argv) and returns the raw output lines. */
export function runMysql(conn: MysqlConnection, sql: string, what: string): Promise<string[]> {
  const { command, args } = mysqlCommand(conn, 'mysql', ['--batch', '--raw', '--skip-column-names', '--default-character-set=utf8mb4']);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    const stderr = keepTail(child.stderr, 4096);
    child.stdin.on('error', () => undefined);
    child.once('error', (error) => reject(new Error(`${what}: ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0) resolve(stdout.split('\n').filter((l) => l.length > 0));
      else reject(new Error(`${what}: ${lastLines(stderr(), 2) || `mysql exited with status ${code}`}`));
    });
    child.stdin.end(sql);
  });
}

/**
 * mysqldump's flags for one database, for backups and safety dumps alike: consistent without locking
 * InnoDB tables (--single-transaction), with routines, triggers and events, blobs as hex so the SQL
 * survives any transport.
 */
const MYSQLDUMP_ARGS = ['--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', '--default-character-set=utf8mb4', '--add-drop-database', '--databases'];

/**
 * mysqldump's arguments for one database. The name comes after "--" (end of options): with
 * databases "all" the names come from SHOW DATABASES, so any user who can create a database would
 * otherwise choose an option, e.g. a database named "--result-file=/etc/x" truncating that file.
 */
export function mysqldumpArgs(options: readonly string[], database: string): string[] {
  return [...options, ...MYSQLDUMP_ARGS, '--', database];
}

export async function mysqlDatabaseExists(conn: MysqlConnection, database: string): Promise<boolean> {
  const out = await runMysql(conn, `select schema_name from information_schema.schemata where schema_name = ${sqlString(database)};`, 'checking the target database').catch((error: Error) => {
    throw new ColdsealError(EXIT.FAILURE, error.message, 'Check the target URL, and that the password is in MYSQL_PWD or an option file');
  });
  return out.length > 0;
}

export async function mysqlDropDatabase(conn: MysqlConnection, database: string): Promise<void> {
  await runMysql(conn, `drop database if exists ${sqlIdent(database)};`, `dropping database ${database}`);
}

/** mysqldump of the current database to stdout (the safety dump's writer makes the file). */
export function mysqlSafetyDumpRun(conn: MysqlConnection, database: string): ToolRun {
  return mysqlCommand(conn, 'mysqldump', mysqldumpArgs([], database));
}
