import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { keepTail, lastLines } from '../process-output';
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
