import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { dropMysqlDatabase, mysqlContentFingerprint, mysqlSource, mysqlUrl, uniqueDbName, mysqlQuery as q } from '../../local-system/databases';

/**
 * A MariaDB database whose code uses its own objects: a view over a stored function, a trigger
 * and an event that call a procedure, bodies that name the database itself (`shop`.`with_tax`,
 * shop.note_it), as users write them and as the server prints them (a view's function call is
 * always qualified). Restored under another name and into its own name (the staged swap), every
 * view, trigger, routine and event must come back as it was, with the database's own name in
 * its code turned into the target's, and nothing else changed: not string literals in the code,
 * not a table alias that happens to carry the database's name, not rows whose text holds the name.
 * A restore that fails midway (a view over a function of another database that the server it is
 * restored to does not have) leaves no target and no staging database, and says so.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
const shop = uniqueDbName('cs_shop');
const shared = uniqueDbName('cs_shared');
const uses = uniqueDbName('cs_uses');
/** The original's definitions, content and what its views show, taken before any restore. */
let original: { definitions: Definitions; print: Record<string, string>; onPriced: unknown[] };

function restore(args: string[]) {
  return sandbox.runCli(['restore', '--config', configFile, '--key', sandbox.recipient.privateFile, '--safety-dir', rt.tempDir('coldseal-myobj-safety-'), '--yes', ...args]);
}

type Definitions = Record<string, string>;

/** SHOW CREATE of every view, trigger, routine and event, as the server prints it with the database current. */
async function definitionsOf(database: string): Promise<Definitions> {
  const out: Definitions = {};
  const names = await q<{ kind: string; name: string }>(
    `select 'VIEW' kind, table_name name from information_schema.views where table_schema = ?
     union all select 'TRIGGER', trigger_name from information_schema.triggers where trigger_schema = ?
     union all select routine_type, routine_name from information_schema.routines where routine_schema = ?
     union all select 'EVENT', event_name from information_schema.events where event_schema = ?`.replace(/\?/g, mysql.escape(database)),
  );
  for (const { kind, name } of names) {
    const [row] = await q<Record<string, string>>(`show create ${kind.toLowerCase()} \`${name}\``, database);
    const text = row[`Create ${kind[0]}${kind.slice(1).toLowerCase()}`] ?? row['SQL Original Statement'];
    assert.ok(text, `SHOW CREATE ${kind} ${name}: ${JSON.stringify(row)}`);
    out[`${kind} ${name}`] = text;
  }
  return out;
}

/**
 * The database's own name where it qualifies an object in code (`name`. or name.), turned into
 * `<db>`., outside single-quoted literals: what a restore under another name must rewrite.
 */
function qualifiersNormalized(text: string, name: string): string {
  return text
    .split(/('(?:[^'\\]|\\.|'')*')/)
    .map((part, i) => (i % 2 ? part : part.split(`\`${name}\`.`).join('`<db>`.').replace(new RegExp(`(?<![\\w$\`.])${name}\\.`, 'g'), '`<db>`.')))
    .join('');
}

/**
 * What the definitions of a copy named `to` must be, qualifiers normalized (`to`.x and to.x are
 * the same SQL): the original's, with its own name in code turned into the copy's.
 */
function expectedFor(definitions: Definitions, from: string, to: string): Definitions {
  return Object.fromEntries(
    Object.entries(definitions).map(([key, text]) => {
      // A table alias named like the database: `shop`.x there is alias.column, left alone; its function call is rewritten.
      const copy = key === 'PROCEDURE by_alias' ? text.replace(`${from}.with_tax(`, `\`${to}\`.with_tax(`) : qualifiersNormalized(text, from).split('`<db>`.').join(`\`${to}\`.`);
      return [key, qualifiersNormalized(copy, to)];
    }),
  );
}

async function normalizedDefinitionsOf(database: string): Promise<Definitions> {
  return Object.fromEntries(Object.entries(await definitionsOf(database)).map(([key, text]) => [key, qualifiersNormalized(text, database)]));
}

/** Rows whose text names the database in every form the rewrite looks for; they must come back unchanged. */
const trickyNotes = (db: string) => [
  `qualified \`${db}\`.\`with_tax\` and ${db}.note_it(1) in data`,
  `USE \`${db}\`;`,
  `CREATE DATABASE \`${db}\`;\nDROP DATABASE \`${db}\`; -- line break inside`,
  `/*!50001 VIEW \`v\` AS select \`${db}\`.\`with_tax\`(1) */;`,
  `${db}.`,
];

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  await q(`create database \`${shop}\` character set utf8mb4 collate utf8mb4_unicode_ci`);
  await q(
    `create table items (id int primary key, price decimal(10,2), note text);
     create table log (id int auto_increment primary key, w text);
     create function with_tax(p decimal(10,2)) returns decimal(10,2) deterministic return p * 1.2;
     create procedure note_it(in w text) insert into log (w) values (w);
     create view priced as select id, ${shop}.with_tax(price) as gross, '${shop}.with_tax' as label from \`${shop}\`.items;
     create view priced_plain as select id, with_tax(price) as gross from items;
     create view on_priced as select * from priced where gross > 10;
     create trigger items_ai after insert on items for each row call ${shop}.note_it(concat('${shop}.with_tax of ', new.id, ': ', \`${shop}\`.with_tax(new.price)));
     create trigger items_au after update on items for each row call note_it('updated');
     create event tidy on schedule every 1 day starts '2030-01-01 00:00:00' disable do call \`${shop}\`.note_it('tidy in ${shop}');
     create procedure by_alias(out n int) select count(*) into n from items ${shop} where ${shop}.id > 0 and ${shop}.with_tax(${shop}.price) > 0;
     create procedure reads_items(out n int) begin select count(*) into n from ${shop}.items; select count(*) + n into n from \`${shop}\`.\`log\`; end;`,
    shop,
  );
  const notes = trickyNotes(shop);
  for (let i = 0; i < notes.length; i++) await q(`insert into items values (${i + 1}, ${10 * (i + 1)}, ${mysql.escape(notes[i])})`, shop);
  assert.equal((await q<{ n: number }>(`select count(*) n from log`, shop))[0].n, notes.length, 'the trigger called the procedure');

  // A database whose view uses a function of another database: restored where that one is gone.
  await q(`create database \`${shared}\`; create function \`${shared}\`.fx(x int) returns int deterministic return x + 1;
    create database \`${uses}\`; create table \`${uses}\`.t (x int); insert into \`${uses}\`.t values (1), (2);
    create view \`${uses}\`.v as select \`${shared}\`.fx(x) y from \`${uses}\`.t;`);

  original = { definitions: await definitionsOf(shop), print: await mysqlContentFingerprint(shop), onPriced: await q(`select id, gross from on_priced order by id`, shop) };
  configFile = await rt.backup(sandbox.config({ sources: [mysqlSource('shop', [shop]), mysqlSource('uses', [uses])] }));
  await dropMysqlDatabase(shared);
});

after(async () => {
  await rt?.cleanup();
  await Promise.all([shop, shared, uses].map(dropMysqlDatabase));
});

/** Staging and holding databases a restore into `target` may create and must remove. */
async function leftovers(target: string): Promise<string[]> {
  const rows = await q<{ d: string }>(`select schema_name d from information_schema.schemata where schema_name like ${mysql.escape(`${target.replace(/_/g, '\\_')}\\_\\_coldseal\\_%`)}`);
  return rows.map((r) => r.d);
}

async function assertSameAsOriginal(target: string): Promise<void> {
  assert.deepEqual(await mysqlContentFingerprint(target), original.print);
  assert.deepEqual(await normalizedDefinitionsOf(target), expectedFor(original.definitions, shop, target));
  assert.deepEqual(
    (await q<{ note: string }>(`select note from items order by id`, target)).map((r) => r.note),
    trickyNotes(shop),
    'rows that name the database come back unchanged',
  );
  // The code works on the target's own objects.
  assert.deepEqual(await q(`select id, gross from on_priced order by id`, target), original.onPriced);
  const logged = (await q<{ n: number }>(`select count(*) n from log`, target))[0].n;
  await q(`insert into items values (100, 50, 'after the restore')`, target);
  assert.deepEqual(await q(`select w from log where id > ${logged} order by id`, target), [{ w: `${shop}.with_tax of 100: 60.00` }]);
  const results = (await q(`call by_alias(@n); call reads_items(@m); select @n n, @m m`, target)) as unknown[];
  assert.deepEqual(results[results.length - 1], [{ n: trickyNotes(shop).length + 1, m: 2 * (trickyNotes(shop).length + 1) }]);
  assert.deepEqual(await leftovers(target), []);
}

describe('MariaDB views, triggers, routines and events that use each other', () => {
  test('restored under another name: every definition as in the original, with its own name in code turned into the new one', async () => {
    const target = rt.newMysqlDatabase('cs_shopnew');
    const result = await restore(['--source', 'shop', '--target', mysqlUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    await assertSameAsOriginal(target);
    // The original was neither used nor changed by the copy.
    assert.deepEqual(await definitionsOf(shop), original.definitions);
    assert.deepEqual(await mysqlContentFingerprint(shop), original.print);
  });

  test('restored into its own name over the existing database (the staged swap), and again once it is gone', async () => {
    await q(`insert into items values (99, 1, 'changed since the backup'); drop view on_priced; drop procedure reads_items`, shop);
    const swapped = await restore(['--source', 'shop', '--target', mysqlUrl(shop)]);
    assert.equal(swapped.code, EXIT.OK, swapped.stderr);
    await assertSameAsOriginal(shop);

    await dropMysqlDatabase(shop);
    const recreated = await restore(['--source', 'shop', '--target', mysqlUrl(shop)]);
    assert.equal(recreated.code, EXIT.OK, recreated.stderr);
    await assertSameAsOriginal(shop);
  });

  test('a restore that fails midway (a view over a function of a database this server lacks): no target, no staging database, and the message says so', async () => {
    const target = rt.newMysqlDatabase('cs_usesnew');
    const fresh = await restore(['--source', 'uses', '--target', mysqlUrl(target)]);
    assert.equal(fresh.code, EXIT.FAILURE, fresh.stderr);
    assert.match(fresh.stderr, new RegExp(`FUNCTION ${shared}\\.fx does not exist`));
    assert.match(fresh.stderr, new RegExp(`MySQL database .{1,2}${target}.{1,2} was not created, and no staging database is left`));
    assert.doesNotMatch(fresh.stderr, /partly written/);
    assert.deepEqual(await q(`select 1 from information_schema.schemata where schema_name = ${mysql.escape(target)}`), []);
    assert.deepEqual(await leftovers(target), []);

    // Over an existing database: it stays as it was.
    const existing = rt.newMysqlDatabase('cs_usesold');
    await q(`create database \`${existing}\`; create table \`${existing}\`.kept (x int); insert into \`${existing}\`.kept values (7)`);
    const print = await mysqlContentFingerprint(existing);
    const over = await restore(['--source', 'uses', '--target', mysqlUrl(existing)]);
    assert.equal(over.code, EXIT.FAILURE, over.stderr);
    assert.match(over.stderr, new RegExp(`MySQL database .{1,2}${existing}.{1,2} is as it was before the restore, and no staging database is left`));
    assert.doesNotMatch(over.stderr, /partly written/);
    assert.deepEqual(await mysqlContentFingerprint(existing), print);
    assert.deepEqual(await leftovers(existing), []);
  });
});
