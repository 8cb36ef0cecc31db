import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { artifactKey, manifestKey, stampOf, walObjectKey } from '../../format/layout';
import type { BaseBackup, Manifest } from '../../format/manifest';
import { WAL_RECORD_FORMAT_VERSION, type WalRecord } from '../../format/wal-record';
import { DigestStream } from '../../runtime/digest';
import { encryptionKeyIds, fingerprintOf, PGP_CONFIG, readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { signManifest } from '../../runtime/signed-document';
import { signWalRecord } from '../../runtime/wal-record';
import type { AgentSandbox } from './agent';

/**
 * WAL objects in the archive contract (format/wal-record.ts, format/layout.ts walObjectKey)
 * written the way `coldseal pitr archive-push` writes them: compressed, encrypted to the sandbox's
 * recipients (SEIPDv1), the signed record in the object's own metadata, one PutObject with
 * If-None-Match: *. Also the signed manifest of a base backup, so that a test has a recovery
 * window without running pg_basebackup.
 */
export const SYSTEM_IDENTIFIER = '7451234567890123456';

export interface WalWrite {
  readonly source: string;
  readonly walFile: string;
  readonly plaintext: Buffer;
  readonly walSegmentSize: number;
  readonly systemIdentifier?: string;
  readonly compression?: WalRecord['compression'];
  /** Armored private signing key; the sandbox's by default. */
  readonly signingKey?: string;
  /** Where to put it; the walFile's own key by default (a test may misplace an object on purpose). */
  readonly key?: string;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Compressed, encrypted and signed: the object's body and metadata, not yet stored. */
export async function sealWal(sandbox: AgentSandbox, write: WalWrite): Promise<{ body: Uint8Array; metadata: Record<string, string>; record: WalRecord }> {
  const compression = write.compression ?? 'zstd';
  const compressed = compression === 'zstd' ? execFileSync('zstd', ['-3', '-c', '-q'], { input: write.plaintext, maxBuffer: 1 << 30 }) : compression === 'gzip' ? gzipSync(write.plaintext) : write.plaintext;
  const recipients = await readPublicKeys(sandbox.recipient.publicKey, 'recipient');
  const body = (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: compressed }), encryptionKeys: recipients, format: 'binary', config: PGP_CONFIG })) as Uint8Array;
  const signingKey = await readPrivateKey(write.signingKey ?? sandbox.signing.privateKey, 'test signing key');
  const record: WalRecord = {
    formatVersion: WAL_RECORD_FORMAT_VERSION,
    group: 'testgroup',
    host: 'testhost',
    source: write.source,
    walFile: write.walFile,
    systemIdentifier: write.systemIdentifier ?? SYSTEM_IDENTIFIER,
    walSegmentSize: write.walSegmentSize,
    plaintextBytes: write.plaintext.length,
    plaintextSha256: sha256(write.plaintext),
    ciphertextBytes: body.length,
    ciphertextSha256: sha256(body),
    compression,
    recipientKeyIds: await encryptionKeyIds(recipients),
    signingKeyFingerprint: fingerprintOf(signingKey),
    archivedAt: new Date().toISOString(),
    agentVersion: 'test-harness',
  };
  return { body, metadata: await signWalRecord(record, signingKey), record };
}

export async function archiveWal(sandbox: AgentSandbox, write: WalWrite): Promise<{ key: string; record: WalRecord }> {
  const { body, metadata, record } = await sealWal(sandbox, write);
  const key = write.key ?? walObjectKey('testgroup', 'testhost', write.source, write.walFile);
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: key, Body: body, Metadata: metadata, IfNoneMatch: '*' }));
  return { key, record };
}

/**
 * Plaintext standing in for a WAL segment: `size` bytes that name the file (so a swapped segment
 * shows) and compress like WAL does (runs of structure, some noise).
 */
export function fakeSegment(walFile: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let state = createHash('sha256').update(walFile).digest();
  for (let offset = 0; offset < size; offset += 64) {
    state = createHash('sha256').update(state).digest();
    out.write(`${walFile}@${offset.toString(16)}:`, offset, 'latin1');
    state.copy(out, offset + 40, 0, Math.min(8, Math.max(0, size - offset - 40)));
  }
  return out;
}

/** A committed base backup of `source` (its ciphertext is a stand-in: only its manifest is read by list). */
export async function putBaseBackup(sandbox: AgentSandbox, source: string, finishedAt: Date, baseBackup: Omit<BaseBackup, 'backupLabel' | 'tablespaceMap' | 'walArchived' | 'stopWalFile'> & { stopWalFile?: string }): Promise<string> {
  const loc = { tier: 'daily', group: 'testgroup', host: 'testhost', source } as const;
  const stamp = stampOf(finishedAt);
  const recipients = await readPublicKeys(sandbox.recipient.publicKey, 'recipient');
  const ciphertext = (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: Buffer.from('not a real base backup') }), encryptionKeys: recipients, format: 'binary', config: PGP_CONFIG })) as Uint8Array;
  const digest = new DigestStream(8 * 1024 * 1024);
  digest.update(ciphertext);
  const d = digest.finish();
  const key = artifactKey(loc, stamp, 'cluster', 'tar.zst');
  const signingKey = await readPrivateKey(sandbox.signing.privateKey, 'test signing key');
  const time = finishedAt.toISOString();
  const manifest: Manifest = {
    formatVersion: 2,
    ...loc,
    stamp,
    engine: { kind: 'postgres', version: '15' },
    startedAt: time,
    finishedAt: time,
    compression: { algorithm: 'zstd', level: 3, implementation: 'test' },
    encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', recipientFingerprints: recipients.map(fingerprintOf), recipientKeyIds: await encryptionKeyIds(recipients) },
    signingKeyFingerprint: fingerprintOf(signingKey),
    artifacts: [
      {
        name: 'cluster',
        kind: 'cluster',
        key,
        contentFormat: 'pg-base-tar',
        tool: { name: 'pg_basebackup', version: '15', args: ['-Ft', '-D', '-'] },
        exitCode: 0,
        warnings: [],
        completion: { method: 'exit-status', detail: 'pg_basebackup exited 0' },
        startedAt: time,
        finishedAt: time,
        uncompressedBytes: 22,
        compressedBytes: 22,
        ciphertextBytes: d.bytes,
        ciphertextSha256: d.sha256,
        parts: { size: d.partSize, sha256: d.partSha256 },
        segments: [{ key, bytes: d.bytes, sha256: d.sha256, parts: 1 }],
        baseBackup: { backupLabel: 'START WAL LOCATION: test\n', tablespaceMap: null, walArchived: true, stopWalFile: baseBackup.startWalFile, ...baseBackup },
      },
    ],
    agent: { version: 'test-harness', node: process.version },
  };
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: key, Body: ciphertext }));
  const mKey = manifestKey(loc, stamp);
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: mKey, Body: await signManifest(manifest, signingKey) }));
  return mKey;
}
