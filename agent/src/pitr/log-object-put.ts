import type { Readable } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { AgentConfig } from '../../../format/agent-config';
import { WalRecordError } from '../../../runtime/wal-record';
import { ColdsealError, EXIT } from '../errors';

/**
 * The one write of a log object (a WAL file, a binary log file): a conditional PutObject
 * (If-None-Match: *) with its signed record as user metadata, the ciphertext's SHA-256 for S3 to
 * check, SSE-KMS and the daily tier's Object Lock. Shared by archive-push (wal-upload.ts) and
 * binlog-push (mysql/binlog-upload.ts); each decides which failures it retries, and words what an
 * existing object with other content means (confirmArchivedCopy).
 */

/** Log objects serve the backups of every tier: they are locked like the daily tier, the shortest. */
export function logObjectLockParams(config: AgentConfig, now: Date): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
  const lock = config.objectLock.daily;
  if (!lock) return {};
  return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(now.getTime() + lock.days * 86_400_000) };
}

export interface LogObjectPut<T> {
  readonly s3: S3Client;
  readonly config: AgentConfig;
  readonly key: string;
  /** A fresh body for each attempt: the SDK never retries a stream body, so a retry needs a new one. */
  readonly body: () => Buffer | Readable;
  readonly ciphertextBytes: number;
  readonly ciphertextSha256: string;
  readonly metadata: Record<string, string>;
  readonly now: Date;
  readonly signal?: AbortSignal;
  /** The wait before another attempt after this failure, or null to give up (the error is then `fail`ed). */
  retryAfterMs(failure: { status: number | undefined; name: string | undefined; attempt: number }): number | null;
  /** The key exists already (412): what that means is the caller's to judge (the same content, or a conflict). */
  onExists(): Promise<T>;
  fail(error: Error): Error;
}

export async function putLogObject<T>(p: LogObjectPut<T>): Promise<'archived' | T> {
  const { config } = p;
  for (let attempt = 1; ; attempt++) {
    try {
      await p.s3.send(
        new PutObjectCommand({
          Bucket: config.bucket,
          Key: p.key,
          Body: p.body(),
          ContentLength: p.ciphertextBytes,
          ContentType: 'application/pgp-encrypted',
          // Write-once: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
          IfNoneMatch: '*',
          ChecksumAlgorithm: 'SHA256',
          ChecksumSHA256: Buffer.from(p.ciphertextSha256, 'hex').toString('base64'),
          Metadata: p.metadata,
          StorageClass: config.upload.storageClass,
          ...(config.upload.kmsKeyId ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: config.upload.kmsKeyId, BucketKeyEnabled: true } : {}),
          ...logObjectLockParams(config, p.now),
        }),
        { abortSignal: p.signal },
      );
      return 'archived';
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const name = (error as { name?: string }).name;
      if (status === 412 || name === 'PreconditionFailed') return p.onExists();
      const wait = name === 'AbortError' || p.signal?.aborted ? null : p.retryAfterMs({ status, name, attempt });
      if (wait === null) throw p.fail(error as Error);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

export interface ArchivedCopyCheck<R extends { readonly plaintextSha256: string }> {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly plaintextSha256: string;
  readonly signal?: AbortSignal;
  /** Opens and checks the object's signed record (throws WalRecordError when it cannot be trusted). */
  open(metadata: Record<string, string> | undefined): Promise<R>;
  readFailed(error: Error): Error;
  untrusted(error: WalRecordError, location: string): Error;
  differs(archived: R, location: string): Error;
}

/**
 * After a 412: the key holds an object already. It counts as this very file only if its signed
 * record is trusted and names the same plaintext SHA-256 (ciphertext differs on every run);
 * anything else is thrown as the caller words it, and nothing is overwritten.
 */
export async function confirmArchivedCopy<R extends { readonly plaintextSha256: string }>(c: ArchivedCopyCheck<R>): Promise<R> {
  const location = `s3://${c.bucket}/${c.key}`;
  let metadata: Record<string, string> | undefined;
  try {
    metadata = (await c.s3.send(new HeadObjectCommand({ Bucket: c.bucket, Key: c.key }), { abortSignal: c.signal })).Metadata;
  } catch (error) {
    throw c.readFailed(error as Error);
  }
  let archived: R;
  try {
    archived = await c.open(metadata);
  } catch (error) {
    if (!(error instanceof WalRecordError)) throw error;
    throw c.untrusted(error, location);
  }
  if (archived.plaintextSha256 !== c.plaintextSha256) throw c.differs(archived, location);
  return archived;
}

/** What a host is told to do about a failed write of a log object, in the words of its archiver. */
export interface LogStorageAdvice {
  /** The write did not finish in time. */
  readonly timedOut: string;
  /** The SDK found no credentials. */
  readonly noCredentials: string;
  /** Any other failure (network, 5xx). */
  readonly failed: string;
}

/**
 * An S3 failure while writing (or reading back) a log object, as EXIT.STORAGE: one classification
 * for WAL and binary logs (the archivers differ only in what they tell the host); a refusal by
 * S3 always means the instance policy.
 */
export function logStorageError(error: Error, bucket: string, key: string, what: string, advice: LogStorageAdvice): ColdsealError {
  const name = (error as { name?: string }).name ?? '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (name === 'AbortError') return new ColdsealError(EXIT.STORAGE, `${what} to s3://${bucket}/${key} did not finish in time`, advice.timedOut, { cause: error });
  if (name === 'CredentialsProviderError') return new ColdsealError(EXIT.STORAGE, `no AWS credentials for s3://${bucket}/${key}`, advice.noCredentials, { cause: error });
  if (status === 403 || name === 'AccessDenied') return new ColdsealError(EXIT.STORAGE, `S3 refused ${what} to s3://${bucket}/${key}: ${error.message}`, 'Attach the coldseal instance policy of this group to the host\'s role', { cause: error });
  return new ColdsealError(EXIT.STORAGE, `${what} to s3://${bucket}/${key} failed: ${error.message}`, advice.failed, { cause: error });
}
