import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactObjects, openManifest, readPublicKeys, segmentKey, type Artifact, type Manifest } from '../../format';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { createPgDatabase, pgContentFingerprint, pgQuery, pgSource, pgUrl, PG } from '../../e2e/databases';

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
});

after(() => rt?.cleanup());

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

  test('the README recipe without coldseal (jq, aws s3 cp, gpg, zstd, pg_restore) restores it', async () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const recipe = /```sh\n(jq -r '\.payload \| fromjson[^`]+?)```/.exec(readme)?.[1];
    assert.ok(recipe, 'the README has the segmented recipe');
    const target = rt.newPgDatabase('cs_segr');
    await createPgDatabase(target);
    const manifestFile = join(sandbox.dir, 'm.manifest.json');
    writeFileSync(manifestFile, await sandbox.getObject(manifestKey));
    const gnupg = join(sandbox.dir, 'gnupg-recipe');
    execFileSync('mkdir', ['-m', '700', '-p', gnupg]);
    execFileSync('gpg', ['--homedir', gnupg, '--batch', '--quiet', '--import', sandbox.recipient.privateFile]);
    const script = recipe
      .replace(/BUCKET/g, sandbox.bucket)
      .replace('"app"', JSON.stringify(db))
      .replace('gpg --decrypt', `gpg --homedir ${gnupg} --batch --quiet --decrypt`)
      .replace('pg_restore --dbname app_restored', `pg_restore -h ${PG.host} -U ${PG.user} --no-owner --exit-on-error --dbname ${target}`);
    execFileSync('bash', ['-o', 'pipefail', '-c', script], {
      cwd: sandbox.dir,
      env: {
        ...process.env,
        AWS_ENDPOINT_URL: sandbox.account.clientConfig.endpoint,
        AWS_ACCESS_KEY_ID: sandbox.account.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: sandbox.account.credentials.secretAccessKey,
        AWS_DEFAULT_REGION: 'us-east-1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
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
});
