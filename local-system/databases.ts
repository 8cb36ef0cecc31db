import { createHash, randomBytes } from 'node:crypto';
import { Client } from 'pg';
import mysql from 'mysql2/promise';
import type { AgentConfigInput } from '../format/agent-config';

/**
 * Real databases with content that breaks naive backups (several schemas, binary, JSON, arrays,
 * 4-byte unicode, large objects, sequences, views, functions, triggers), and a content fingerprint
 * per table so a restored copy can be compared with the original, table by table. Used by the
 * tests and by `npm run demo` (its sample database).
 */
export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const;
export const MYSQL = { host: '127.0.0.1', port: 3306, user: 'root' } as const;

type SourceInput = AgentConfigInput['sources'][number];
type PostgresSourceInput = Extract<SourceInput, { type: 'postgres' }>;
type MysqlSourceInput = Extract<SourceInput, { type: 'mysql' }>;

/** An agent configuration source for databases of the local PostgreSQL server. */
export function pgSource(name: string, databases: PostgresSourceInput['databases'], extra: Partial<PostgresSourceInput> = {}): PostgresSourceInput {
  return { name, type: 'postgres', databases, host: PG.host, port: PG.port, user: PG.user, ...extra };
}

/** An agent configuration source for databases of the local MariaDB server. */
export function mysqlSource(name: string, databases: MysqlSourceInput['databases'], extra: Partial<MysqlSourceInput> = {}): MysqlSourceInput {
  return { name, type: 'mysql', databases, host: MYSQL.host, port: MYSQL.port, user: MYSQL.user, ...extra };
}

/** A restore target (--target) on the local servers. */
export const pgUrl = (database: string) => `postgres://${PG.user}@${PG.host}:${PG.port}/${database}`;
export const mysqlUrl = (database: string) => `mysql://${MYSQL.user}@${MYSQL.host}:${MYSQL.port}/${database}`;

export function uniqueDbName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

async function pgAdmin<T>(work: (client: Client) => Promise<T>, database = 'postgres'): Promise<T> {
  const client = new Client({ ...PG, database });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function dropPgDatabase(name: string): Promise<void> {
  await pgAdmin((c) => c.query(`drop database if exists "${name}" with (force)`));
}

export async function createPgDatabase(name: string): Promise<void> {
  await pgAdmin((c) => c.query(`create database "${name}"`));
}

/**
 * @param rows rows of the bulk table (about 100 bytes each plus 1 KiB of bytea every 10th row):
 *   30,000 rows make a few MB.
 */
export async function createPgFixture(name: string, rows = 30_000): Promise<void> {
  await createPgDatabase(name);
  await pgAdmin(async (c) => {
    await c.query(`
      create schema sales;
      create schema "odd schema";
      create table sales.customers (id serial primary key, name text not null, email text unique, profile jsonb, tags text[], created timestamptz default '2026-01-02 03:04:05+00');
      create table sales.orders (id bigserial primary key, customer_id int references sales.customers(id), amount numeric(12,2), note text, payload bytea);
      create table "odd schema"."Mixed Case Table" ("Key" text primary key, "välue" text, emoji text);
      create table public.bulk (id int primary key, label text, blob bytea, doc jsonb);
      create sequence public.invoice_seq start 1000;
      select setval('public.invoice_seq', 4242);
      create view sales.big_orders as select * from sales.orders where amount > 100;
      create function sales.total(cid int) returns numeric language sql stable as $$ select coalesce(sum(amount),0) from sales.orders where customer_id = cid $$;
      create table sales.audit (id serial primary key, what text);
      create function sales.log_order() returns trigger language plpgsql as $$ begin insert into sales.audit(what) values ('order ' || new.id); return new; end $$;
      create trigger order_audit after insert on sales.orders for each row execute function sales.log_order();
    `);
    await c.query(`
      insert into sales.customers (name, email, profile, tags)
      select 'Customer ' || g, 'c' || g || '@example.com',
             jsonb_build_object('tier', g % 3, 'nested', jsonb_build_object('ok', g % 2 = 0), 'unicode', 'Zoë ✓ 𝄞'),
             array['t' || (g % 5), 'all']
      from generate_series(1, 500) g;
      insert into sales.orders (customer_id, amount, note, payload)
      select 1 + (g % 500), (g * 7 % 1000)::numeric / 3, case when g % 11 = 0 then null else 'note ' || g || ' — naïve café' end,
             decode(md5(g::text) || md5((g+1)::text), 'hex')
      from generate_series(1, 3000) g;
      insert into "odd schema"."Mixed Case Table" values ('a', 'Grüße', '😀🎉'), ('b', E'line\\nbreak\\ttab', '𝄞'), ('c', '', null);
      insert into public.bulk (id, label, blob, doc)
      select g, repeat(md5(g::text), 2), case when g % 10 = 0 then decode(repeat(md5(g::text), 32), 'hex') else null end,
             jsonb_build_object('g', g, 'arr', jsonb_build_array(g, g * 2))
      from generate_series(1, $1::int) g;
    `.replace('$1::int', String(rows)));
    await c.query(`select lo_from_bytea(0, decode(repeat('00ff', 50000), 'hex'))`);
  }, name);
}

/** Table name → SHA-256 of its rows in a stable order, plus sequences and large objects. */
export async function pgContentFingerprint(database: string): Promise<Record<string, string>> {
  return pgAdmin(async (c) => {
    const tables = await c.query<{ s: string; t: string }>(
      `select table_schema s, table_name t from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') order by 1, 2`,
    );
    const result: Record<string, string> = {};
    for (const { s, t } of tables.rows) {
      const q = `"${s.replace(/"/g, '""')}"."${t.replace(/"/g, '""')}"`;
      const rows = await c.query<{ r: string }>(`select md5(string_agg(x::text, '|' order by x::text)) r from ${q} x`);
      result[`${s}.${t}`] = rows.rows[0].r ?? 'empty';
    }
    const seqs = await c.query<{ s: string; v: string }>(`select schemaname || '.' || sequencename s, last_value::text v from pg_sequences order by 1`);
    for (const { s, v } of seqs.rows) result[`sequence ${s}`] = v;
    const los = await c.query<{ h: string }>(`select md5(string_agg(md5(lo_get(oid)), ',' order by md5(lo_get(oid)))) h from pg_largeobject_metadata`);
    result['large objects'] = los.rows[0].h ?? 'none';
    const routines = await c.query<{ r: string }>(`select string_agg(f, ',' order by f) r from (select n.nspname || '.' || p.proname f from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname not in ('pg_catalog', 'information_schema')) x`);
    result.functions = routines.rows[0].r ?? '';
    const views = await c.query<{ r: string }>(`select string_agg(v, ',' order by v) r from (select schemaname || '.' || viewname v from pg_views where schemaname not in ('pg_catalog', 'information_schema')) x`);
    result.views = views.rows[0].r ?? '';
    return result;
  }, database);
}

export async function pgQuery<T extends Record<string, unknown>>(database: string, sql: string): Promise<T[]> {
  return pgAdmin(async (c) => (await c.query<T>(sql)).rows, database);
}

async function mysqlAdmin<T>(work: (conn: mysql.Connection) => Promise<T>, database?: string): Promise<T> {
  const conn = await mysql.createConnection({ ...MYSQL, database, multipleStatements: true, charset: 'utf8mb4' });
  try {
    return await work(conn);
  } finally {
    await conn.end();
  }
}

/** The rows of a query (several statements allowed), in one connection of its own. */
export async function mysqlQuery<T = mysql.RowDataPacket>(sql: string, database?: string): Promise<T[]> {
  return mysqlAdmin(async (c) => (await c.query(sql))[0] as T[], database);
}

export async function dropMysqlDatabase(name: string): Promise<void> {
  await mysqlAdmin((c) => c.query(`drop database if exists \`${name}\``));
}

export async function createMysqlFixture(name: string, rows = 20_000): Promise<void> {
  await mysqlAdmin((c) => c.query(`create database \`${name}\` character set utf8mb4 collate utf8mb4_unicode_ci`));
  await mysqlAdmin(async (c) => {
    await c.query(`
      create table customers (id int auto_increment primary key, name varchar(200) not null, bio text, avatar blob, doc json) engine=InnoDB;
      create table orders (id bigint auto_increment primary key, customer_id int, amount decimal(12,2), note varchar(500), foreign key (customer_id) references customers(id)) engine=InnoDB;
      create table audit (id int auto_increment primary key, what varchar(200));
      create table bulk (id int primary key, label varchar(100), payload longblob);
      create trigger order_audit after insert on orders for each row insert into audit(what) values (concat('order ', new.id));
      create procedure customer_total(in cid int, out total decimal(12,2)) begin select coalesce(sum(amount), 0) into total from orders where customer_id = cid; end;
      create function double_it(x int) returns int deterministic return x * 2;
      create view big_orders as select * from orders where amount > 100;
    `);
    const values: string[] = [];
    for (let i = 1; i <= 300; i++) values.push(`('Zoë ${i} 😀', 'bio ✓ 𝄞 line\\nbreak', unhex(md5('${i}')), json_object('i', ${i}, 'arr', json_array(${i}, 'x')))`);
    await c.query(`insert into customers (name, bio, avatar, doc) values ${values.join(',')}`);
    await c.query(`insert into orders (customer_id, amount, note) select 1 + (seq % 300), (seq * 7 % 1000) / 3, concat('note ', seq, ' — naïve') from seq_1_to_2000`);
    await c.query(`insert into bulk (id, label, payload) select seq, md5(seq), if(seq % 10 = 0, unhex(repeat(md5(seq), 32)), null) from seq_1_to_${rows}`);
  }, name);
}

export async function mysqlContentFingerprint(database: string): Promise<Record<string, string>> {
  return mysqlAdmin(async (c) => {
    const [tables] = await c.query<mysql.RowDataPacket[]>(`select table_name t from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE' order by 1`, [database]);
    const result: Record<string, string> = {};
    for (const { t } of tables) {
      const [rows] = await c.query<mysql.RowDataPacket[]>(`select * from \`${t}\` order by 1`);
      result[t] = createHash('sha256').update(JSON.stringify(rows, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : v))).digest('hex');
    }
    const [routines] = await c.query<mysql.RowDataPacket[]>(`select group_concat(routine_name order by routine_name) r from information_schema.routines where routine_schema = ?`, [database]);
    result.routines = routines[0].r ?? '';
    const [triggers] = await c.query<mysql.RowDataPacket[]>(`select group_concat(trigger_name order by trigger_name) r from information_schema.triggers where trigger_schema = ?`, [database]);
    result.triggers = triggers[0].r ?? '';
    return result;
  }, database);
}
