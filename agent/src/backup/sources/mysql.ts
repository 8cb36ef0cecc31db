import { randomBytes } from 'node:crypto';
import { chown, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { MysqlSourceConfig } from '../../../../format/agent-config';
import { mysqlInventory } from '../../inventory/mysql';
import { asUser } from '../../db/as-user';
import { mysqldumpArgs } from '../../db/mysql';
import { parseSizes, runCapture, toolVersion, type DumpStep, type PreparedSource } from './source';

/**
 * MySQL/MariaDB: one mysqldump per database, consistent without locking InnoDB tables
 * (--single-transaction), with routines, triggers and events, blobs as hex so the SQL survives any
 * transport. Connection settings and the password go into a 0600 option file that only the dump's
 * user can read, removed when the source is done; argv carries only its path.
 */
const SYSTEM_DATABASES = new Set(['information_schema', 'performance_schema', 'sys', 'mysql']);

export function diagnoseMysql(stderr: string): { message: string; hint: string } | undefined {
  const line = (stderr.split('\n').map((l) => l.replace(/^(mysqldump|mariadb-dump|mysql|mariadb): /, '').trim()).find(Boolean) ?? '').slice(0, 300);
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
    const dumpVersion = toolVersion(await runCapture(bin('mysqldump'), ['--version'], {}, `source ${source.name}: mysqldump --version`));
    const steps: DumpStep[] = databases.map((database) => {
      const run = asUser(source.runAs, bin('mysqldump'), mysqldumpArgs([defaults], database));
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
