import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Inventory } from '../../../format/manifest';
import { keepTail, lastLines } from '../process-output';
import { asUser } from '../sources/source';
import { fingerprintLines } from './fingerprint';

/**
 * MySQL/MariaDB inventory: row count per table (in one consistent-snapshot transaction of its own,
 * so "approximate" relative to mysqldump's snapshot) and a fingerprint of tables, views and
 * columns. Table names are recorded without the database name (schema ""), so a copy restored
 * under another name compares equal.
 */
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

export async function mysqlInventory(conn: MysqlConnection, database: string, consistency: Inventory['consistency']): Promise<Inventory> {
  const db = sqlString(database);
  const tableLines = await runMysql(conn, `select json_quote(table_name) from information_schema.tables where table_schema = ${db} and table_type = 'BASE TABLE' order by table_name;`, `listing the tables of ${database}`);
  const tables = tableLines.map((l) => JSON.parse(l) as string);
  let countLines: string[] = [];
  if (tables.length) {
    const selects = tables.map((t) => `select json_array(${sqlString(t)}, (select count(*) from ${sqlIdent(database)}.${sqlIdent(t)}))`).join('\nunion all\n');
    countLines = await runMysql(conn, `start transaction with consistent snapshot;\n${selects};\ncommit;`, `counting the rows of ${database}`);
  }
  const schemaLines = await runMysql(
    conn,
    `select json_array('table', table_name, table_type) from information_schema.tables where table_schema = ${db}
     union all
     select json_array('column', table_name, column_name, ordinal_position, column_type, is_nullable) from information_schema.columns where table_schema = ${db};`,
    `reading the schema of ${database}`,
  );
  return {
    consistency,
    tables: countLines.map((line) => {
      const [name, rows] = JSON.parse(line) as [string, number];
      return { schema: '', name, rows: Number(rows) };
    }),
    schemaFingerprint: fingerprintLines(schemaLines.map((line) => JSON.stringify(JSON.parse(line)))),
  };
}
