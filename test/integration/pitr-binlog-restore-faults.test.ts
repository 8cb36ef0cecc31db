import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { binlogObjectKey } from '../../format/layout';
import { drillReceiptSchema } from '../../format/manifest';
import { EXIT } from '../../format/exit-codes';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';
import { startS3Proxy, type S3Proxy } from '../harness/s3-proxy';

/**
 * A MySQL/MariaDB point-in-time restore refuses what it cannot trust, and leaves the target as it
 * was: a binary log object whose bytes changed (found by the ciphertext SHA-256 before any byte
 * is replayed; the dump already in staging is dropped), a record changed in the object's metadata
 * (refused while planning: no dump or binary log is downloaded, seen through a proxy in front of
 * moto), a file missing from the middle of the archive (a target inside the hole refused naming
 * the lost range, before downloading; --to-latest refused naming it too). And `drill --pitr`
 * restores to a random second of the window into a scratch database and signs a receipt with
 * `binlogPitr`.
 */
let source: BinlogSource;
let proxy: S3Proxy;
let configViaProxy: string;
const files: string[] = [];
let inHole: string;

const url = (database: string) => `mysql://root@localhost/${database}?socket=${encodeURIComponent(source.server.socket)}`;
const keyOf = (file: string) => binlogObjectKey('testgroup', 'testhost', 'shop', file);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const restore = (config: string, ...args: string[]) => source.sandbox.runCli(['restore', '--config', config, '--source', 'shop', '--key', source.sandbox.recipient.privateFile, ...args]);
const downloads = () => proxy.seen.filter((r) => r.method === 'GET' && !r.query.has('list-type') && !r.path.endsWith('.manifest.json'));

before(async () => {
  source = await startBinlogSource();
  source.sql("CREATE TABLE items (id int primary key, v varchar(40)); INSERT INTO items VALUES (1, 'dumped');");
  const backup = await source.cli(['backup', '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);
  // Four closed files, a second or more apart: the third will be the hole. The first holds a
  // statement of 20 000 rows: its BINLOG statement is about 3 MB.
  source.sql('CREATE TABLE wide (id int primary key, v varchar(200)); INSERT INTO wide SELECT seq, REPEAT(MD5(seq), 3) FROM seq_1_to_20000;');
  for (const id of [2, 3, 4, 5]) {
    source.sql(`INSERT INTO items VALUES (${id}, 'row ${id}')`);
    files.push(source.flush());
    await sleep(1100);
    if (id === 4) inHole = source.serverTime();
    await sleep(id === 4 ? 1100 : 0);
  }
  const push = await source.push();
  assert.equal(push.code, EXIT.OK, push.log);
  proxy = await startS3Proxy(source.sandbox.account.clientConfig.endpoint);
  configViaProxy = source.sandbox.writeConfig({ ...source.config, endpoint: proxy.url });
  source.sql("CREATE DATABASE kept; CREATE TABLE kept.items (id int primary key, v varchar(40)); INSERT INTO kept.items VALUES (42, 'untouched');");
});

after(async () => {
  await proxy?.close();
  await source?.close();
});

const s3 = () => source.sandbox.s3;
const bucket = () => source.sandbox.bucket;

test('a binary log object with changed bytes: refused before its bytes are replayed; a new target not created, an existing one untouched', async () => {
  const key = keyOf(files[1]);
  const genuine = await s3().send(new GetObjectCommand({ Bucket: bucket(), Key: key }));
  const body = Buffer.from(await genuine.Body!.transformToByteArray());
  const changed = Buffer.from(body);
  changed[changed.length - 40] ^= 0x55;
  await s3().send(new PutObjectCommand({ Bucket: bucket(), Key: key, Body: changed, Metadata: genuine.Metadata }));
  try {
    const [fresh, existing] = await Promise.all([
      restore(source.configPath, '--to-latest', '--target', url('shop_x')),
      restore(source.configPath, '--to-latest', '--target', url('kept'), '--yes', '--no-encrypt-safety-dump', '--safety-dir', source.sandbox.dir),
    ]);
    assert.equal(fresh.code, EXIT.INTEGRITY, fresh.log);
    assert.match(fresh.log, new RegExp(`binary log ${files[1].replace('.', '\\.')} at s3://.* failed its integrity check: its ciphertext \\(\\d+ bytes, SHA-256 [0-9a-f]{64}\\) is not what the signed record says`));
    assert.match(fresh.log, /"shop_x" was not created, and no staging database is left/);
    assert.equal(source.server.sql("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'shop_x' OR schema_name LIKE '%coldseal%'"), '0');
    assert.equal(existing.code, EXIT.INTEGRITY, existing.log);
    assert.match(existing.log, /"kept" is as it was before the restore/);
    assert.equal(source.server.sql('SELECT id, v FROM kept.items'), '42\tuntouched');
  } finally {
    await s3().send(new PutObjectCommand({ Bucket: bucket(), Key: key, Body: body, Metadata: genuine.Metadata }));
  }
});

test('a record changed in the metadata: refused while planning, nothing downloaded', async () => {
  const key = keyOf(files[0]);
  const head = await s3().send(new HeadObjectCommand({ Bucket: bucket(), Key: key }));
  const metadata = { ...head.Metadata! };
  const payload = JSON.parse(Buffer.from(metadata['coldseal-wal-record'], 'base64').toString('utf8')) as { closedAt: string };
  payload.closedAt = new Date(Date.parse(payload.closedAt) + 3_600_000).toISOString();
  metadata['coldseal-wal-record'] = Buffer.from(JSON.stringify(payload)).toString('base64');
  await s3().send(new CopyObjectCommand({ Bucket: bucket(), Key: key, CopySource: `${bucket()}/${key}`, Metadata: metadata, MetadataDirective: 'REPLACE' }));
  try {
    proxy.seen.length = 0;
    const result = await restore(configViaProxy, '--to-latest', '--target', url('shop_r'));
    assert.equal(result.code, EXIT.INTEGRITY, result.log);
    assert.match(result.log, new RegExp(`binary log ${files[0].replace('.', '\\.')} \\(s3://.*\\): .*signature`, 'i'));
    assert.deepEqual(downloads().map((r) => r.path), []);
    assert.ok(proxy.seen.some((r) => r.method === 'HEAD'), 'the records were read');
  } finally {
    await s3().send(new CopyObjectCommand({ Bucket: bucket(), Key: key, CopySource: `${bucket()}/${key}`, Metadata: head.Metadata, MetadataDirective: 'REPLACE' }));
  }
});

test('a file missing from the middle: a target inside the hole and --to-latest refused naming the lost range, one after the archive naming the window, nothing downloaded; before it still restores', async () => {
  const key = keyOf(files[2]);
  const genuine = await s3().send(new GetObjectCommand({ Bucket: bucket(), Key: key }));
  const body = Buffer.from(await genuine.Body!.transformToByteArray());
  await s3().send(new DeleteObjectCommand({ Bucket: bucket(), Key: key }));
  try {
    proxy.seen.length = 0;
    const [hole, latest, late] = await Promise.all([
      restore(configViaProxy, '--to-time', inHole, '--target', url('shop_h')),
      restore(configViaProxy, '--to-latest', '--target', url('shop_h')),
      restore(configViaProxy, '--to-time', new Date(Date.now() + 3_600_000).toISOString(), '--target', url('shop_h')),
    ]);
    assert.equal(late.code, EXIT.NOT_FOUND, late.log);
    assert.match(late.log, /is outside the recovery window of database shop \(reachable: .*\)\. The recovery window of shop is from .* to /);
    assert.equal(hole.code, EXIT.INTEGRITY, hole.log);
    assert.match(hole.log, new RegExp(`cannot be recovered: binary log ${files[2].replace('.', '\\.')} is not in the archive: transactions committed between .* and .* cannot be replayed`));
    assert.equal(latest.code, EXIT.INTEGRITY, latest.log);
    assert.match(latest.log, new RegExp(`replay from any dump stops at ${files[1].replace('.', '\\.')} .*${files[2].replace('.', '\\.')} is not in the archive`));
    assert.deepEqual(downloads().map((r) => r.path), []);
    assert.equal(source.server.sql("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'shop_h'"), '0');
    // Before the hole the archive still serves.
    const early = await restore(configViaProxy, '--to-position', `${files[1]}:${source.server.sql(`SHOW BINLOG EVENTS IN '${files[1]}'`).split('\n').at(-1)!.split('\t')[1]}`, '--target', url('shop_e'));
    assert.equal(early.code, EXIT.OK, early.log);
    assert.equal(source.server.sql('SELECT group_concat(id ORDER BY id) FROM shop_e.items'), '1,2,3');
  } finally {
    await s3().send(new PutObjectCommand({ Bucket: bucket(), Key: key, Body: body, Metadata: genuine.Metadata }));
  }
});

test('S3 failing while the binary logs are fetched: exit 5, the existing target as it was', async () => {
  const failing = await startS3Proxy(source.sandbox.account.clientConfig.endpoint, { drop: (method, query, path) => method === 'GET' && !query.has('list-type') && path.includes('/binlog/') });
  try {
    const result = await restore(source.sandbox.writeConfig({ ...source.config, endpoint: failing.url }), '--to-latest', '--target', url('kept'), '--yes', '--no-encrypt-safety-dump', '--safety-dir', source.sandbox.dir);
    assert.equal(result.code, EXIT.STORAGE, result.log);
    assert.match(result.log, /reading s3:\/\/.*\/binlog\/mariadb-bin\.\d{6}\.pgp failed: /);
    assert.match(result.log, /"kept" is as it was before the restore, and no staging database is left/);
    assert.ok(failing.dropped() > 0);
    assert.equal(source.server.sql('SELECT id, v FROM kept.items'), '42\tuntouched');
  } finally {
    await failing.close();
  }
});

test('drill --pitr: a random second of the window restored into a scratch database, dropped after; binlogPitr in the signed receipt', async () => {
  const drill = await source.cli(['drill', '--pitr', '--key', source.sandbox.recipient.privateFile, '--json']);
  assert.equal(drill.code, EXIT.OK, drill.log);
  const { receipt } = JSON.parse(drill.stdout) as { receipt: unknown };
  const parsed = drillReceiptSchema.parse(receipt);
  const result = parsed.results.find((r) => r.source === 'shop')!;
  assert.ok(result.ok, JSON.stringify(result.checks));
  const pitr = result.binlogPitr!;
  assert.ok(pitr, 'binlogPitr in the receipt');
  assert.equal(pitr.target.kind, 'time');
  assert.ok(pitr.window.fromTime <= pitr.target.value && pitr.target.value <= pitr.window.toTime, JSON.stringify(pitr));
  assert.match(pitr.startPosition, /^mariadb-bin\.\d{6}:\d+$/);
  assert.ok(pitr.reached && (pitr.reached.lastCommitAt === null || pitr.reached.lastCommitAt < pitr.target.value), JSON.stringify(pitr));
  assert.deepEqual(result.checks.map((c) => c.name), ['pitr-window', 'pitr-recovery', 'pitr-target-reached']);
  assert.equal(source.server.sql("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'coldseal_drill_%' OR schema_name LIKE '%coldseal%'"), '0');
});

test('a replayed statement larger than the server\'s max_allowed_packet: the failure says so and what to raise; the target not created', async () => {
  const was = source.server.sql('SELECT @@global.max_allowed_packet');
  source.server.sql('SET GLOBAL max_allowed_packet = 1048576');
  try {
    const result = await restore(source.configPath, '--to-latest', '--target', url('shop_m'));
    assert.equal(result.code, EXIT.FAILURE, result.log);
    assert.match(result.log, /a replayed statement may be larger than the server's max_allowed_packet, 1048576 bytes/);
    assert.match(result.log, /"shop_m" was not created, and no staging database is left\. Raise it on the server you restore to \(SET GLOBAL max_allowed_packet = 1073741824/);
    assert.equal(source.server.sql("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'shop_m' OR schema_name LIKE '%coldseal%'"), '0');
  } finally {
    source.server.sql(`SET GLOBAL max_allowed_packet = ${was}`);
  }
});

test('a statement that names the source database (not rewritten by --rewrite-db) stops the replay; the existing target is as it was', async () => {
  // Last: this poisons the archive's end for --to-latest.
  source.sql('ALTER TABLE shop.items ADD COLUMN extra int');
  const push = await source.push();
  assert.equal(push.code, EXIT.OK, push.log);
  const result = await restore(source.configPath, '--to-latest', '--target', url('kept'), '--yes', '--no-encrypt-safety-dump', '--safety-dir', source.sandbox.dir);
  assert.equal(result.code, EXIT.FAILURE, result.log);
  assert.match(result.log, /names the source database qualified, which --rewrite-db does not rewrite: .*ALTER TABLE shop\.items ADD COLUMN extra int/);
  assert.match(result.log, /"kept" is as it was before the restore, and no staging database is left/);
  assert.equal(source.server.sql('SELECT id, v FROM kept.items'), '42\tuntouched');
  assert.equal(source.server.sql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop' AND column_name = 'extra'"), '1');
});
