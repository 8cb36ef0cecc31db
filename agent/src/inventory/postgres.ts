import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Inventory } from '../../../format/manifest';
import { asUser } from '../sources/source';
import { fingerprintLines } from './fingerprint';

/**
 * PostgreSQL inventory: exact row count per table and a fingerprint of the schema, taken through
 * psql (so it works with runAs/peer authentication and binDir exactly like pg_dump does). At backup
 * time it runs inside the transaction whose snapshot pg_dump imports (--snapshot), so the counts
 * describe exactly the rows in the dump; at verify time it runs against the scratch copy.
 */
export interface PgConnection {
  /** libpq environment: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, … */
  readonly env: Readonly<Record<string, string>>;
  readonly runAs?: string;
  readonly binDir?: string;
}

export function pgCommand(conn: PgConnection, tool: string, args: readonly string[]): { command: string; args: string[] } {
  return asUser(conn.runAs, conn.binDir ? join(conn.binDir, tool) : tool, args);
}

/** User schemas: not pg_* (catalog, toast, temp), not information_schema, not owned by an extension. */
const USER_NAMESPACE = `n.nspname !~ '^pg_' and n.nspname <> 'information_schema'`;
const NOT_EXTENSION_MEMBER = (classid: string, objid: string) =>
  `not exists (select 1 from pg_depend d where d.classid = '${classid}'::regclass and d.objid = ${objid} and d.deptype = 'e')`;

/** One JSON line per ordinary table (what pg_dump dumps data of): [schema, table, rows]. */
export const PG_COUNTS_SQL = `
select json_build_array(n.nspname, c.relname,
  (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint)::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and c.relpersistence <> 't' and ${USER_NAMESPACE} and ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')}
order by n.nspname, c.relname`;

/**
 * One JSON line per schema and per column of tables, views and materialized views. Columns are
 * numbered by their order among live columns (attnum has gaps after DROP COLUMN; a restore has none).
 */
export const PG_SCHEMA_SQL = `
select json_build_array('schema', n.nspname)::text
from pg_namespace n where ${USER_NAMESPACE} and ${NOT_EXTENSION_MEMBER('pg_namespace', 'n.oid')}
union all
select line from (
  select json_build_array('column', n.nspname, c.relname, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
         row_number() over (partition by c.oid order by a.attnum))::text as line
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  where c.relkind in ('r', 'p', 'v', 'm', 'f') and c.relpersistence <> 't' and ${USER_NAMESPACE} and ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')}
) columns`;

/**
 * pg_dump --exclude-table patterns (psql rules: unquoted is folded to lower case, * and ? are
 * wildcards, "…" is literal, an unqualified name means a table visible in the search path, taken
 * here as "public"): the inventory leaves out what the dump leaves out.
 */
export function pgPatternMatcher(patterns: readonly string[]): (schema: string, table: string) => boolean {
  const compiled = patterns.map((pattern) => {
    const parts: string[] = [''];
    let quoted = false;
    for (let i = 0; i < pattern.length; i++) {
      const ch = pattern[i];
      if (ch === '"') {
        if (quoted && pattern[i + 1] === '"') {
          parts[parts.length - 1] += '\\"';
          i++;
        } else quoted = !quoted;
      } else if (!quoted && ch === '.') parts.push('');
      else if (!quoted && ch === '*') parts[parts.length - 1] += '.*';
      else if (!quoted && ch === '?') parts[parts.length - 1] += '.';
      else parts[parts.length - 1] += (quoted ? ch : ch.toLowerCase()).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
    const table = new RegExp(`^${parts[parts.length - 1]}$`);
    const schema = parts.length > 1 ? new RegExp(`^${parts[parts.length - 2]}$`) : /^public$/;
    return { schema, table };
  });
  return (schema, table) => compiled.some((p) => p.schema.test(schema) && p.table.test(table));
}

export function inventoryFromLines(countLines: readonly string[], schemaLines: readonly string[], consistency: Inventory['consistency'], excluded: (schema: string, table: string) => boolean = () => false): Inventory {
  const tables = countLines.map((line) => {
    const [schema, name, rows] = JSON.parse(line) as [string, string, number];
    return { schema, name, rows: Number(rows) };
  });
  const kept = schemaLines.filter((line) => {
    const value = JSON.parse(line) as unknown[];
    return !(value[0] === 'column' && excluded(String(value[1]), String(value[2])));
  });
  return {
    consistency,
    tables: tables.filter((t) => !excluded(t.schema, t.name)),
    schemaFingerprint: fingerprintLines(kept.map((line) => JSON.stringify(JSON.parse(line)))),
  };
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

/** Inventory of a database as it is now (a scratch copy: nothing writes to it concurrently). */
export async function pgInventoryNow(conn: PgConnection): Promise<Inventory> {
  const session = new PsqlSession(conn);
  try {
    await session.query('begin isolation level repeatable read read only');
    const counts = await session.query(PG_COUNTS_SQL);
    const schema = await session.query(PG_SCHEMA_SQL);
    return inventoryFromLines(counts, schema, 'snapshot');
  } finally {
    await session.close();
  }
}

export interface SnapshotInventory {
  /** The exported snapshot for pg_dump --snapshot. */
  readonly snapshot: string;
  readonly inventory: Promise<Inventory>;
  /** Ends the exporting transaction; call after pg_dump has exited. */
  close(): Promise<void>;
}

/**
 * Opens a REPEATABLE READ transaction, exports its snapshot and counts in it, while pg_dump (given
 * --snapshot) dumps the very same snapshot. The transaction stays open until close(), which the
 * backup calls when pg_dump has exited: an exported snapshot is only importable while it is open.
 */
export async function openPgSnapshotInventory(conn: PgConnection, excludeTables: readonly string[]): Promise<SnapshotInventory> {
  const session = new PsqlSession(conn);
  try {
    await session.query('begin isolation level repeatable read read only');
    const [snapshot] = await session.query('select pg_export_snapshot()');
    if (!snapshot || !/^[0-9A-Fa-f-]+$/.test(snapshot)) throw new Error(`unexpected snapshot id "${snapshot}"`);
    const excluded = pgPatternMatcher(excludeTables);
    const inventory = (async () => {
      // A failing count must not abort the transaction whose snapshot pg_dump imports.
      await session.query('savepoint coldseal_inventory');
      try {
        const counts = await session.query(PG_COUNTS_SQL);
        const schema = await session.query(PG_SCHEMA_SQL);
        return inventoryFromLines(counts, schema, 'snapshot', excluded);
      } catch (error) {
        await session.query('rollback to savepoint coldseal_inventory').catch(() => undefined);
        throw error;
      }
    })();
    inventory.catch(() => undefined);
    return {
      snapshot,
      inventory,
      close: async () => {
        await inventory.catch(() => undefined);
        await session.close();
      },
    };
  } catch (error) {
    session.kill();
    throw error;
  }
}
