import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { ColdsealError, EXIT } from '../errors';
import { keepTail } from '../process-output';
import { mysqlCommand, runMysql, sqlIdent, sqlString, type MysqlConnection } from '../db/mysql';
import { pgCommand, type PgConnection } from '../db/postgres';
import { mysqldumpArgs } from '../backup/sources/mysql';

/**
 * Where plaintext goes: pg_restore, mysql, tar, or a file. Each sink is a child process with its
 * stdin open for the plaintext; `done` settles when it has exited (rejecting with its message).
 */
export interface Sink {
  readonly input: Writable;
  readonly done: Promise<void>;
  kill(): void;
}

export interface ToolRun {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

/** Spawns a tool that reads stdin; `what` names it in errors. Stdout is kept (for --list) when asked. */
export function toolSink(run: ToolRun, what: string, options: { keepStdout?: boolean; earlyExitOk?: boolean; drain?: boolean } = {}): Sink & { stdout(): string } {
  // drain: a tool that succeeds before the end of its input (pg_restore of some tables, tar at its
  // end record) must not break the pipe of a decompressor writing into it directly, which would
  // then fail instead of checking the rest: the shell reads what is left (names stay in "$@").
  const [command, args] = options.drain ? ['/bin/sh', ['-c', '"$0" "$@"; s=$?; if [ $s -eq 0 ]; then cat > /dev/null; fi; exit $s', run.command, ...run.args]] : [run.command, [...run.args]];
  const child = spawn(command, args, { env: { ...process.env, ...run.env }, stdio: ['pipe', options.keepStdout ? 'pipe' : 'ignore', 'pipe'] });
  let stdout = '';
  const stderr = keepTail(child.stderr!, 16384);
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stdin!.on('error', () => undefined);
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new ColdsealError(EXIT.FAILURE, `${what}: ${run.command} could not be started (${error.message})`, (error as NodeJS.ErrnoException).code === 'ENOENT' ? `Install ${run.command} (the database client tools) on this machine` : undefined)));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      if (options.drain && code === 127) return reject(new ColdsealError(EXIT.FAILURE, `${what}: ${run.command} could not be started (not found)`, `Install ${run.command} (the database client tools) on this machine`));
      const lines = stderr().trim().split('\n').filter((l) => !/^\s*$/.test(l));
      const firstError = lines.find((l) => /error|ERROR|fatal|FATAL|Cannot|cannot/.test(l)) ?? lines[0] ?? '';
      // No hint: what the failure left behind is for the caller to say (a restore undoes it and says so).
      reject(new ColdsealError(EXIT.FAILURE, `${what} failed (${signal ?? `status ${code}`}): ${firstError.trim().slice(0, 600)}`));
    });
  });
  done.catch(() => undefined);
  return { input: child.stdin!, done, kill: () => child.kill('SIGKILL'), stdout: () => stdout };
}

/** Runs a tool to completion (no stdin payload) and returns stdout. */
export async function runTool(run: ToolRun, what: string, input: string | Buffer = ''): Promise<string> {
  const sink = toolSink(run, what, { keepStdout: true });
  sink.input.end(input);
  await sink.done;
  return sink.stdout();
}

// --- connection targets from URLs -------------------------------------------------------------

function rejectPassword(url: URL, envName: string, fileHint: string): void {
  if (url.password) {
    throw new ColdsealError(
      EXIT.USAGE,
      `the target URL holds a password: anything on the command line is visible to every user (ps, /proc) and lands in shell history`,
      `Remove it from the URL and give it by ${envName} in the environment or in ${fileHint}`,
    );
  }
}

export interface PgTarget {
  readonly conn: PgConnection;
  readonly database?: string;
}

export function parsePostgresUrl(text: string): PgTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ColdsealError(EXIT.USAGE, `"${text}" is not a URL`, 'Use postgres://user@host:5432/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new ColdsealError(EXIT.USAGE, `"${url.protocol}" is not a PostgreSQL URL`, 'Use postgres://user@host:5432/database');
  rejectPassword(url, 'PGPASSWORD', '~/.pgpass');
  const env: Record<string, string> = {};
  if (url.hostname) env.PGHOST = decodeURIComponent(url.hostname);
  if (url.port) env.PGPORT = url.port;
  if (url.username) env.PGUSER = decodeURIComponent(url.username);
  for (const [name, value] of url.searchParams) {
    const known: Record<string, string> = { host: 'PGHOST', port: 'PGPORT', user: 'PGUSER', sslmode: 'PGSSLMODE', sslrootcert: 'PGSSLROOTCERT', sslcert: 'PGSSLCERT', sslkey: 'PGSSLKEY', passfile: 'PGPASSFILE' };
    if (name === 'password') rejectPassword(new URL('x://u:p@h'), 'PGPASSWORD', '~/.pgpass');
    if (!known[name]) throw new ColdsealError(EXIT.USAGE, `URL parameter "${name}" is not supported`, `Supported: ${Object.keys(known).join(', ')}`);
    env[known[name]] = value;
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
  return { conn: { env }, database };
}

export interface MysqlTarget {
  readonly conn: MysqlConnection;
  readonly database?: string;
}

export function parseMysqlUrl(text: string): MysqlTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ColdsealError(EXIT.USAGE, `"${text}" is not a URL`, 'Use mysql://user@host:3306/database');
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') throw new ColdsealError(EXIT.USAGE, `"${url.protocol}" is not a MySQL URL`, 'Use mysql://user@host:3306/database');
  rejectPassword(url, 'MYSQL_PWD', 'an option file (~/.my.cnf, [client] password=…)');
  const args: string[] = [];
  if (url.hostname) args.push(`--host=${decodeURIComponent(url.hostname)}`);
  if (url.port) args.push(`--port=${url.port}`);
  if (url.username) args.push(`--user=${decodeURIComponent(url.username)}`);
  for (const [name, value] of url.searchParams) {
    if (name === 'socket') args.push(`--socket=${value}`);
    else throw new ColdsealError(EXIT.USAGE, `URL parameter "${name}" is not supported`, 'Supported: socket');
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
  return { conn: { args }, database };
}

// --- PostgreSQL -------------------------------------------------------------------------------

export function pgIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function pgLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** libpq connection string naming only the database (the rest comes from the environment). */
export function pgDbname(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function psqlRun(conn: PgConnection, database: string): ToolRun {
  const run = pgCommand(conn, 'psql', ['-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', pgDbname(database)]);
  return { ...run, env: conn.env };
}

export async function pgDatabaseExists(conn: PgConnection, database: string): Promise<boolean> {
  const out = await runTool(psqlRun(conn, 'postgres'), 'checking the target database', `select 1 from pg_database where datname = ${pgLiteral(database)};`);
  return out.trim() === '1';
}

export async function pgCreateDatabase(conn: PgConnection, database: string): Promise<void> {
  await runTool(psqlRun(conn, 'postgres'), `creating database ${database}`, `create database ${pgIdent(database)};`);
}

export async function pgDropDatabase(conn: PgConnection, database: string): Promise<void> {
  await runTool(psqlRun(conn, 'postgres'), `dropping database ${database}`, `drop database if exists ${pgIdent(database)} with (force);`);
}

/** pg_dump of the current database to stdout (the safety dump's writer makes the file). */
export function pgSafetyDumpRun(conn: PgConnection, database: string): ToolRun {
  const run = pgCommand(conn, 'pg_dump', ['--format=custom', '--no-password']);
  return { ...run, env: { ...conn.env, PGDATABASE: database } };
}

export interface PgRestoreOptions {
  /** Drop the objects before recreating them (restore into an existing database). */
  readonly clean: boolean;
  readonly schemas?: readonly string[];
  /** "table" or "schema.table" */
  readonly tables?: readonly string[];
  /** Skip ownership and grants (roles of the original cluster may not exist here). */
  readonly noOwner?: boolean;
}

/** pg_restore's -t takes a bare name and -n narrows it: "schema.table" pairs must share one schema. */
export function pgSelectionArgs(tables: readonly string[] = [], schemas: readonly string[] = []): string[] {
  const args: string[] = [];
  const tableSchemas = new Set<string>();
  for (const table of tables) {
    const dot = table.indexOf('.');
    if (dot > 0) {
      tableSchemas.add(table.slice(0, dot));
      args.push(`--table=${table.slice(dot + 1)}`);
    } else args.push(`--table=${table}`);
  }
  if (tableSchemas.size > 1) {
    throw new ColdsealError(EXIT.USAGE, `--table names tables of several schemas (${[...tableSchemas].join(', ')})`, 'pg_restore selects tables by name within the --schema given: restore one schema\'s tables at a time');
  }
  for (const schema of new Set([...schemas, ...tableSchemas])) args.push(`--schema=${schema}`);
  return args;
}

export function pgSelectedSchemas(tables: readonly string[] = [], schemas: readonly string[] = []): string[] {
  return [...new Set([...schemas, ...tables.filter((t) => t.indexOf('.') > 0).map((t) => t.slice(0, t.indexOf('.')))])];
}

export async function pgCreateSchemas(conn: PgConnection, database: string, schemas: readonly string[]): Promise<void> {
  await runTool(psqlRun(conn, database), `creating schemas in ${database}`, schemas.map((s) => `create schema if not exists ${pgIdent(s)};`).join('\n'));
}

export function pgRestoreSink(conn: PgConnection, database: string, options: PgRestoreOptions): Sink {
  const args = ['--no-password', '--exit-on-error', '--single-transaction', `--dbname=${pgDbname(database)}`];
  if (options.clean) args.push('--clean', '--if-exists');
  if (options.noOwner) args.push('--no-owner', '--no-privileges');
  args.push(...pgSelectionArgs(options.tables, options.schemas));
  const run = pgCommand(conn, 'pg_restore', args);
  return toolSink({ ...run, env: conn.env }, `pg_restore into ${database}`, { drain: true });
}

export function pgListSink(): Sink & { stdout(): string } {
  return toolSink({ command: 'pg_restore', args: ['--list'] }, 'pg_restore --list', { keepStdout: true, drain: true });
}

// --- MySQL / MariaDB ---------------------------------------------------------------------------

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

export function mysqlRestoreSink(conn: MysqlConnection, database: string): Sink {
  // The dump names its database (DROP/CREATE DATABASE, USE, code) and MysqlDumpRenamer points it at the target.
  const run = mysqlCommand(conn, 'mysql', ['--default-character-set=utf8mb4', '--binary-mode']);
  return toolSink(run, `mysql into ${database}`);
}

// --- files -------------------------------------------------------------------------------------

export function tarExtractSink(directory: string): Sink {
  const args = ['--extract', '--file=-', `--directory=${directory}`, '--preserve-permissions', '--numeric-owner'];
  return toolSink({ command: 'tar', args }, `tar into ${directory}`, { drain: true });
}
