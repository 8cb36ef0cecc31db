import type { Inventory } from '../../../format/manifest';
import { runMysql, sqlIdent, sqlString, type MysqlConnection } from '../db/mysql';
import { fingerprintLines } from './fingerprint';

/**
 * MySQL/MariaDB inventory: row count per table (in one consistent-snapshot transaction of its own,
 * so "approximate" relative to mysqldump's snapshot) and a fingerprint of tables, views and
 * columns. Table names are recorded without the database name (schema ""), so a copy restored
 * under another name compares equal.
 */
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
