import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Transform, pipeline, type TransformCallback } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import type { AgentConfig } from '../../../format/agent-config';
import { walObjectKey } from '../../../format/layout';
import { parseWalFileName } from '../../../format/wal';
import type { WalRecord } from '../../../format/wal-record';
import { DigestStream } from '../../../runtime/digest';
import { fingerprintOf, type PublicKey } from '../../../runtime/pgp';
import { openWalRecord, signWalRecord } from '../../../runtime/wal-record';
import type { AgentClients } from '../aws';
import type { Keys } from '../backup/run';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';
import { startCompressor, type CompressionChoice } from '../pipeline/compression';
import { startEncryption, type Encryptor } from '../pipeline/encrypt';
import { lastLines } from '../process-output';
import { AGENT_VERSION } from '../version';
import { readSegmentHeader, type ClusterIdentity } from './cluster-files';
import { confirmArchivedCopy, logStorageError, putLogObject, type LogStorageAdvice } from './log-object-put';

/**
 * Archives ONE WAL file (segment, .history, .backup or .partial): read → compress → OpenPGP
 * encrypt → SHA-256, then ONE conditional PutObject whose user metadata carries the signed record
 * (format/wal-record.ts). The plaintext streams through (hashed on the way); the ciphertext is
 * buffered, at most about one segment (≤ 64 MiB), because a PutObject with its SHA-256 checksum
 * header needs the length and the digest before the first byte is sent.
 *
 * "Written once": `If-None-Match: *` makes S3 refuse (412 Precondition Failed) a write to a key
 * that exists (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html,
 * "How to prevent object overwrites with conditional writes"; a concurrent conditional write of the
 * same key gets 409 ConditionalRequestConflict and may be retried). Then the existing object's
 * signed record decides: the same plaintext SHA-256 is the same file archived before (PostgreSQL
 * retries a file whose archive_command's success it did not record); a different one is an
 * integrity failure, never an overwrite, so a `.history` file is never replaced.
 */

/** WAL segments are buffered (ciphertext) in memory: larger wal_segment_size values are refused. */
export const MAX_WAL_FILE_BYTES = 64 * 1024 * 1024;

export interface WalArchiveContext {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly host: string;
  readonly source: string;
  readonly keys: Keys;
  /** The group's signing keys a record already in S3 may be signed by (this host's own at least). */
  readonly trustedSigningKeys: readonly PublicKey[];
  readonly encryptor: Encryptor;
  readonly compression: CompressionChoice;
  readonly cluster: ClusterIdentity;
  readonly now: () => Date;
  /** Stops in-flight S3 requests (the call's deadline). */
  readonly signal?: AbortSignal;
}

export interface WalUploadResult {
  readonly walFile: string;
  readonly key: string;
  readonly outcome: 'archived' | 'already-archived';
  readonly plaintextBytes: number;
  readonly ciphertextBytes: number;
  readonly plaintextSha256: string;
}

/** A WAL file whose archived copy differs from the file (or whose record fails its checks). */
export class WalIntegrityError extends ColdsealError {
  constructor(
    message: string,
    hint: string,
    readonly walFile: string,
    readonly key: string,
  ) {
    super(EXIT.INTEGRITY, message, hint);
  }
}

export async function archiveWalFile(ctx: WalArchiveContext, file: { readonly path: string; readonly walFile: string }): Promise<WalUploadResult> {
  const { config, cluster } = ctx;
  let parsed;
  try {
    parsed = parseWalFileName(file.walFile);
  } catch (error) {
    throw new ColdsealError(EXIT.USAGE, (error as Error).message, 'archive_command passes %f, the WAL file name, as the second argument');
  }
  const key = walObjectKey(config.group, ctx.host, ctx.source, file.walFile);
  const size = await stat(file.path).then(
    (s) => s.size,
    (error: NodeJS.ErrnoException) => {
      throw new ColdsealError(EXIT.SOURCE, `cannot read WAL file ${file.path}: ${error.code ?? error.message}`, 'archive_command passes %p, the path relative to the data directory it runs in, as the first argument');
    },
  );
  if (size > MAX_WAL_FILE_BYTES) {
    throw new ColdsealError(
      EXIT.CONFIG,
      `WAL file ${file.walFile} is ${size} bytes: coldseal archives WAL files of at most ${MAX_WAL_FILE_BYTES / 1048576} MiB (it holds one in memory)`,
      'This cluster was initialised with a wal_segment_size above 64 MB (initdb --wal-segsize): archive it with another tool, or re-initialise with 64 MB or less',
    );
  }
  if (parsed.kind === 'segment' || parsed.kind === 'partial') {
    // A segment of another cluster or size in this pg_wal would poison the archive: refuse it loudly.
    const header = await readSegmentHeader(file.path).catch((error: Error) => {
      throw new ColdsealError(EXIT.SOURCE, `WAL file ${file.walFile} has no valid header: ${error.message}`, 'The file is not a WAL segment of this cluster: check pg_wal');
    });
    if (header.systemIdentifier !== cluster.systemIdentifier || header.walSegmentSize !== cluster.walSegmentSize || (parsed.kind === 'segment' && size !== cluster.walSegmentSize)) {
      throw new ColdsealError(
        EXIT.SOURCE,
        `WAL file ${file.walFile} (system ${header.systemIdentifier}, segment size ${header.walSegmentSize}, ${size} bytes) does not belong to this cluster (system ${cluster.systemIdentifier}, segment size ${cluster.walSegmentSize})`,
        'Nothing was archived: find out how a foreign or truncated segment got into pg_wal',
      );
    }
  }

  const encoded = await encodeWalFile(ctx, file.path, size);
  const record: WalRecord = {
    formatVersion: 1,
    group: config.group,
    host: ctx.host,
    source: ctx.source,
    walFile: file.walFile,
    systemIdentifier: cluster.systemIdentifier,
    walSegmentSize: cluster.walSegmentSize,
    plaintextBytes: encoded.plaintextBytes,
    plaintextSha256: encoded.plaintextSha256,
    ciphertextBytes: encoded.ciphertext.length,
    ciphertextSha256: encoded.ciphertextSha256,
    compression: ctx.compression.algorithm,
    recipientKeyIds: ctx.keys.recipientKeyIds,
    signingKeyFingerprint: fingerprintOf(ctx.keys.signingKey),
    archivedAt: ctx.now().toISOString(),
    agentVersion: AGENT_VERSION,
  };
  const metadata = await signWalRecord(record, ctx.keys.signingKey);
  const result = { walFile: file.walFile, key, plaintextBytes: encoded.plaintextBytes, ciphertextBytes: encoded.ciphertext.length, plaintextSha256: encoded.plaintextSha256 };

  const outcome = await putLogObject({
    s3: ctx.clients.s3,
    config,
    key,
    body: () => encoded.ciphertext,
    ciphertextBytes: encoded.ciphertext.length,
    ciphertextSha256: encoded.ciphertextSha256,
    metadata,
    now: ctx.now(),
    signal: ctx.signal,
    // Another writer of the same key is in flight: S3 asks to retry (conditional-writes page above).
    retryAfterMs: ({ status, name, attempt }) => ((status === 409 || name === 'ConditionalRequestConflict') && attempt < 3 ? 200 * attempt : null),
    onExists: () => compareWithArchived(ctx, key, file.walFile, encoded.plaintextSha256),
    fail: (error) => storageError(error, config.bucket, key),
  });
  return { ...result, outcome };
}

async function compareWithArchived(ctx: WalArchiveContext, key: string, walFile: string, plaintextSha256: string): Promise<'already-archived'> {
  await confirmArchivedCopy<WalRecord>({
    s3: ctx.clients.s3,
    bucket: ctx.config.bucket,
    key,
    plaintextSha256,
    signal: ctx.signal,
    open: async (metadata) => (await openWalRecord(metadata, ctx.trustedSigningKeys, key)).record,
    readFailed: (error) => storageError(error, ctx.config.bucket, key, `${walFile} exists in the archive, but reading its record failed`),
    untrusted: (error, location) =>
      new WalIntegrityError(
        `${walFile} is already in the archive (${location}) but its record cannot be trusted: ${error.message}`,
        'Nothing was overwritten. Find out who wrote that object (CloudTrail); until then this WAL file is not archived and PostgreSQL keeps it in pg_wal',
        walFile,
        key,
      ),
    differs: (archived, location) =>
      new WalIntegrityError(
        `${walFile} is already in the archive (${location}, archived ${archived.archivedAt} from system ${archived.systemIdentifier}) with different content (plaintext SHA-256 ${archived.plaintextSha256}, this file ${plaintextSha256})`,
        'Nothing was overwritten. Two clusters may be archiving to the same source name, or a cluster was restored or re-initialised without a new source: give each cluster its own source name',
        walFile,
        key,
      ),
  });
  ctx.log.info('already archived', { walFile, key, plaintextSha256 });
  return 'already-archived';
}

const WAL_STORAGE_ADVICE: LogStorageAdvice = {
  timedOut: 'Check network access to S3; PostgreSQL retries the WAL file',
  noCredentials: 'archive_command runs as the PostgreSQL server\'s user with its environment: give the host an instance profile, or AWS_* settings in the server\'s environment',
  failed: 'Check network access to S3; PostgreSQL keeps the WAL file and retries',
};

function storageError(error: Error, bucket: string, key: string, what = 'upload'): ColdsealError {
  return logStorageError(error, bucket, key, what, WAL_STORAGE_ADVICE);
}

interface EncodedWal {
  readonly plaintextBytes: number;
  readonly plaintextSha256: string;
  readonly ciphertext: Buffer;
  readonly ciphertextSha256: string;
}

/** Hashes and counts plaintext on its way to the compressor (gzip, in Node). */
class PlaintextHash extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function exitOf(child: ChildProcess | undefined): Promise<string | undefined> {
  if (!child) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('close', (code, signal) => resolve(code === 0 ? undefined : (signal ?? `status ${code}`)));
  });
}

/** SHA-256 and length of an open file, read by position (the descriptor's offset is zstd's) through one reused buffer. */
async function hashFile(handle: FileHandle): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return { bytes: position, sha256: hash.digest('hex') };
}

/**
 * The same compress → encrypt pipeline as dumps (pipeline/compression.ts, pipeline/encrypt.ts),
 * ending in a bounded buffer. With the zstd child the plaintext never passes through Node's streams: zstd
 * reads the file from its descriptor while Node hashes it by position with one reused buffer (a
 * segment marked .ready never changes, and the length is checked), which keeps a push-ahead of
 * many segments light on memory and CPU.
 */
async function encodeWalFile(ctx: WalArchiveContext, path: string, size: number): Promise<EncodedWal> {
  const handle = ctx.compression.runsIn === 'child' ? await open(path, 'r') : undefined;
  try {
    const compressor = startCompressor(ctx.compression, handle?.fd);
    const compressorExit = exitOf(compressor.child);
    const direct = compressor.child !== undefined && ctx.encryptor.kind === 'gpg';
    const encryption = await startEncryption(ctx.encryptor, compressor.output, { direct }).catch((error: unknown) => {
      compressor.child?.kill('SIGKILL');
      throw error;
    });
    const encryptorExit = exitOf(encryption.child);
    let plaintext: Promise<{ bytes: number; sha256: string }>;
    if (handle) {
      plaintext = hashFile(handle);
    } else {
      const hasher = new PlaintextHash();
      plaintext = new Promise((resolve, reject) =>
        pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), hasher, compressor.input!, (error) => (error ? reject(error) : resolve({ bytes: hasher.bytes, sha256: hasher.hash.digest('hex') }))),
      );
    }
    plaintext.catch(() => undefined);

    // zstd and OpenPGP add a few hundred bytes to incompressible input; more means something is wrong.
    const limit = size + Math.ceil(size / 64) + 65536;
    const digest = new DigestStream(limit + 1);
    // One buffer of the largest possible ciphertext, filled in place: collecting chunks and joining
    // them held each file's ciphertext twice at its end. It is allocated uninitialised (outside
    // V8's heap), so its pages cost memory as they are written, not before.
    const ciphertext = Buffer.allocUnsafe(limit);
    let length = 0;
    try {
      for await (const chunk of encryption.output as AsyncIterable<Buffer>) {
        digest.update(chunk);
        if (length + chunk.length > limit) throw new ColdsealError(EXIT.FAILURE, `the ciphertext of ${path} grew past ${limit} bytes`, 'This is a bug: please report it');
        chunk.copy(ciphertext, length);
        length += chunk.length;
      }
    } catch (error) {
      compressor.child?.kill('SIGKILL');
      encryption.child?.kill('SIGKILL');
      throw error;
    }
    const [compressorFailure, encryptorFailure] = await Promise.all([compressorExit, encryptorExit, encryption.inputDone]);
    const read = await plaintext.catch((error: Error) => {
      throw new ColdsealError(EXIT.SOURCE, `reading ${path} failed: ${error.message}`, 'Check the file and the data directory\'s permissions');
    });
    if (compressorFailure) throw new ColdsealError(EXIT.FAILURE, `zstd failed on ${path} (${compressorFailure}): ${lastLines(compressor.stderrTail(), 2)}`, 'Check free memory and the zstd installation');
    if (encryptorFailure) throw new ColdsealError(EXIT.FAILURE, `gpg failed to encrypt ${path} (${encryptorFailure}): ${lastLines(encryption.stderrTail(), 2)}`, 'Set encryption.implementation to "openpgp.js" to encrypt without gpg');
    // zstd -vv reports what it read: the same length as hashed, or the file changed under us.
    const compressed = compressor.uncompressedBytes() ?? read.bytes;
    if (read.bytes !== size || compressed !== size) throw new ColdsealError(EXIT.SOURCE, `${path} changed size while it was read (${size} → ${read.bytes}/${compressed} bytes)`, 'A WAL file marked .ready never changes: check what writes into pg_wal');
    return { plaintextBytes: read.bytes, plaintextSha256: read.sha256, ciphertext: ciphertext.subarray(0, length), ciphertextSha256: digest.finish().sha256 };
  } finally {
    await handle?.close();
  }
}
