import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { groupPrefix, segmentKey, TIERS } from '../../format/layout';
import type { Artifact, Manifest } from '../../format/manifest';
import { artifactObjects } from '../../format/ranges';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { startS3Proxy, type S3Proxy } from '../harness/s3-proxy';
import { createPgDatabase, pgContentFingerprint, pgQuery, pgSource, pgUrl, PG } from '../../local-system/databases';

/**
 * Segmentation end to end with a forced small segment size (5 MiB parts, 2 parts a segment), so a
 * real PostgreSQL dump of ~26 MB of incompressible rows spans several segment objects: the backup
 * writes them and lists them in the signed manifest, and the README's recipe without coldseal
 * (jq + aws s3 cp + gpg + zstd + pg_restore) brings the database back equal to the original.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let db: string;
let manifest: Manifest;
let manifestKey: string;
let artifact: Artifact;
let configFile: string;
let damagedConfig: string;
let damagedManifestKey: string;
let damaged: Artifact;
let proxy: S3Proxy | undefined;

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  db = rt.newPgDatabase('cs_seg');
  await createPgDatabase(db);
  // 1 KiB of random bytes a row: zstd cannot shrink it, so the ciphertext is as long as the data.
  await pgQuery(db, `create table noise as select g as id, (select decode(string_agg(md5(random()::text || g::text || s::text), ''), 'hex') from generate_series(1, 64) s) as payload from generate_series(1, 26000) g;
                     create table small as select g as id, 'row ' || g as label from generate_series(1, 1000) g;`);
  configFile = await rt.backup(sandbox.config({ sources: [pgSource('seg', [db])], upload: { partSizeMiB: 5, segmentParts: 2 } }));
  manifestKey = (await sandbox.listKeys('backups/daily/testgroup/testhost/seg/')).find((k) => k.endsWith('.manifest.json'))!;
  manifest = (await openManifest((await sandbox.getObject(manifestKey)).toString(), await readPublicKeys(sandbox.signing.publicKey, 'signing'))).document;
  artifact = manifest.artifacts[0];
  // The same database again from another host: its backup is the one the damage tests break.
  damagedConfig = await rt.backup(sandbox.config({ host: 'damaged', sources: [pgSource('seg', [db])], upload: { partSizeMiB: 5, segmentParts: 2 } }));
  damagedManifestKey = (await sandbox.listKeys('backups/daily/testgroup/damaged/seg/')).find((k) => k.endsWith('.manifest.json'))!;
  damaged = (await openManifest((await sandbox.getObject(damagedManifestKey)).toString(), await readPublicKeys(sandbox.signing.publicKey, 'signing'))).document.artifacts[0];
});

/**
 * Runs the README's recipe for segmented backups (its own text, with the test's bucket, gpg home
 * and database) in a directory of its own, for the backup whose manifest is at `key`.
 */
async function runReadmeRecipe(key: string, target: string, name: string): Promise<SpawnSyncReturns<string>> {
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  const recipe = /```sh\n(jq -r '\.payload \| fromjson[^`]+?)```/.exec(readme)?.[1];
  assert.ok(recipe, 'the README has the segmented recipe');
  const work = join(sandbox.dir, name);
  mkdirSync(work);
  writeFileSync(join(work, 'm.manifest.json'), await sandbox.getObject(key));
  const gnupg = join(work, 'gnupg');
  execFileSync('mkdir', ['-m', '700', '-p', gnupg]);
  execFileSync('gpg', ['--homedir', gnupg, '--batch', '--quiet', '--import', sandbox.recipient.privateFile]);
  const script = recipe
    .replace(/BUCKET/g, sandbox.bucket)
    .replace('"app"', JSON.stringify(db))
    .replace('gpg --decrypt', `gpg --homedir ${gnupg} --batch --quiet --decrypt`)
    .replace('pg_restore --dbname app_restored', `pg_restore -h ${PG.host} -U ${PG.user} --no-owner --exit-on-error --dbname ${target}`);
  return spawnSync('bash', ['-o', 'pipefail', '-c', script], {
    cwd: work,
    env: {
      ...process.env,
      AWS_ENDPOINT_URL: sandbox.account.clientConfig.endpoint,
      AWS_ACCESS_KEY_ID: sandbox.account.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: sandbox.account.credentials.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
    },
    encoding: 'utf8',
  });
}

after(async () => {
  await proxy?.close();
  await rt?.cleanup();
});

describe('segmented backups', () => {
  test('the dump is stored as full segments of 2 parts, listed in order in the format-2 manifest', async () => {
    assert.equal(manifest.formatVersion, 2);
    const segments = artifact.segments!;
    assert.ok(segments.length >= 3, `${segments.length} segments for ${artifact.ciphertextBytes} bytes`);
    assert.deepEqual(segments.map((s) => s.key), segments.map((_, i) => segmentKey(artifact.key, i + 1)));
    const keys = await sandbox.listKeys('backups/daily/testgroup/testhost/seg/');
    assert.deepEqual(keys.filter((k) => !k.endsWith('.manifest.json')).sort(), segments.map((s) => s.key).sort(), 'exactly the listed segments, no leftover');
    assert.deepEqual(await sandbox.openMultipartUploads(), []);
    const bodies = await Promise.all(segments.map((s) => sandbox.getObject(s.key)));
    segments.forEach((s, i) => {
      assert.equal(bodies[i].length, s.bytes, `segment ${i + 1} size`);
      assert.equal(createHash('sha256').update(bodies[i]).digest('hex'), s.sha256, `segment ${i + 1} SHA-256`);
      if (i < segments.length - 1) assert.equal(s.bytes, 2 * 5 * 1024 * 1024, 'every segment but the last is full');
    });
    const whole = Buffer.concat(bodies);
    assert.equal(whole.length, artifact.ciphertextBytes);
    assert.equal(createHash('sha256').update(whole).digest('hex'), artifact.ciphertextSha256);
    assert.equal(artifactObjects(artifact).reduce((n, o) => n + o.parts, 0), artifact.parts.sha256.length);
  });

  test('the README recipe without coldseal (jq, aws s3 cp, sha256sum, gpg, zstd, pg_restore) restores it', async () => {
    const target = rt.newPgDatabase('cs_segr');
    await createPgDatabase(target);
    const run = await runReadmeRecipe(manifestKey, target, 'recipe');
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(db));
  });

  test('coldseal restore reads across the segments and brings the database back equal', async () => {
    const target = rt.newPgDatabase('cs_segc');
    const result = await sandbox.runCli(['restore', '--config', configFile, '--source', 'seg', '--host', 'testhost', '--key', sandbox.recipient.privateFile, '--safety-dir', join(sandbox.dir, 'safety'), '--target', pgUrl(target), '--yes']);
    assert.equal(result.code, EXIT.OK, result.log);
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(db));
  });

  test('verify, verify --deep and the drill pass on the segmented backup', async () => {
    const plain = await sandbox.runCli(['verify', '--config', configFile, '--source', 'seg', '--host', 'testhost']);
    assert.equal(plain.code, EXIT.OK, `${plain.stdout}\n${plain.log}`);
    assert.match(plain.stdout, /\(\d+ segments\)/);
    const deep = await sandbox.runCli(['verify', '--config', configFile, '--source', 'seg', '--host', 'testhost', '--deep', '--key', sandbox.recipient.privateFile]);
    assert.equal(deep.code, EXIT.OK, `${deep.stdout}\n${deep.log}`);
    const drill = await sandbox.runCli(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, '--host', 'testhost', '--json']);
    assert.equal(drill.code, EXIT.OK, `${drill.stdout}\n${drill.log}`);
  });

  test('a segment more than the signed manifest lists fails verify', async () => {
    const extra = segmentKey(artifact.key, artifact.segments!.length + 1);
    await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: extra, Body: 'appended' }));
    const result = await sandbox.runCli(['verify', '--config', configFile, '--source', 'seg', '--host', 'testhost']);
    assert.equal(result.code, EXIT.INTEGRITY, `${result.stdout}\n${result.log}`);
    assert.ok(result.stdout.includes(`s3://${sandbox.bucket}/${extra} exists, but the signed manifest lists ${artifact.segments!.length} segment(s)`), result.stdout);
  });

  describe('a damaged or missing segment of the signed manifest is named', () => {
    const restoreDamaged = (config = damagedConfig, at: string[] = []) => sandbox.runCli(['restore', '--config', config, '--source', 'seg', '--host', 'damaged', ...at, '--key', sandbox.recipient.privateFile, '--output', join(sandbox.dir, `damaged-${Math.random().toString(36).slice(2)}.pgdump`)]);
    const url = (key: string) => `s3://${sandbox.bucket}/${key}`;
    /** Runs `check` with one byte of the second segment flipped, and puts the segment back after. */
    const withDamagedSecondSegment = async (check: (segment: { key: string }) => Promise<void>) => {
      const segment = damaged.segments![1];
      const original = await sandbox.getObject(segment.key);
      const broken = Buffer.from(original);
      broken[1000] ^= 0x01;
      await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: segment.key, Body: broken }));
      try {
        await check(segment);
      } finally {
        await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: segment.key, Body: original }));
      }
    };

    test('a damaged part in the second segment: restore names that segment object, the part and its byte range', async () => {
      await withDamagedSecondSegment(async (segment) => {
        const result = await restoreDamaged();
        assert.equal(result.code, EXIT.INTEGRITY, result.log);
        // Part 3 of the artifact is the second segment's first part: bytes 0-5242879 of that object.
        const expected = `checksum check failed: SHA-256 of part 3 of ${damaged.parts.sha256.length} (bytes 0-${5 * 1024 * 1024 - 1}) of segment 2 of ${damaged.segments!.length}, ${url(segment.key)} is `;
        assert.ok(result.log.includes(expected), `expected "${expected}" in:\n${result.log}`);
      });
    });

    test('the README recipe refuses a damaged segment before decrypting: sha256sum names it, and the database gets nothing', async () => {
      await withDamagedSecondSegment(async (segment) => {
        const target = rt.newPgDatabase('cs_segd');
        await createPgDatabase(target);
        const run = await runReadmeRecipe(damagedManifestKey, target, 'recipe-damaged');
        assert.notEqual(run.status, 0, 'the recipe fails');
        assert.ok(run.stdout.includes(`${segment.key}: FAILED`), `${run.stdout}\n${run.stderr}`);
        assert.deepEqual(await pgQuery(target, `select tablename from pg_tables where schemaname = 'public'`), [], 'nothing was restored');
      });
    });

    test('a listed segment that is gone: restore, verify and the drill fail the completeness check (exit 6), naming it', async () => {
      const segment = damaged.segments![1];
      await sandbox.s3.send(new DeleteObjectCommand({ Bucket: sandbox.bucket, Key: segment.key }));
      const missing = `segment 2 of ${damaged.segments!.length}, ${url(segment.key)} is missing although the signed manifest lists it`;
      const restored = await restoreDamaged();
      assert.equal(restored.code, EXIT.INTEGRITY, restored.log);
      assert.ok(restored.log.includes(`presence check failed: ${missing}`), restored.log);
      const verified = await sandbox.runCli(['verify', '--config', damagedConfig, '--source', 'seg', '--host', 'damaged']);
      assert.equal(verified.code, EXIT.INTEGRITY, `${verified.stdout}\n${verified.log}`);
      assert.ok(verified.stdout.includes(missing), verified.stdout);
      const drilled = await sandbox.runCli(['drill', '--config', damagedConfig, '--key', sandbox.recipient.privateFile, '--host', 'damaged', '--json']);
      assert.equal(drilled.code, EXIT.INTEGRITY, `${drilled.stdout}\n${drilled.log}`);
      assert.ok(drilled.stdout.includes(missing), drilled.stdout);
    });

    test('without s3:ListBucket S3 answers 403 for the gone segment: a listing of the group (the drill host may) still tells it is missing; without one, exit 5 says that nobody can tell', async () => {
      // Runs after the segment was deleted above. S3 answers the HEAD 403 to such a caller (the proxy plays that part).
      proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint, { withoutListBucket: { listablePrefixes: TIERS.map((tier) => groupPrefix(tier, 'testgroup')) } });
      const segment = damaged.segments![1];
      const viaProxy = (endpoint: string) => sandbox.writeConfig(sandbox.config({ host: 'damaged', endpoint, sources: [pgSource('seg', [db])] }));
      const drillHost = await restoreDamaged(viaProxy(proxy.url));
      assert.equal(drillHost.code, EXIT.INTEGRITY, drillHost.log);
      assert.ok(drillHost.log.includes(`presence check failed: segment 2 of ${damaged.segments!.length}, ${url(segment.key)} is missing although the signed manifest lists it`), drillHost.log);
      await proxy.close();

      proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint, { withoutListBucket: { listablePrefixes: [] } });
      const at = ['--at', damagedManifestKey];
      const unlisted = await restoreDamaged(viaProxy(proxy.url), at);
      assert.equal(unlisted.code, EXIT.STORAGE, unlisted.log);
      assert.ok(unlisted.log.includes(`${url(segment.key)} cannot be read: access denied, and these credentials may not list the bucket to tell whether it is missing`), unlisted.log);
      const verified = await sandbox.runCli(['verify', '--config', viaProxy(proxy.url), ...at]);
      assert.equal(verified.code, EXIT.INTEGRITY, `${verified.stdout}\n${verified.log}`);
      assert.ok(verified.stdout.includes(`segment 2 of ${damaged.segments!.length}, ${url(segment.key)} cannot be read: access denied`), verified.stdout);
    });
  });
});
