import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Manifest } from '../../format/manifest';
import { generateKeyPair, readPrivateKey } from '../../runtime/pgp';
import { peekManifest, signManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { pgContentFingerprint, pgSource, pgUrl, uniqueDbName } from '../../local-system/databases';

/**
 * Damaged and tampered backups are refused with a message naming the failed check, and the
 * target database is not touched (not even a safety dump is taken: that comes after the checks).
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let safetyDir: string;
const sourceDb = uniqueDbName('cs_tsrc');
const targetDb = uniqueDbName('cs_ttgt');
let targetPrint: Record<string, string>;
const configs = new Map<string, string>();
const CASES = ['flip', 'flipgz', 'trunc', 'edited', 'forged', 'wrongkey', 'nomanifest'] as const;

async function manifestOf(host: string): Promise<{ key: string; text: string; manifest: Manifest }> {
  const [key] = (await sandbox.listKeys(`backups/daily/testgroup/${host}/pg/`)).filter((k) => k.endsWith('.manifest.json'));
  const text = (await sandbox.getObject(key)).toString('utf8');
  return { key, text, manifest: peekManifest(text) };
}

function restore(host: string, args: string[] = []) {
  return sandbox.runCli(['restore', '--config', configs.get(host)!, '--source', 'pg', '--host', host, '--key', sandbox.recipient.privateFile, '--safety-dir', safetyDir, '--target', pgUrl(targetDb), '--yes', ...args]);
}

async function assertTargetUntouched(): Promise<void> {
  assert.deepEqual(await pgContentFingerprint(targetDb), targetPrint, 'target database unchanged');
  assert.deepEqual(readdirSync(safetyDir), [], 'no safety dump was taken');
}

async function put(key: string, body: Buffer | string): Promise<void> {
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: key, Body: body }));
}

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  safetyDir = rt.tempDir('coldseal-tamper-safety-');
  await Promise.all([rt.pgFixture(sourceDb, 2000), rt.pgFixture(targetDb, 10)]);
  targetPrint = await pgContentFingerprint(targetDb);
  await Promise.all(
    CASES.map(async (host) => {
      const config = sandbox.config({
        host,
        sources: [pgSource('pg', [sourceDb])],
        ...(host === 'flipgz' ? { compression: { algorithm: 'gzip' as const } } : {}),
      });
      configs.set(host, await rt.backup(config));
    }),
  );
});

after(() => rt?.cleanup());

describe('tampered and damaged backups are refused before any byte reaches the database', () => {
  for (const host of ['flip', 'flipgz']) {
    test(`a flipped byte in the ciphertext (${host === 'flip' ? 'zstd' : 'gzip'}): checksum check fails`, async () => {
      const { manifest } = await manifestOf(host);
      const artifact = manifest.artifacts[0];
      const data = await sandbox.getObject(artifact.key);
      data[Math.floor(data.length / 2)] ^= 0x01;
      await put(artifact.key, data);
      const result = await restore(host);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      assert.match(result.stderr, /checksum check failed: SHA-256 of part \d+ of \d+ \(bytes \d+-\d+\) of s3:\/\/\S+ is [0-9a-f]{64}, the signed manifest says [0-9a-f]{64}: the ciphertext was altered or damaged/);
      await assertTargetUntouched();
    });
  }

  test('a truncated object: size check fails', async () => {
    const { manifest } = await manifestOf('trunc');
    const artifact = manifest.artifacts[0];
    const data = await sandbox.getObject(artifact.key);
    await put(artifact.key, data.subarray(0, Math.floor(data.length * 0.6)));
    const result = await restore('trunc');
    assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
    assert.match(result.stderr, /size check failed: \S+ is \d+ bytes but the signed manifest says \d+: the object is truncated/);
    await assertTargetUntouched();
  });

  test('a manifest edited after signing: signature check fails', async () => {
    const { key, text, manifest } = await manifestOf('edited');
    const envelope = JSON.parse(text) as { payload: string };
    // Point the manifest at a ciphertext of the attacker's choosing: only the digest changes.
    envelope.payload = envelope.payload.replace(manifest.artifacts[0].ciphertextSha256, 'f'.repeat(64));
    await put(key, JSON.stringify({ ...JSON.parse(text), payload: envelope.payload }));
    const result = await restore('edited');
    assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
    assert.match(result.stderr, /signature check failed for s3:\/\/\S+: manifest signature check failed: signature does not match the content \(edited after signing\?\)/);
    await assertTargetUntouched();
  });

  test('a backup signed by another key: refused as an untrusted signer', async () => {
    const { key, manifest } = await manifestOf('forged');
    const other = await generateKeyPair({ name: 'mallory' });
    const otherKey = await readPrivateKey(other.privateKey, 'mallory');
    await put(key, await signManifest({ ...manifest, signingKeyFingerprint: other.fingerprint }, otherKey));
    const result = await restore('forged');
    assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
    assert.match(result.stderr, /signature check failed for s3:\/\/\S+: manifest signature check failed: signed by key id [0-9a-f]{16}, which is not a trusted signing key of this group/);
    await assertTargetUntouched();
  });

  test('the wrong private key: refused, naming the recipients the backup is for', async () => {
    const other = await generateKeyPair({ name: 'someone else' });
    const file = join(sandbox.dir, 'other.key.asc');
    writeFileSync(file, other.privateKey, { mode: 0o600 });
    const result = await restore('wrongkey', ['--key', file]);
    assert.equal(result.code, EXIT.KEYS, result.stderr);
    assert.match(result.stderr, new RegExp(`the private key ${other.fingerprint} cannot decrypt this backup: it is encrypted to key ids [0-9a-f]{16} \\(recipient fingerprints ${sandbox.recipient.fingerprint}\\)`));
    await assertTargetUntouched();
  });

  test('a refusal after the first part leaves no keyring behind (it is made while that part is fetched)', () => {
    // The restore runs with its own /dev/shm (a directory of ours, bind-mounted in a private mount
    // namespace), where the throwaway gpg keyring holding the private key is made: what is left
    // there afterwards is this run's alone, whatever other tests run meanwhile.
    const shm = mkdtempSync(join(sandbox.dir, 'shm-'));
    const other = join(sandbox.dir, 'other.key.asc');
    const run = spawnSync(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /dev/shm && exec "$@"', shm, process.execPath, '--import', 'tsx', join(__dirname, '..', '..', 'agent', 'src', 'cli.ts'), 'restore', '--config', configs.get('wrongkey')!, '--source', 'pg', '--host', 'wrongkey', '--key', other, '--output', join(sandbox.dir, 'never.pgdump')],
      { env: { ...process.env, ...sandbox.account.env, NODE_NO_WARNINGS: '1' }, encoding: 'utf8' },
    );
    assert.equal(run.status, EXIT.KEYS, run.stderr);
    assert.match(run.stderr, /cannot decrypt this backup/);
    assert.deepEqual(readdirSync(shm), [], 'the keyring (and its private key) is removed when the restore is refused');
  });

  test('a missing manifest: the dump is never used, and "latest" does not pick it', async () => {
    const { key, manifest } = await manifestOf('nomanifest');
    await sandbox.s3.send(new DeleteObjectCommand({ Bucket: sandbox.bucket, Key: key }));
    const byKey = await restore('nomanifest', ['--at', manifest.artifacts[0].key]);
    assert.equal(byKey.code, EXIT.NOT_FOUND, byKey.stderr);
    assert.match(byKey.stderr, /manifest s3:\/\/\S+ does not exist: that backup was never committed/);
    const latest = await restore('nomanifest');
    assert.equal(latest.code, EXIT.NOT_FOUND, latest.stderr);
    assert.match(latest.stderr, /no complete backup of source .{1,2}pg.{1,2} on host nomanifest in group testgroup \(1 incomplete, without a manifest\)/);
    await assertTargetUntouched();
  });

  test('without --host, "latest" of a source that several hosts back up is refused rather than guessed', async () => {
    const result = await sandbox.runCli(['restore', '--config', configs.get('flip')!, '--source', 'pg', '--key', sandbox.recipient.privateFile, '--output', join(sandbox.dir, 'never.pgdump')]);
    // The config names host "flip", but restore does not default to it: a restore host is often another machine.
    assert.equal(result.code, EXIT.USAGE, result.stderr);
    assert.match(result.stderr, /is backed up by several hosts \(edited, flip, flipgz, forged, trunc, wrongkey\).*--host/s);
  });
});
