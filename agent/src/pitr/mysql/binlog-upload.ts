import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ChildProcess } from 'node:child_process';
import { S3Client } from '@aws-sdk/client-s3';
import type { AgentConfig } from '../../../../format/agent-config';
import type { BinlogRecord } from '../../../../format/binlog-record';
import { binlogObjectKey } from '../../../../format/layout';
import { openBinlogRecord, signBinlogRecord } from '../../../../runtime/binlog-record';
import { DigestStream } from '../../../../runtime/digest';
import { fingerprintOf, type PublicKey } from '../../../../runtime/pgp';
import type { AgentClients } from '../../aws';
import type { Keys } from '../../backup/run';
import { ColdsealError, EXIT } from '../../errors';
import type { Log } from '../../log';
import { startCompressor, type CompressionChoice } from '../../pipeline/compression';
import { startEncryption, type Encryptor } from '../../pipeline/encrypt';
import { lastLines } from '../../process-output';
import { AGENT_VERSION } from '../../version';
import { confirmArchivedCopy, logStorageError, putLogObject, type LogStorageAdvice } from '../log-object-put';
import { BinlogFormatError, BinlogScanStream, type BinlogFacts } from './binlog-events';

/**
 * Archives ONE closed binary log file: read → (scan: checks and facts, binlog-events.ts) →
 * compress → OpenPGP encrypt → a spool file beside the state, then ONE conditional PutObject
 * (`If-None-Match: *`) whose user metadata carries the signed record (format/binlog-record.ts),
 * as WAL files are (../wal-upload.ts says why a 412 is then judged on the archived record's
 * plaintext SHA-256: the same file archived before is fine, other content is an integrity failure
 * and nothing is overwritten).
 *
 * Unlike a WAL segment, a binary log can be up to max_binlog_size (1 GiB by default), so the
 * ciphertext is spooled to disk, never held in memory: a PutObject needs its length and SHA-256
 * before the first byte (a single PUT takes up to 5 GB:
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html). A run killed
 * mid-upload leaves at most a spool file (removed by the next run) and no object: S3 stores a
 * PutObject whole or not at all.
 */

export interface BinlogArchiveContext {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly host: string;
  readonly source: string;
  readonly keys: Keys;
  readonly trustedSigningKeys: readonly PublicKey[];
  readonly encryptor: Encryptor;
  readonly compression: CompressionChoice;
  readonly spoolDir: string;
  readonly now: () => Date;
  readonly signal?: AbortSignal;
  /** Called with plaintext bytes as they are read (progress). */
  readonly onBytes?: (bytes: number) => void;
}

export interface BinlogUploadResult {
  readonly binlogFile: string;
  readonly key: string;
  readonly outcome: 'archived' | 'already-archived';
  readonly facts: BinlogFacts;
  readonly ciphertextBytes: number;
}

/** A file whose archived copy differs (or whose archived record cannot be trusted). */
export class BinlogIntegrityError extends ColdsealError {
  constructor(
    message: string,
    hint: string,
    readonly binlogFile: string,
    readonly key: string,
  ) {
    super(EXIT.INTEGRITY, message, hint);
  }
}

const UPLOAD_ATTEMPTS = 3;

/**
 * The S3 client for spooled uploads: one attempt per request, since the SDK never retries a
 * stream body (it has consumed it); archiveBinlogFile retries with a fresh stream of the spool
 * file. Its logger is quiet: the SDK would print "An error was encountered in a non-retryable
 * streaming request" on stderr for every 412, which archiveBinlogFile answers and logs itself.
 */
export function spoolUploadClient(config: AgentConfig): S3Client {
  const quiet = () => undefined;
  return new S3Client({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint, forcePathStyle: true } : {}),
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    expectContinueHeader: false,
    logger: { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
  });
}

export async function archiveBinlogFile(ctx: BinlogArchiveContext, s3: S3Client, file: { readonly path: string; readonly binlogFile: string; readonly expectedBytes?: number }): Promise<BinlogUploadResult> {
  const { config } = ctx;
  const key = binlogObjectKey(config.group, ctx.host, ctx.source, file.binlogFile);
  const spool = join(ctx.spoolDir, `${file.binlogFile}.pgp.partial`);
  try {
    const encoded = await encodeBinlog(ctx, file.path, file.binlogFile, spool);
    const { facts } = encoded;
    if (file.expectedBytes !== undefined && facts.bytes !== file.expectedBytes) {
      throw new ColdsealError(EXIT.SOURCE, `${file.binlogFile} is ${facts.bytes} bytes, but the server lists it with ${file.expectedBytes}`, 'A closed binary log never changes: check what writes into the binlog directory (pitr.binlogDir)');
    }
    const record: BinlogRecord = {
      formatVersion: 1,
      kind: 'binlog',
      group: config.group,
      host: ctx.host,
      source: ctx.source,
      binlogFile: file.binlogFile,
      flavor: facts.flavor,
      serverVersion: facts.serverVersion,
      serverId: facts.serverId,
      gtidStart: facts.gtidStart,
      gtidEnd: facts.gtidEnd,
      openedAt: facts.openedAt,
      closedAt: facts.closedAt,
      endsWith: facts.endsWith,
      transactions: facts.transactions,
      firstCommitAt: facts.firstCommitAt,
      lastCommitAt: facts.lastCommitAt,
      plaintextBytes: facts.bytes,
      plaintextSha256: facts.sha256,
      ciphertextBytes: encoded.ciphertextBytes,
      ciphertextSha256: encoded.ciphertextSha256,
      compression: ctx.compression.algorithm,
      recipientKeyIds: ctx.keys.recipientKeyIds,
      signingKeyFingerprint: fingerprintOf(ctx.keys.signingKey),
      archivedAt: ctx.now().toISOString(),
      agentVersion: AGENT_VERSION,
    };
    const metadata = await signBinlogRecord(record, ctx.keys.signingKey);
    const result = { binlogFile: file.binlogFile, key, facts, ciphertextBytes: encoded.ciphertextBytes };
    const outcome = await putLogObject({
      s3,
      config,
      key,
      body: () => createReadStream(spool),
      ciphertextBytes: encoded.ciphertextBytes,
      ciphertextSha256: encoded.ciphertextSha256,
      metadata,
      now: ctx.now(),
      signal: ctx.signal,
      // 409: another writer of the same key is in flight; S3 asks to retry
      // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
      retryAfterMs: ({ status, name, attempt }) => {
        const retriable = status === 409 || status === undefined || status >= 500 || status === 429;
        if (!retriable || attempt >= UPLOAD_ATTEMPTS) return null;
        ctx.log.debug(`upload of ${file.binlogFile} failed (${name ?? status}), retrying`, { binlogFile: file.binlogFile, attempt });
        return 500 * attempt;
      },
      onExists: () => compareWithArchived(ctx, key, file.binlogFile, facts.sha256),
      fail: (error) => storageError(error, config.bucket, key),
    });
    return { ...result, outcome };
  } finally {
    await rm(spool, { force: true });
  }
}

async function compareWithArchived(ctx: BinlogArchiveContext, key: string, binlogFile: string, plaintextSha256: string): Promise<'already-archived'> {
  await confirmArchivedCopy<BinlogRecord>({
    s3: ctx.clients.s3,
    bucket: ctx.config.bucket,
    key,
    plaintextSha256,
    signal: ctx.signal,
    open: async (metadata) => (await openBinlogRecord(metadata, ctx.trustedSigningKeys, key)).record,
    readFailed: (error) => storageError(error, ctx.config.bucket, key, `${binlogFile} exists in the archive, but reading its record failed`),
    untrusted: (error, location) =>
      new BinlogIntegrityError(
        `${binlogFile} is already in the archive (${location}) but its record cannot be trusted: ${error.message}`,
        'Nothing was overwritten. Find out who wrote that object (CloudTrail); until then this binary log is not archived: keep it on the server (do not purge it)',
        binlogFile,
        key,
      ),
    differs: (archived, location) =>
      new BinlogIntegrityError(
        `${binlogFile} is already in the archive (${location}, archived ${archived.archivedAt} from server id ${archived.serverId}) with different content (plaintext SHA-256 ${archived.plaintextSha256}, this file ${plaintextSha256})`,
        'Nothing was overwritten. Two servers may be archiving to the same source name, or the server\'s logs were reset (RESET MASTER) or the server rebuilt without a new source: give each server its own source name',
        binlogFile,
        key,
      ),
  });
  ctx.log.info('already archived', { binlogFile, key, plaintextSha256 });
  return 'already-archived';
}

const BINLOG_STORAGE_ADVICE: LogStorageAdvice = {
  timedOut: 'Check network access to S3; the next binlog-push archives the file',
  noCredentials: 'Give the host an instance profile (or AWS_* settings in the timer\'s environment)',
  failed: 'Check network access to S3; the server keeps the binary log and the next binlog-push archives it',
};

function storageError(error: Error, bucket: string, key: string, what = 'upload'): ColdsealError {
  return logStorageError(error, bucket, key, what, BINLOG_STORAGE_ADVICE);
}

function exitOf(child: ChildProcess | undefined): Promise<string | undefined> {
  if (!child) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('close', (code, signal) => resolve(code === 0 ? undefined : (signal ?? `status ${code}`)));
  });
}

interface EncodedBinlog {
  readonly facts: BinlogFacts;
  readonly ciphertextBytes: number;
  readonly ciphertextSha256: string;
}

/** The one pass: file → scan (hash, checks, facts) → compress → encrypt → digest → spool file. */
async function encodeBinlog(ctx: BinlogArchiveContext, path: string, binlogFile: string, spool: string): Promise<EncodedBinlog> {
  const scan = new BinlogScanStream(binlogFile, ctx.onBytes);
  const compressor = startCompressor(ctx.compression);
  const compressorExit = exitOf(compressor.child);
  const direct = compressor.child !== undefined && ctx.encryptor.kind === 'gpg';
  const encryption = await startEncryption(ctx.encryptor, compressor.output, { direct }).catch((error: unknown) => {
    compressor.child?.kill('SIGKILL');
    throw error;
  });
  const encryptorExit = exitOf(encryption.child);
  const plaintext = pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), scan, compressor.input!, ctx.signal ? { signal: ctx.signal } : {});
  const digest = new DigestStream(2 ** 40);
  const ciphertext = pipeline(encryption.output, digest, createWriteStream(spool, { flags: 'w', mode: 0o600 }));
  const [read, written, compressorFailure, encryptorFailure] = await Promise.allSettled([plaintext, ciphertext, compressorExit, encryptorExit, encryption.inputDone]);
  if (read.status === 'rejected') {
    compressor.child?.kill('SIGKILL');
    encryption.child?.kill('SIGKILL');
    const error = read.reason as Error;
    if (error instanceof BinlogFormatError) throw new ColdsealError(EXIT.SOURCE, `refusing to archive ${error.message}`, 'Nothing was uploaded for this file. A corrupt binary log cannot be replayed: take a backup now, and check the disk and the server\'s error log');
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ColdsealError(EXIT.SOURCE, `${binlogFile} is gone from ${path}`, 'The server purged it while it was read: the next run reports the lost range');
    const failure = (encryptorFailure.status === 'fulfilled' && encryptorFailure.value) || (compressorFailure.status === 'fulfilled' && compressorFailure.value);
    if (!failure) throw new ColdsealError(EXIT.SOURCE, `reading ${path} failed: ${error.message}`, 'Check the file and the binlog directory\'s permissions (the agent reads it as root, or set "read": "server")');
  }
  if (compressorFailure.status === 'fulfilled' && compressorFailure.value) throw new ColdsealError(EXIT.FAILURE, `zstd failed on ${path} (${compressorFailure.value}): ${lastLines(compressor.stderrTail(), 2)}`, 'Check free memory and the zstd installation');
  if (encryptorFailure.status === 'fulfilled' && encryptorFailure.value) throw new ColdsealError(EXIT.FAILURE, `gpg failed to encrypt ${path} (${encryptorFailure.value}): ${lastLines(encryption.stderrTail(), 2)}`, 'Set encryption.implementation to "openpgp.js" to encrypt without gpg');
  if (written.status === 'rejected') throw new ColdsealError(EXIT.FAILURE, `writing the spool file ${spool} failed: ${(written.reason as Error).message}`, 'Check free space in the state directory');
  const facts = scan.facts();
  const compressed = compressor.uncompressedBytes() ?? facts.bytes;
  if (compressed !== facts.bytes) throw new ColdsealError(EXIT.SOURCE, `${path} changed size while it was read (${facts.bytes} hashed, ${compressed} compressed)`, 'A closed binary log never changes: check what writes into the binlog directory');
  const d = digest.finish();
  return { facts, ciphertextBytes: d.bytes, ciphertextSha256: d.sha256 };
}
