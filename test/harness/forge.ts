import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Manifest } from '../../format/manifest';
import { readPrivateKey } from '../../runtime/pgp';
import { peekManifest, signManifest } from '../../runtime/signed-document';
import type { AgentSandbox } from './agent';

/**
 * A backup whose every byte check passes but whose content is what the test says: the plaintext
 * is compressed, encrypted to the sandbox's recipient, its digests recorded and the manifest signed
 * again with the sandbox's own signing key (as a buggy or compromised host could). It lets a test
 * make a restore fail at the very end (a missing trailer, a script that errors halfway) after
 * every byte has gone into the staging area.
 */
export async function forgeArtifact(sandbox: AgentSandbox, manifestKey: string, name: string, plaintext: Buffer): Promise<Manifest> {
  const manifest = peekManifest((await sandbox.getObject(manifestKey)).toString('utf8'));
  const artifact = manifest.artifacts.find((a) => a.name === name);
  if (!artifact) throw new Error(`no artifact ${name} in ${manifestKey}`);
  if (manifest.compression.algorithm !== 'zstd') throw new Error('forgeArtifact makes zstd backups only');
  const compressed = execFileSync('zstd', ['-3', '-c', '-q'], { input: plaintext, maxBuffer: 1024 * 1024 * 1024 });
  const home = mkdtempSync(join(tmpdir(), 'coldseal-forge-'));
  let ciphertext: Buffer;
  try {
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--import', sandbox.recipient.publicFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    ciphertext = execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--trust-model', 'always', '--compress-algo', 'none', '--cipher-algo', 'AES256', '--encrypt', '--recipient', sandbox.recipient.fingerprint, '--output', '-'], {
      input: compressed,
      maxBuffer: 1024 * 1024 * 1024,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const parts: string[] = [];
  for (let offset = 0; offset < ciphertext.length; offset += artifact.parts.size) parts.push(sha(ciphertext.subarray(offset, offset + artifact.parts.size)));
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: artifact.key, Body: ciphertext }));
  const forged: Manifest = {
    ...manifest,
    artifacts: manifest.artifacts.map((a) =>
      a !== artifact
        ? a
        : {
            ...a,
            uncompressedBytes: plaintext.length,
            compressedBytes: compressed.length,
            ciphertextBytes: ciphertext.length,
            ciphertextSha256: sha(ciphertext),
            parts: { size: a.parts.size, sha256: parts },
            segments: a.segments ? [{ key: a.key, bytes: ciphertext.length, sha256: sha(ciphertext), parts: parts.length }] : undefined,
          },
    ),
  };
  const key = await readPrivateKey(sandbox.signing.privateKey, 'test signing key');
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: manifestKey, Body: await signManifest(forged, key) }));
  return forged;
}
