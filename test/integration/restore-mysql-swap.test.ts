import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mysqlFreshName, mysqlReplaceWithStaging, MysqlSwapFailed } from '../../agent/src/restore/mysql-staging';
import { createMysqlFixture, dropMysqlDatabase, mysqlContentFingerprint, uniqueDbName, MYSQL, mysqlQuery as q } from '../../local-system/databases';

/**
 * The swap of a checked staging database into an existing target fails halfway (the tables have
 * moved and the triggers are created, then the user may not create routines): the target must be
 * exactly as it was, tables, views and triggers, and the holding database gone. Into a new
 * target: no database of that name is left.
 */
const source = uniqueDbName('cs_swsrc');
const target = uniqueDbName('cs_swtgt');
const fresh = uniqueDbName('cs_swnew');
let staging: string;
const user = `cs_swap_${randomBytes(3).toString('hex')}`;

async function objects(database: string): Promise<string> {
  const [row] = await q<{ v: string | null; t: string | null; r: string | null }>(
    `select (select group_concat(table_name order by table_name) from information_schema.views where table_schema = '${database}') v,
            (select group_concat(trigger_name order by trigger_name) from information_schema.triggers where trigger_schema = '${database}') t,
            (select group_concat(routine_name order by routine_name) from information_schema.routines where routine_schema = '${database}') r`,
  );
  return `views ${row.v}; triggers ${row.t}; routines ${row.r}`;
}

before(async () => {
  await createMysqlFixture(source, 50);
  staging = await mysqlFreshName({ args: [`--host=${MYSQL.host}`, `--port=${MYSQL.port}`, `--user=${MYSQL.user}`] }, target, 'staging');
  // The checked copy, as a restore leaves it in staging.
  const dump = execFileSync('mysqldump', [`--host=${MYSQL.host}`, `--port=${MYSQL.port}`, `--user=${MYSQL.user}`, '--routines', '--triggers', '--', source], { maxBuffer: 256 * 1024 * 1024 });
  await q(`create database \`${staging}\``);
  execFileSync('mysql', [`--host=${MYSQL.host}`, `--port=${MYSQL.port}`, `--user=${MYSQL.user}`, `--database=${staging}`], { input: dump });
  await q(`create database \`${target}\`; use \`${target}\`;
    create table kept (id int primary key, v text); insert into kept values (1, 'old'), (2, 'data');
    create table log (w text); create trigger kept_log after insert on kept for each row insert into log values (new.v);
    create view kept_view as select v from kept;`);
  // May do everything a restore does, except create routines in the target.
  const pattern = `${target.replace(/_/g, '\\_')}\\_\\_coldseal\\_%`;
  await q(`create user '${user}'@'%';
    grant select, insert, update, delete, create, drop, alter, index, create view, show view, trigger, event, lock tables, references on \`${target}\`.* to '${user}'@'%';
    grant select, insert, update, delete, create, drop, alter, index, create view, show view, trigger, event, lock tables, references on \`${fresh}\`.* to '${user}'@'%';
    grant all on \`${pattern}\`.* to '${user}'@'%';
    grant select on mysql.proc to '${user}'@'%';
    grant set user on *.* to '${user}'@'%';`);
});

after(async () => {
  await q(`drop user if exists '${user}'@'%'`);
  await Promise.all([source, target, fresh, staging].map(dropMysqlDatabase));
});

test('a swap that fails after the tables moved puts the old target back as it was', async () => {
  const was = await mysqlContentFingerprint(target);
  const wasObjects = await objects(target);
  assert.equal(wasObjects, 'views kept_view; triggers kept_log; routines null');
  await assert.rejects(mysqlReplaceWithStaging({ args: [`--host=${MYSQL.host}`, `--port=${MYSQL.port}`, `--user=${user}`] }, staging, target, true), (error: unknown) => {
    assert.ok(error instanceof MysqlSwapFailed && error.putBack, String(error));
    assert.match(error.message, /creating the views, triggers and routines in \S+ failed .*command denied/);
    return true;
  });
  assert.deepEqual(await mysqlContentFingerprint(target), was);
  assert.equal(await objects(target), wasObjects);
  // The old trigger works again on the old table.
  await q(`insert into kept values (3, 'after')`, target);
  assert.deepEqual(await q(`select w from log`, target), [{ w: 'after' }]);
  const holding = await q<{ d: string }>(`select schema_name d from information_schema.schemata where schema_name like '${target.replace(/_/g, '\\_')}\\_\\_coldseal\\_previous%'`);
  assert.deepEqual(holding, []);
});

test('a swap into a new database that fails after the tables moved (triggers already created) leaves no database of that name', async () => {
  // The first swap dropped the staging copy's trigger before moving its tables: as a restore leaves it, with its trigger.
  await q(`create trigger order_audit after insert on orders for each row insert into audit(what) values (concat('order ', new.id))`, staging);
  const tables = await mysqlContentFingerprint(staging);
  await assert.rejects(mysqlReplaceWithStaging({ args: [`--host=${MYSQL.host}`, `--port=${MYSQL.port}`, `--user=${user}`] }, staging, fresh, false), (error: unknown) => {
    assert.ok(error instanceof MysqlSwapFailed && error.putBack, String(error));
    assert.match(error.message, /creating the views, triggers and routines in \S+ failed .*command denied/);
    return true;
  });
  assert.deepEqual(await q(`select 1 from information_schema.schemata where schema_name = '${fresh}'`), []);
  // The checked copy's tables are back in the staging database (the restore then drops it).
  const back = await mysqlContentFingerprint(staging);
  assert.deepEqual(Object.keys(back).filter((k) => k !== 'triggers'), Object.keys(tables).filter((k) => k !== 'triggers'));
  for (const table of Object.keys(tables).filter((k) => k !== 'triggers' && k !== 'routines')) assert.equal(back[table], tables[table], table);
});
