import { randomBytes } from 'node:crypto';
import { ColdsealError, EXIT } from '../errors';
import { mysqlCommand, runMysql, sqlIdent, sqlString, type MysqlConnection } from '../db/mysql';
import { runTool } from '../pipeline/sink';
import { renameInDump } from './mysql-rename';

/**
 * MySQL/MariaDB restores go into a staging database and replace the target only after every check
 * passed (MySQL DDL is not transactional, so a dump that fails halfway cannot be rolled back).
 * MySQL has no RENAME DATABASE; the swap moves the tables with one RENAME TABLE statement, which
 * is atomic (the old target's tables move out to a holding database in the same statement).
 * Triggers and views cannot change database (ER_TRG_IN_WRONG_SCHEMA, "Changing schema … is not
 * allowed") and routines and events belong to their database: they are read from the checked
 * staging copy with mysqldump (which writes them without the database name), dropped there, and
 * created again in the target after the tables moved. Every step before the target is complete
 * has its inverse, so a failure during the swap puts the old target back as it was.
 */

/** MySQL's identifier limit is 64 characters. */
function derivedName(target: string, role: 'staging' | 'previous'): string {
  const suffix = `__coldseal_${role}_${randomBytes(4).toString('hex')}`;
  return Array.from(target).slice(0, 64 - suffix.length).join('') + suffix;
}

export async function mysqlFreshName(conn: MysqlConnection, target: string, role: 'staging' | 'previous'): Promise<string> {
  for (;;) {
    const name = derivedName(target, role);
    const taken = await runMysql(conn, `select 1 from information_schema.schemata where schema_name = ${sqlString(name)};`, 'choosing a staging database name');
    if (!taken.length) return name;
  }
}

interface Objects {
  tables: string[];
  views: string[];
  triggers: string[];
  routines: Array<{ name: string; type: string }>;
  events: string[];
}

async function objectsOf(conn: MysqlConnection, database: string): Promise<Objects> {
  const db = sqlString(database);
  const lines = await runMysql(
    conn,
    `select json_array(if(table_type = 'VIEW', 'view', 'table'), table_name, '') from information_schema.tables where table_schema = ${db}
     union all select json_array('trigger', trigger_name, '') from information_schema.triggers where trigger_schema = ${db}
     union all select json_array('routine', routine_name, routine_type) from information_schema.routines where routine_schema = ${db}
     union all select json_array('event', event_name, '') from information_schema.events where event_schema = ${db};`,
    `listing the objects of ${database}`,
  );
  const objects: Objects = { tables: [], views: [], triggers: [], routines: [], events: [] };
  for (const line of lines) {
    const [kind, name, type] = JSON.parse(line) as [string, string, string];
    if (kind === 'table') objects.tables.push(name);
    else if (kind === 'view') objects.views.push(name);
    else if (kind === 'trigger') objects.triggers.push(name);
    else if (kind === 'routine') objects.routines.push({ name, type });
    else objects.events.push(name);
  }
  return objects;
}

/**
 * Views, triggers, routines and events as SQL that creates them in whatever database is current,
 * in mysqldump's own order: routines before the views (CREATE VIEW checks that the functions it
 * calls exist; triggers, routines and events are resolved when they run).
 */
async function definitionsOf(conn: MysqlConnection, database: string, objects: Objects): Promise<string> {
  const common = ['--skip-comments', '--default-character-set=utf8mb4', '--single-transaction'];
  const run = (args: string[]) => runTool({ ...mysqlCommand(conn, 'mysqldump', [...common, ...args]), env: {} }, `reading the views, triggers and routines of ${database}`);
  const rest = await run(['--no-data', '--no-create-info', '--triggers', '--routines', '--events', '--', database]);
  // mysqldump creates views through stand-ins first, so views on views come back in any order.
  const views = objects.views.length ? await run(['--no-data', '--skip-triggers', '--', database, ...objects.views]) : '';
  return `${rest}\n${views}`;
}

function dropStatements(database: string, objects: Objects, which: { triggers?: boolean; rest?: boolean }): string[] {
  const db = sqlIdent(database);
  const out: string[] = [];
  if (which.triggers) out.push(...objects.triggers.map((t) => `drop trigger if exists ${db}.${sqlIdent(t)};`));
  if (which.rest) {
    out.push(...objects.views.map((v) => `drop view if exists ${db}.${sqlIdent(v)};`));
    out.push(...objects.routines.map((r) => `drop ${r.type === 'FUNCTION' ? 'function' : 'procedure'} if exists ${db}.${sqlIdent(r.name)};`));
    out.push(...objects.events.map((e) => `drop event if exists ${db}.${sqlIdent(e)};`));
  }
  return out;
}

async function sql(conn: MysqlConnection, statements: readonly string[], what: string): Promise<void> {
  if (!statements.length) return;
  await runMysql(conn, statements.join('\n'), what).catch((error: Error) => {
    throw new ColdsealError(EXIT.FAILURE, error.message);
  });
}

/**
 * A swap that failed. `putBack`: every step was undone, so the target is as it was (or, if it
 * was new, absent); otherwise the hint says what could not be undone.
 */
export class MysqlSwapFailed extends ColdsealError {
  constructor(
    cause: unknown,
    readonly putBack: boolean,
    hint?: string,
  ) {
    super(cause instanceof ColdsealError ? cause.exitCode : EXIT.FAILURE, cause instanceof Error ? cause.message : String(cause), hint ?? (cause instanceof ColdsealError ? cause.hint : undefined), { cause });
  }
}

/** Runs a definitions script with `database` as the current database (never on argv). */
async function createIn(conn: MysqlConnection, database: string, definitions: string, what: string): Promise<void> {
  const run = mysqlCommand(conn, 'mysql', ['--default-character-set=utf8mb4', '--binary-mode']);
  await runTool({ ...run, env: {} }, what, Buffer.from(`USE ${sqlIdent(database)};\n${definitions}`, 'utf8'));
}

function renameAll(moves: ReadonlyArray<readonly [string, string, string]>): string[] {
  if (!moves.length) return [];
  return [`rename table ${moves.map(([from, to, t]) => `${sqlIdent(from)}.${sqlIdent(t)} to ${sqlIdent(to)}.${sqlIdent(t)}`).join(', ')};`];
}

/**
 * Replaces `target` by the checked `staging` database (which is consumed). A new target gets the
 * staging database's character set and collation; an existing one keeps its own, and its
 * database-level grants (the name does not change). Objects of the old target that the backup
 * does not have are gone afterwards, as with the dump's own DROP DATABASE (the safety dump has them).
 */
export async function mysqlReplaceWithStaging(conn: MysqlConnection, staging: string, target: string, exists: boolean): Promise<void> {
  const fresh = await objectsOf(conn, staging);
  // Code that names its own database (`staging`.`with_tax`) is to name the target.
  const freshDefinitions = renameInDump(await definitionsOf(conn, staging, fresh), staging, target);
  const old = exists ? await objectsOf(conn, target) : undefined;
  const oldDefinitions = old ? await definitionsOf(conn, target, old) : '';
  const previous = exists ? await mysqlFreshName(conn, target, 'previous') : undefined;

  const undo: Array<() => Promise<void>> = [];
  try {
    await sql(conn, dropStatements(staging, fresh, { triggers: true }), `preparing ${staging} to move`);
    if (old && previous) {
      undo.push(() => createIn(conn, target, oldDefinitions, `putting back the views, triggers and routines of ${target}`));
      await sql(conn, dropStatements(target, old, { triggers: true, rest: true }), `moving the old ${target} aside`);
      undo.push(() => sql(conn, [`drop database if exists ${sqlIdent(previous)};`], `removing ${previous}`));
      await sql(conn, [`create database ${sqlIdent(previous)};`], `creating ${previous}`);
    } else {
      const [charset] = await runMysql(conn, `select concat(default_character_set_name, ' ', default_collation_name) from information_schema.schemata where schema_name = ${sqlString(staging)};`, `reading ${staging}`);
      const [set, collate] = (charset ?? 'utf8mb4 utf8mb4_general_ci').split(' ');
      undo.push(() => sql(conn, [`drop database if exists ${sqlIdent(target)};`], `removing ${target}`));
      await sql(conn, [`create database ${sqlIdent(target)} character set ${set} collate ${collate};`], `creating ${target}`);
    }
    // One statement: either every table is in its new place, or none moved.
    const moves = [...(old && previous ? old.tables.map((t) => [target, previous, t] as const) : []), ...fresh.tables.map((t) => [staging, target, t] as const)];
    await sql(conn, renameAll(moves), `moving the restored tables into ${target}`);
    undo.push(async () => {
      const now = await objectsOf(conn, target);
      await sql(conn, dropStatements(target, now, { triggers: true, rest: true }), `removing what was restored into ${target}`);
      await sql(conn, renameAll(moves.map(([from, to, t]) => [to, from, t] as const)), `moving the old tables of ${target} back`);
    });
    await createIn(conn, target, freshDefinitions, `creating the views, triggers and routines in ${target}`);
  } catch (error) {
    const notUndone: string[] = [];
    for (const step of undo.reverse()) await step().catch((undoError: Error) => notUndone.push(undoError.message));
    if (!notUndone.length) throw new MysqlSwapFailed(error, true);
    throw new MysqlSwapFailed(
      error,
      false,
      `Putting ${target} back failed too (${notUndone.join('; ')}): ${exists ? `${target} may be partly replaced and the old tables may be in ${previous}; the safety dump has its previous content` : `${target} may be left partly created: drop it`}`,
    );
  }
  if (previous) {
    await sql(conn, [`drop database if exists ${sqlIdent(previous)};`], `removing the old tables of ${target}`).catch((error: unknown) => {
      throw new MysqlSwapFailed(error, false, `${target} is restored, but its old tables are left in ${previous}: drop that database by hand (the safety dump has them)`);
    });
  }
}
