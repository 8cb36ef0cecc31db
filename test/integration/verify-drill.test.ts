import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { DrillReceipt, Manifest } from '../../format/manifest';
import { readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { openDrillReceipt, peekManifest, signManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { mysqlSource, pgQuery, pgSource, uniqueDbName } from '../../local-system/databases';

/**
 * verify (from this machine, with and without the key) and drill (the scheduled deep verify that
 * writes a signed receipt), against real backups of PostgreSQL, MariaDB and files. A backup whose
 * restored copy does not match the inventory recorded at backup time fails, as does damage.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
let forgedConfig: string;
const pgDb = uniqueDbName('cs_vpg');
const myDb = uniqueDbName('cs_vmy');
let root: string;

async function manifestOf(host: string, source: string): Promise<{ key: string; manifest: Manifest }> {
  const [key] = (await sandbox.listKeys(`backups/daily/testgroup/${host}/${source}/`)).filter((k) => k.endsWith('.manifest.json'));
  return { key, manifest: peekManifest((await sandbox.getObject(key)).toString('utf8')) };
}

async function scratchDatabases(): Promise<string[]> {
  return (await pgQuery<{ d: string }>('postgres', `select datname d from pg_database where datname like 'coldseal_scratch_%'`)).map((r) => r.d);
}

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  root = rt.tempDir('coldseal-verify-files-');
  writeFileSync(join(root, 'one.txt'), '1\n');
  writeFileSync(join(root, 'two.txt'), '2\n');
  await Promise.all([rt.pgFixture(pgDb, 2000), rt.mysqlFixture(myDb, 1000)]);
  const sources = [pgSource('pg', [pgDb]), mysqlSource('maria', [myDb]), { name: 'docs', type: 'files' as const, paths: [root] }];
  [configFile, forgedConfig] = await Promise.all([rt.backup(sandbox.config({ sources })), rt.backup(sandbox.config({ host: 'forged', sources }), ['--source', 'pg,docs'])]);

  // "forged": a manifest re-signed by the group key whose inventory claims one row more than was dumped.
  const { key, manifest } = await manifestOf('forged', 'pg');
  const artifact = manifest.artifacts.find((a) => a.name === pgDb)!;
  const tables = artifact.inventory!.tables.map((t) => (t.schema === 'public' && t.name === 'bulk' ? { ...t, rows: t.rows + 1 } : t));
  const edited: Manifest = { ...manifest, artifacts: manifest.artifacts.map((a) => (a === artifact ? { ...a, inventory: { ...artifact.inventory!, tables, schemaFingerprint: '0'.repeat(64) } } : a)) };
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: key, Body: await signManifest(edited, await readPrivateKey(sandbox.signing.privateKey, 'signing')) }));
  // ... and its files backup gets a flipped byte.
  const docs = (await manifestOf('forged', 'docs')).manifest.artifacts[0];
  const data = await sandbox.getObject(docs.key);
  data[data.length - 100] ^= 0x80;
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: docs.key, Body: data }));
});

after(() => rt?.cleanup());

describe('verify and drill', () => {
  test('verify without a key: signature, recipients, completion, object, addressees and checksum of every artifact', async () => {
    for (const source of ['pg', 'maria', 'docs']) {
      const result = await sandbox.runCli(['verify', '--config', configFile, '--source', source, '--host', 'testhost']);
      assert.equal(result.code, EXIT.OK, `${source}: ${result.stdout}\n${result.stderr}`);
      for (const check of ['signature', 'recipients', 'completion', 'object', 'message-recipients', 'checksum']) {
        assert.match(result.stdout, new RegExp(`ok\\s+${check}: `), `${source} ${check}`);
      }
    }
  });

  test('verify --deep test-restores into scratch databases, compares row counts and schema with the manifest, and drops them', async () => {
    for (const source of ['pg', 'maria', 'docs']) {
      const result = await sandbox.runCli(['verify', '--config', configFile, '--source', source, '--host', 'testhost', '--deep', '--key', sandbox.recipient.privateFile, '--json']);
      assert.equal(result.code, EXIT.OK, `${source}: ${result.stdout}\n${result.stderr}`);
      const [verification] = JSON.parse(result.stdout) as { ok: boolean; artifacts: { checks: { name: string; ok: boolean; detail: string }[] }[] }[];
      assert.ok(verification.ok);
      const checks = Object.fromEntries(verification.artifacts[0].checks.map((c) => [c.name, c]));
      for (const name of ['checksum', 'decrypt', 'restore']) assert.ok(checks[name]?.ok, `${source} ${name}: ${JSON.stringify(checks)}`);
      if (source === 'docs') assert.match(checks.files.detail, /^2 files and 2 directories extracted$/);
      else {
        assert.match(checks['row-counts'].detail, source === 'pg' ? /^5 tables, 8503 rows, all as recorded$/ : /^4 tables, 5300 rows, all as recorded$/);
        assert.match(checks.schema.detail, /schema fingerprint [0-9a-f]{16}… matches/);
      }
    }
    assert.deepEqual(await scratchDatabases(), []);
  });

  test('verify --deep fails a backup whose restored copy differs from its recorded inventory; plain verify fails a damaged one', async () => {
    const deep = await sandbox.runCli(['verify', '--config', forgedConfig, '--source', 'pg', '--host', 'forged', '--deep', '--key', sandbox.recipient.privateFile]);
    assert.equal(deep.code, EXIT.INTEGRITY, deep.stderr);
    assert.match(deep.stdout, /FAIL {2}row-counts: 1 table\(s\) differ: public\.bulk has 2000 rows, expected 2001/);
    assert.match(deep.stdout, /FAIL {2}schema: schema fingerprint [0-9a-f]{16}… differs from the recorded 0000000000000000…/);
    assert.deepEqual(await scratchDatabases(), []);

    const damaged = await sandbox.runCli(['verify', '--config', forgedConfig, '--source', 'docs', '--host', 'forged', '--all']);
    assert.equal(damaged.code, EXIT.INTEGRITY, damaged.stderr);
    assert.match(damaged.stdout, /FAIL {2}checksum: SHA-256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
  });

  test('drill restores the latest backup of each source, checks it and writes a signed receipt that list shows', async () => {
    const result = await sandbox.runCli(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, '--host', 'testhost', '--json']);
    assert.equal(result.code, EXIT.OK, `${result.stdout}\n${result.stderr}`);
    const { receiptKey } = JSON.parse(result.stdout) as { receiptKey: string };
    assert.match(receiptKey, /^drills\/testgroup\/testhost\/\d{8}T\d{6}Z\.drill\.json$/);
    const { document: receipt } = await openDrillReceipt((await sandbox.getObject(receiptKey)).toString('utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
    assert.equal(receipt.ok, true);
    assert.deepEqual(receipt.results.map((r) => `${r.source}/${r.artifact}`).sort(), [`docs/docs`, `maria/${myDb}`, `pg/${pgDb}`]);
    for (const r of receipt.results) {
      assert.ok(r.ok && r.durationMs > 0, JSON.stringify(r));
      assert.ok(r.manifestKey.startsWith(`backups/daily/testgroup/testhost/${r.source}/`));
      const names = r.checks.map((c) => c.name);
      for (const name of ['signature', 'checksum', 'decrypt', 'restore']) assert.ok(names.includes(name), `${r.source}: ${names.join(',')}`);
      if (r.source !== 'docs') assert.ok(r.checks.some((c) => c.name === 'row-counts' && c.ok && /all as recorded/.test(c.detail)));
      // Stage timings: read and load share the streamed part of the wall time, checks follow; the bytes are the artifact's ciphertext.
      const t = r.timings;
      assert.ok(t, `${r.source}: no timings`);
      assert.ok(t.ciphertextBytes > 0 && t.decryptMs === null && t.downloadMs >= 0 && t.loadMs >= 0 && t.checksMs >= 0, JSON.stringify(t));
      assert.ok(t.downloadMs + t.loadMs + t.checksMs <= r.durationMs + 5, `${r.source}: stages ${JSON.stringify(t)} within the wall time ${r.durationMs} ms`);
    }
    assert.deepEqual(await scratchDatabases(), []);

    const list = JSON.parse((await sandbox.runCli(['list', '--config', configFile, '--host', 'testhost', '--json'])).stdout) as { source: string; drill?: { ok: boolean; drillHost: string } }[];
    assert.ok(list.every((row) => row.drill?.ok === true && row.drill.drillHost === 'testhost'), JSON.stringify(list));
  });

  test('a drill over a bad backup writes a failing receipt and exits with INTEGRITY', async () => {
    const result = await sandbox.runCli(['drill', '--config', forgedConfig, '--key', sandbox.recipient.privateFile, '--host', 'forged']);
    assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
    assert.match(result.stdout, /FAILED {2}pg\//);
    assert.match(result.stdout, /FAILED {2}docs\/docs/);
    const key = /receipt: (\S+)/.exec(result.stdout)![1];
    const receipt: DrillReceipt = (await openDrillReceipt((await sandbox.getObject(key)).toString('utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'))).document;
    assert.equal(receipt.ok, false);
    assert.equal(receipt.host, 'forged');
    assert.ok(receipt.results.find((r) => r.source === 'pg')?.checks.some((c) => c.name === 'row-counts' && !c.ok));
    assert.ok(receipt.results.find((r) => r.source === 'docs')?.checks.some((c) => c.name === 'checksum' && !c.ok));
  });
});
