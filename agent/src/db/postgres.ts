import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runTool, type ToolRun } from '../pipeline/sink';
import { asUser } from './as-user';

/** How to reach a PostgreSQL server with its client tools (psql, pg_dump, pg_restore). */
export interface PgConnection {
  /** libpq environment: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, … */
  readonly env: Readonly<Record<string, string>>;
  readonly runAs?: string;
  readonly binDir?: string;
}

export function pgCommand(conn: PgConnection, tool: string, args: readonly string[]): { command: string; args: string[] } {
  return asUser(conn.runAs, conn.binDir ? join(conn.binDir, tool) : tool, args);
}

/**
 * A psql process used as a session: statements go to its stdin, each followed by an \echo of a
 * marker, and its stdout is read up to the marker. Nothing is on argv but connection-free flags.
 */
export class PsqlSession {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private stderr = '';
  private closed = false;
  readonly exited: Promise<number | null>;

  constructor(conn: PgConnection) {
    const { command, args } = pgCommand(conn, 'psql', ['-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0']);
    this.child = spawn(command, args, { env: { ...process.env, ...conn.env, PGAPPNAME: 'coldseal-inventory' }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin!.on('error', () => undefined);
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8192);
      this.waiter?.();
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      this.waiter?.();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.stderr += `\n${error.message}`;
        this.closed = true;
        this.waiter?.();
        resolve(null);
      });
      this.child.once('close', (code) => {
        this.closed = true;
        this.waiter?.();
        resolve(code);
      });
    });
  }

  /** Runs one statement; resolves with its output lines, rejects with psql's error text. */
  async query(sql: string): Promise<string[]> {
    const marker = `__coldseal_${randomBytes(6).toString('hex')}__`;
    const errorsBefore = this.stderr.length;
    this.lines.length = 0;
    this.child.stdin!.write(`${sql.trim().replace(/;\s*$/, '')};\n\\echo ${marker}\n`);
    for (;;) {
      const at = this.lines.indexOf(marker);
      if (at >= 0) {
        const out = this.lines.splice(0, at + 1).slice(0, at);
        const errors = this.stderr.slice(errorsBefore);
        if (/\b(ERROR|FATAL):/.test(errors)) throw new Error(errors.trim().split('\n')[0].replace(/^.*?(ERROR|FATAL):\s*/, ''));
        return out;
      }
      if (this.closed) throw new Error(`psql ended: ${this.stderr.trim().split('\n').slice(-2).join(' / ') || 'no message'}`);
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  async close(): Promise<void> {
    if (!this.closed) this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.closed) this.child.kill('SIGTERM');
  }
}

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

export async function pgCreateSchemas(conn: PgConnection, database: string, schemas: readonly string[]): Promise<void> {
  await runTool(psqlRun(conn, database), `creating schemas in ${database}`, schemas.map((s) => `create schema if not exists ${pgIdent(s)};`).join('\n'));
}
