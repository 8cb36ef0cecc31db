import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import { canonicalGtidState } from '../../format/binlog';
import type { AgentConfigInput } from '../../format/agent-config';
import type { Manifest } from '../../format/manifest';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';
import { startMariadbServer, type MariadbServer } from '../harness/mariadb-server';
import { decompress, gpgDecrypt } from '../harness/gpg';

/**
 * A PITR source's dumps record the binary log position of their snapshot in the signed manifest:
 * exactly SHOW MASTER STATUS at the snapshot, while writes go on during the dump (a write after
 * the snapshot is after the position and not in the dump), read by a dump account without RELOAD
 * or BINLOG MONITOR (MariaDB's consistent snapshot needs neither). A server with the binary log
 * off fails the backup before anything is committed.
 */
let source: BinlogSource;
let plain: MariadbServer | undefined;

before(async () => {
  source = await startBinlogSource();
  source.sql('CREATE TABLE a_gate (id int primary key) ENGINE=InnoDB; CREATE TABLE t (id int primary key, v varchar(20)) ENGINE=InnoDB');
  // What a dump account has without any replication privilege: mariadb-dump --master-data --gtid must still get its position.
  source.server.sql("CREATE USER 'dumper'@'localhost' IDENTIFIED BY ''; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON *.* TO 'dumper'@'localhost'");
});

after(async () => {
  await source?.close();
  await plain?.stop();
});

/** The harness's source "shop" (type mysql), to vary. */
function shopSource(): Extract<AgentConfigInput['sources'][number], { type: 'mysql' }> {
  const shop = source.config.sources[0];
  assert.equal(shop.type, 'mysql');
  return shop;
}

function masterStatus(): { file: string; position: number } {
  const [file, position] = source.server.sql('SHOW MASTER STATUS').split('\t');
  return { file, position: Number(position) };
}

async function manifests(name: string): Promise<string[]> {
  return (await source.sandbox.listKeys(`backups/daily/testgroup/testhost/${name}/`)).filter((k) => k.endsWith('.manifest.json'));
}

async function openLatest(name: string): Promise<Manifest> {
  const keys = await manifests(name);
  const { document } = await openManifest((await source.sandbox.getObject(keys.at(-1)!)).toString(), await readPublicKeys(source.sandbox.signing.publicKey, 'signing'));
  return document;
}

/**
 * After a rotation the server writes a second Binlog_checkpoint event into the new file, naming
 * it, once InnoDB has flushed the old file's transactions: a moment later (https://mariadb.com/kb/en/binlog_checkpoint_event/):
 * waited for, so that the only events after the snapshot are the test's.
 */
async function checkpointed(): Promise<void> {
  const { file } = masterStatus();
  const deadline = Date.now() + 10_000;
  while (!source.server.sql(`SHOW BINLOG EVENTS IN '${file}'`).split('\n').some((l) => l.split('\t')[2] === 'Binlog_checkpoint' && l.split('\t').at(-1) === file)) {
    if (Date.now() > deadline) throw new Error(`no Binlog_checkpoint for ${file} within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A session holding LOCK TABLES a_gate WRITE: the dump, once its snapshot is taken, waits on that table. */
async function holdGate(): Promise<{ release(): Promise<void> }> {
  const child: ChildProcessWithoutNullStreams = spawn('mariadb', ['--no-defaults', '-uroot', `--socket=${source.server.socket}`, '--unbuffered', '--batch', '--skip-column-names', 'shop']);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.write("LOCK TABLES a_gate WRITE; SELECT 'locked';\n");
  const deadline = Date.now() + 10_000;
  while (!out.includes('locked')) {
    if (Date.now() > deadline) throw new Error('the gate session did not lock a_gate');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    release: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end('UNLOCK TABLES;\n');
      }),
  };
}

test('the manifest records SHOW MASTER STATUS at the snapshot; writes during the dump are after it and not in the dump', async () => {
  for (let i = 1; i <= 5; i++) source.sql(`INSERT INTO t VALUES (${i}, 'before')`);
  source.flush();
  await checkpointed();
  for (let i = 6; i <= 8; i++) source.sql(`INSERT INTO t VALUES (${i}, 'before')`);
  const atSnapshot = masterStatus();
  const gtidAtSnapshot = source.server.sql('SELECT @@gtid_binlog_pos');
  const gate = await holdGate();
  const started = new Date();
  // No inventory: its row count (before the dump, in a snapshot of its own) would wait on the gate first.
  const config = source.sandbox.config({ sources: [{ ...shopSource(), user: 'dumper', inventory: false }] });
  const run = source.sandbox.runCli(['backup', '--config', source.sandbox.writeConfig(config), '--tier', 'daily']);
  const during: number[] = [];
  try {
    // The dump has its snapshot and waits on a_gate (it dumps tables in name order): write now.
    const deadline = Date.now() + 30_000;
    const waiting = "SELECT count(*) FROM information_schema.processlist WHERE user = 'dumper' AND state = 'Waiting for table metadata lock' AND info LIKE '%SQL_NO_CACHE%a_gate%'";
    let ended: string | undefined;
    void run.then((r) => (ended = r.log));
    while (source.server.sql(waiting) !== '1') {
      if (ended !== undefined || Date.now() > deadline) throw new Error(`the dump did not reach a_gate: ${source.server.sql('SHOW PROCESSLIST')}\n${ended ?? ''}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(masterStatus(), atSnapshot, `nothing was logged between the reading and the snapshot: ${source.server.sql(`SHOW BINLOG EVENTS IN '${atSnapshot.file}' FROM ${atSnapshot.position}`)}`);
    for (let i = 9; i <= 12; i++) {
      source.sql(`INSERT INTO t VALUES (${i}, 'during')`);
      during.push(masterStatus().position);
    }
    source.sql("UPDATE t SET v = 'changed' WHERE id = 1");
  } finally {
    await gate.release();
  }
  const result = await run;
  const finished = new Date();
  assert.equal(result.code, EXIT.OK, result.log);

  const manifest = await openLatest('shop');
  const artifact = manifest.artifacts.find((a) => a.name === 'shop')!;
  const position = artifact.binlogPosition!;
  assert.ok(position, 'the artifact carries binlogPosition');
  assert.equal(position.file, atSnapshot.file);
  assert.equal(position.position, atSnapshot.position, 'the position is the binary log end at the snapshot');
  assert.equal(position.flavor, 'mariadb');
  assert.equal(position.gtid, canonicalGtidState(gtidAtSnapshot, 'mariadb'));
  assert.notEqual(position.gtid, '', 'the server has logged GTIDs');
  assert.ok(position.readAt >= started.toISOString() && position.readAt <= finished.toISOString(), `readAt ${position.readAt} within the run`);
  assert.ok(during.every((p) => p > position.position), 'every write during the dump ends after the recorded position');
  assert.deepEqual(artifact.tool.args.filter((a) => /master-data|gtid|single-transaction/.test(a)), ['--master-data=2', '--gtid', '--single-transaction']);

  const sql = decompress(gpgDecrypt(await source.sandbox.getObject(artifact.key), source.sandbox.recipient.privateFile), manifest.compression.algorithm).toString();
  for (let i = 1; i <= 8; i++) assert.match(sql, new RegExp(`\\(${i},'before'\\)`), `row ${i} (before the snapshot) is in the dump`);
  assert.doesNotMatch(sql, /'during'|'changed'/, 'nothing written after the snapshot is in the dump');
  assert.match(sql, /^-- CHANGE MASTER TO MASTER_LOG_FILE='[^']+', MASTER_LOG_POS=\d+;$/m, 'the coordinates stay comments: a plain restore of the dump does not act on them');
});

test('a PITR source whose server has the binary log off fails before anything is committed, saying what to do', async () => {
  plain = await startMariadbServer({ binlog: false });
  plain.sql('CREATE DATABASE shop; CREATE TABLE shop.t (id int primary key)');
  const config = source.sandbox.config({ sources: [{ ...shopSource(), name: 'nolog', socket: plain.socket }] });
  const result = await source.sandbox.runCli(['backup', '--config', source.sandbox.writeConfig(config), '--tier', 'daily']);
  assert.equal(result.code, EXIT.SOURCE, result.log);
  assert.match(result.log, /source nolog: point-in-time recovery is enabled but the server's binary log is off \(log_bin=0\)/);
  assert.match(result.log, /coldseal pitr setup --source nolog/);
  assert.deepEqual(await manifests('nolog'), [], 'no manifest');
});
