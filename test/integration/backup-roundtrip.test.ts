import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { manifestKey } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { messageRecipientKeyIds, readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import {
  createPgDatabase,
  mysqlContentFingerprint,
  mysqlSource,
  pgContentFingerprint,
  pgSource,
  uniqueDbName,
  PG,
  MYSQL,
} from '../../local-system/databases';
import { decompress, gpgDecrypt, gpgVerifyDetached } from '../harness/gpg';
import { treeListing } from '../harness/tree';

/**
 * The backup path end to end against real PostgreSQL, MariaDB and moto: the real CLI writes the
 * backup; the test then proves, with tools a user has without coldseal (gpg, zstd, pg_restore,
 * mysql, tar), that the objects are signed, intact, addressed to the right key, and restore to
 * data equal to the original.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
const pgDb = uniqueDbName('cs_pg');
const pgDb2 = uniqueDbName('cs_pg2');
const myDb = uniqueDbName('cs_my');
let filesRoot: string;

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  await Promise.all([rt.pgFixture(pgDb, 30_000), rt.pgFixture(pgDb2, 100), rt.mysqlFixture(myDb, 20_000)]);
  filesRoot = rt.filesTree('coldseal files ', { 'big.bin': Buffer.alloc(3 * 1024 * 1024, 7), 'skip.log': 'excluded\n' });
});

after(() => rt?.cleanup());

async function openSignedManifest(key: string): Promise<Manifest> {
  const text = (await sandbox.getObject(key)).toString('utf8');
  const trusted = await readPublicKeys(sandbox.signing.publicKey, 'signing');
  const { document } = await openManifest(text, trusted);
  // The same signature checks out with GnuPG alone, as the README tells users.
  const envelope = JSON.parse(text) as { payload: string; signature: string };
  assert.match(gpgVerifyDetached(Buffer.from(envelope.payload, 'utf8'), envelope.signature, sandbox.signing.publicFile), /GOODSIG/);
  return document;
}

/** Downloads an artifact and checks it against the signed manifest; returns the plaintext. */
async function fetchAndCheck(manifest: Manifest, name: string): Promise<Buffer> {
  const artifact = manifest.artifacts.find((a) => a.name === name);
  assert.ok(artifact, `artifact ${name} in manifest`);
  const ciphertext = await sandbox.getObject(artifact.key);
  assert.equal(ciphertext.length, artifact.ciphertextBytes);
  assert.equal(createHash('sha256').update(ciphertext).digest('hex'), artifact.ciphertextSha256);
  const parts = [];
  for (let offset = 0; offset < ciphertext.length; offset += artifact.parts.size) {
    parts.push(createHash('sha256').update(ciphertext.subarray(offset, offset + artifact.parts.size)).digest('hex'));
  }
  assert.deepEqual(parts, artifact.parts.sha256);
  assert.deepEqual(await messageRecipientKeyIds(ciphertext.subarray(0, 2048)), manifest.encryption.recipientKeyIds);
  const compressed = gpgDecrypt(ciphertext, sandbox.recipient.privateFile);
  assert.equal(compressed.length, artifact.compressedBytes);
  const plain = decompress(compressed, manifest.compression.algorithm);
  if (artifact.uncompressedBytes !== null) assert.equal(plain.length, artifact.uncompressedBytes);
  return plain;
}

describe('backup round trips', () => {
  test('PostgreSQL: two databases and globals, restored with gpg + zstd + pg_restore, equal table by table', async () => {
    const config = sandbox.config({
      sources: [pgSource('pgmain', [pgDb, pgDb2], { globals: true })],
      // Small parts so the multipart path (several parts, per-part digests) is exercised on a few MB.
      upload: { partSizeMiB: 5 },
    });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const keys = await sandbox.listKeys('backups/daily/testgroup/testhost/pgmain/');
    const manifests = keys.filter((k) => k.endsWith('.manifest.json'));
    assert.equal(manifests.length, 1);
    assert.equal(keys.length, 4, `globals + 2 databases + manifest: ${keys.join(', ')}`);
    assert.match(result.stdout, new RegExp(`ok\\s+pgmain\\s+s3://${sandbox.bucket}/${manifests[0].replace(/\./g, '\\.')}`));

    const manifest = await openSignedManifest(manifests[0]);
    assert.equal(manifests[0], manifestKey({ tier: 'daily', group: 'testgroup', host: 'testhost', source: 'pgmain' }, manifest.stamp));
    assert.equal(manifest.engine.kind, 'postgres');
    assert.match(manifest.engine.version ?? '', /^\d+\.\d+/);
    assert.deepEqual(manifest.artifacts.map((a) => a.name), ['globals', pgDb, pgDb2]);
    assert.equal(manifest.compression.algorithm, 'zstd');
    assert.match(manifest.encryption.implementation ?? '', /^gpg 2\./);
    const main = manifest.artifacts[1];
    assert.equal(main.inventory?.consistency, 'snapshot', 'row counts taken in the snapshot pg_dump dumped');
    assert.deepEqual(main.inventory?.tables.find((t) => t.schema === 'public' && t.name === 'bulk'), { schema: 'public', name: 'bulk', rows: 30_000 });
    assert.ok(main.parts.sha256.length >= 1);
    assert.equal(main.exitCode, 0);
    assert.deepEqual(main.tool.args, ['--format=custom', '--compress=0', '--no-password']);

    const globals = (await fetchAndCheck(manifest, 'globals')).toString('utf8');
    assert.match(globals, /PostgreSQL database cluster dump complete/);

    for (const db of [pgDb, pgDb2]) {
      const dump = await fetchAndCheck(manifest, db);
      assert.equal(dump.subarray(0, 5).toString(), 'PGDMP');
      const target = rt.newPgDatabase('cs_pgr');
      await createPgDatabase(target);
      execFileSync('pg_restore', ['-h', PG.host, '-U', PG.user, '--no-owner', '--exit-on-error', '-d', target], { input: dump, maxBuffer: 64 * 1024 * 1024 });
      const [restoredPrint, originalPrint] = [await pgContentFingerprint(target), await pgContentFingerprint(db)];
      assert.deepEqual(restoredPrint, originalPrint);
    }
  });

  test('MariaDB: blobs, 4-byte unicode, triggers and routines come back equal', async () => {
    // Encrypted in process by openpgp.js (hosts without gpg); PostgreSQL above went through the gpg binary.
    const config = sandbox.config({ sources: [mysqlSource('maria', [myDb], { inventory: false })], encryption: { implementation: 'openpgp.js' } });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'weekly']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const [key] = (await sandbox.listKeys('backups/weekly/testgroup/testhost/maria/')).filter((k) => k.endsWith('.manifest.json'));
    const manifest = await openSignedManifest(key);
    assert.equal(manifest.artifacts[0].completion.method, 'marker');
    assert.match(manifest.encryption.implementation ?? '', /^openpgp\.js 6\./);
    assert.equal(manifest.artifacts[0].inventory, undefined, 'inventory: false skips the row counts');
    const sql = (await fetchAndCheck(manifest, myDb)).toString('utf8');
    assert.match(sql, /-- Dump completed/);
    // Restore under another name: the dump names its database, so point it elsewhere.
    const myRestored = rt.newMysqlDatabase('cs_myr');
    const renamed = sql.replaceAll(`\`${myDb}\``, `\`${myRestored}\``);
    execFileSync('mysql', ['-h', MYSQL.host, '-u', MYSQL.user, '--default-character-set=utf8mb4'], { input: renamed, maxBuffer: 64 * 1024 * 1024 });
    assert.deepEqual(await mysqlContentFingerprint(myRestored), await mysqlContentFingerprint(myDb));
  });

  test('files: permissions, symlinks, empty directories, unicode names; excludes honoured', async () => {
    const config = sandbox.config({ sources: [{ name: 'docs', type: 'files', paths: [filesRoot], excludes: ['*.log'] }], compression: { algorithm: 'gzip' } });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'monthly']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const [key] = (await sandbox.listKeys('backups/monthly/testgroup/testhost/docs/')).filter((k) => k.endsWith('.manifest.json'));
    const manifest = await openSignedManifest(key);
    assert.equal(manifest.compression.algorithm, 'gzip');
    assert.match(manifest.artifacts[0].key, /\.tar\.gz\.pgp$/);
    const tar = await fetchAndCheck(manifest, 'docs');
    const out = rt.tempDir('coldseal-untar-');
    execFileSync('tar', ['-x', '-C', out], { input: tar, maxBuffer: 64 * 1024 * 1024 });
    const restored = join(out, filesRoot);
    const actual = treeListing(restored);
    assert.deepEqual(actual, treeListing(filesRoot).filter((l) => !l.startsWith('skip.log')));
    assert.ok(actual.some((l) => l.includes('empty dir')));
    assert.ok(actual.some((l) => l.includes('link to dir') && l.includes('-> sub/déjà vu')));
    assert.equal(statSync(join(restored, 'secret.conf')).mode & 0o777, 0o600);
  });
});
