import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ColdsealError, EXIT } from '../errors';
import { pgCommand, pgDbname, psqlRun, type PgConnection } from '../db/postgres';
import { runTool } from '../pipeline/sink';

/**
 * pg_dumpall --globals-only (roles, memberships, tablespaces) restored in one transaction. The
 * script is small, so it is held in a 0600 file in a 0700 directory (it holds password hashes)
 * until the whole object, the integrity code, decompression and the dump's completion trailer are
 * checked; then psql runs it with --single-transaction and ON_ERROR_STOP: any error rolls every
 * role change back. `CREATE ROLE` of a role that exists already is left out (it would fail the
 * transaction); the `ALTER ROLE` after it gives the role the backup's attributes and password.
 * Tablespaces cannot be created inside a transaction, so a script that creates one is refused.
 */
export interface StagedGlobals {
  readonly file: string;
  remove(): Promise<void>;
}

export async function stageGlobals(): Promise<StagedGlobals> {
  const dir = await mkdtemp(join(tmpdir(), 'coldseal-globals-'));
  return { file: join(dir, 'globals.sql'), remove: () => rm(dir, { recursive: true, force: true }) };
}

/** "name" or name as pg_dumpall writes it, to the role's name. */
function roleName(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident;
}

export async function pgApplyGlobals(conn: PgConnection, database: string, file: string): Promise<void> {
  // latin1 keeps the script's bytes as they are, whatever its encoding.
  const script = await readFile(file, 'latin1');
  const tablespaces = [...script.matchAll(/^CREATE TABLESPACE ("(?:[^"]|"")+"|\S+)/gm)].map((m) => roleName(m[1]));
  if (tablespaces.length) {
    throw new ColdsealError(
      EXIT.USAGE,
      `the globals create tablespaces (${tablespaces.join(', ')}), which PostgreSQL cannot do inside a transaction, so they cannot be applied all-or-nothing`,
      'Nothing was changed. Restore them with --output FILE, create the tablespace directories and run the file with psql',
    );
  }
  const existing = new Set((await runTool(psqlRun(conn, database), 'listing the roles of the server', 'select rolname from pg_roles;')).split('\n').filter(Boolean));
  const kept = script.split('\n').filter((line) => {
    const create = /^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);$/.exec(line);
    return !(create && existing.has(Buffer.from(roleName(create[1]), 'latin1').toString('utf8')));
  });
  const applied = `${file}.apply`;
  await writeFile(applied, kept.join('\n'), { mode: 0o600, flag: 'wx', encoding: 'latin1' });
  // -f takes our own temporary path (never a user's name); --single-transaction needs -f.
  const run = pgCommand(conn, 'psql', ['-X', '-w', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-d', pgDbname(database), '-f', applied]);
  await runTool({ ...run, env: conn.env }, `applying the roles to the server of ${database} (one transaction: nothing was changed)`);
}
