import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { walObjectKey } from '../../../format/layout';
import { Sha256Stream } from '../../../runtime/digest';
import type { WalRecord } from '../../../format/wal-record';
import type { PrivateKey, PublicKey } from '../../../runtime/pgp';
import { whyUnreadable } from '../../../runtime/s3-presence';
import { openWalRecord, WalRecordError } from '../../../runtime/wal-record';
import { ColdsealError, EXIT } from '../errors';
import { decryptWithGpg, decryptWithOpenpgp, type CiphertextFeed, type Decryption } from '../pipeline/decrypt';
import type { GpgHome } from '../pipeline/encrypt';
import { requireDecompressor, startDecompression } from '../pipeline/decompress';

/**
 * Reads one archived WAL object (format/wal-record.ts) into a local file, proving it on the way:
 * the signed record in its metadata (trusted signer, schema, the very key it sits under), the
 * cluster's system identifier, the ciphertext's size and SHA-256, OpenPGP's integrity check, and
 * the plaintext's size and SHA-256. One streaming pass (GET → decrypt → decompress → temp file):
 * nothing is buffered whole, and the file appears under its name (rename) only once every check
 * passed, so an unverified byte is never where PostgreSQL or the prefetch queue would take it.
 *
 * Decryption runs in openpgp.js by default: one key, decrypted once per process, serves every
 * segment, where gpg would import it into a throwaway keyring and start an agent for each
 * restore_command call. A long-lived caller (the prefetcher, wal-fetch.ts) passes a gpg keyring it
 * opened once instead: gpg decrypts several times faster than openpgp.js in CPU, and its output
 * goes straight to zstd without passing through Node. Either way it streams before the MDC is
 * checked (as restore does); the temp file is discarded unless the MDC and both digests match.
 */
export type WalReadFailureKind = 'missing' | 'integrity' | 'storage' | 'archived';

export class WalReadFailure extends Error {
  override readonly name = 'WalReadFailure';
  constructor(
    readonly kind: WalReadFailureKind,
    readonly walFile: string,
    message: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface WalObjectSource {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly trusted: readonly PublicKey[];
  readonly key: PrivateKey;
  /** When set, a record of another cluster is refused. */
  readonly systemIdentifier?: string;
  /** A throwaway keyring holding `key` (pipeline/decrypt.ts recipientKeyring): decrypt with gpg, the keyring left open. */
  readonly gpgKeyring?: GpgHome;
}

const TAMPERED_HINT = 'Do not use this object: find out who wrote or changed it (the bucket\'s CloudTrail data events), and restore to a point before this segment, or from the offsite replica';

/** Fetches, proves and decrypts `walFile` into `destination` (created, or replaced by rename). */
export async function fetchWalFile(from: WalObjectSource, walFile: string, destination: string): Promise<WalRecord> {
  const key = walObjectKey(from.group, from.host, from.source, walFile);
  const where = `s3://${from.bucket}/${key}`;
  let response;
  try {
    response = await from.s3.send(new GetObjectCommand({ Bucket: from.bucket, Key: key }));
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'InvalidObjectState') throw new WalReadFailure('archived', walFile, `${where} is in an archive storage class and must be retrieved first`, 'Start a retrieval of the WAL objects of this window (aws s3api restore-object), wait for it, and start the recovery again');
    const why = await whyUnreadable(from.s3, from.bucket, key, error).catch(() => undefined);
    if (why === 'missing') throw new WalReadFailure('missing', walFile, `${where} is not in the archive`, 'It was never archived, or it was deleted');
    if (why) throw new WalReadFailure('storage', walFile, `${where} cannot be read: ${why === 'denied' ? 'access denied' : 'access denied (and it cannot be listed to tell whether it exists)'}`, 'Use credentials allowed to read this group\'s WAL archive (s3:GetObject and s3:ListBucket on wal/…)', { cause: error });
    throw new WalReadFailure('storage', walFile, `reading ${where} failed: ${(error as Error).message}`, 'Check network access to S3 and the credentials; the recovery can be started again once S3 answers', { cause: error });
  }
  const body = response.Body as Readable | undefined;
  const discard = () => body?.destroy();
  let record: WalRecord;
  try {
    ({ record } = await openWalRecord(response.Metadata, from.trusted, key));
  } catch (error) {
    discard();
    if (error instanceof WalRecordError) throw new WalReadFailure('integrity', walFile, `WAL ${walFile}: ${error.message}`, TAMPERED_HINT, { cause: error });
    throw error;
  }
  if (from.systemIdentifier !== undefined && record.systemIdentifier !== from.systemIdentifier) {
    discard();
    throw new WalReadFailure('integrity', walFile, `WAL ${walFile} at ${where} belongs to database system ${record.systemIdentifier}, not ${from.systemIdentifier} (the base backup's)`, 'The archive under this source holds WAL of another cluster (re-initialized server?): restore from a base backup of that cluster, or to a point before it');
  }
  if (!body) throw new WalReadFailure('storage', walFile, `reading ${where} returned no body`, 'Start the recovery again');
  try {
    // No zstd engine on this host is neither a damaged object nor a missing one: its own error (what to install).
    requireDecompressor(record.compression);
  } catch (error) {
    discard();
    throw error;
  }

  const temp = `${destination}.coldseal-${process.pid}-${Math.random().toString(36).slice(2, 8)}.tmp`;
  try {
    const outcome = await decryptToFile(body, record, from, temp);
    const problems: string[] = [];
    if (outcome.readFailure) throw new WalReadFailure('storage', walFile, `reading ${where} failed midway: ${outcome.readFailure}`, 'Check network access to S3; the recovery can be started again once S3 answers');
    // The file could not be written: the decoders were stopped for it, so their verdicts say nothing.
    if (outcome.fileFailure) throw new WalReadFailure('storage', walFile, `writing ${temp} failed: ${outcome.fileFailure}`, 'Free disk space where the file goes (pg_wal or the spool directory) and start the recovery again');
    if (outcome.ciphertext.bytes !== record.ciphertextBytes || outcome.ciphertext.sha256 !== record.ciphertextSha256) {
      problems.push(`its ciphertext (${outcome.ciphertext.bytes} bytes, SHA-256 ${outcome.ciphertext.sha256}) is not what the signed record says (${record.ciphertextBytes} bytes, ${record.ciphertextSha256})`);
    } else if (outcome.decryptFailure) problems.push(outcome.decryptFailure === 'MDC' ? 'OpenPGP integrity check (MDC) failed' : `decryption failed: ${outcome.decryptFailure}`);
    else if (outcome.decompressFailure) problems.push(outcome.decompressFailure);
    else if (outcome.plaintext.bytes !== record.plaintextBytes || outcome.plaintext.sha256 !== record.plaintextSha256) {
      problems.push(`its plaintext (${outcome.plaintext.bytes} bytes, SHA-256 ${outcome.plaintext.sha256}) is not what the signed record says (${record.plaintextBytes} bytes, ${record.plaintextSha256})`);
    }
    if (problems.length > 0) throw new WalReadFailure('integrity', walFile, `WAL ${walFile} at ${where} failed its integrity check: ${problems.join('; ')}`, TAMPERED_HINT);
    if (outcome.writeFailure) throw new WalReadFailure('storage', walFile, `writing ${temp} failed: ${outcome.writeFailure}`, 'Free disk space where the file goes (pg_wal or the spool directory) and start the recovery again');
    await rename(temp, destination);
    return record;
  } catch (error) {
    await rm(temp, { force: true });
    if (error instanceof WalReadFailure) throw error;
    if (error instanceof ColdsealError) throw new WalReadFailure('integrity', walFile, `WAL ${walFile} at ${where}: ${error.message}`, error.hint ?? TAMPERED_HINT, { cause: error });
    throw new WalReadFailure('integrity', walFile, `WAL ${walFile} at ${where} could not be decrypted: ${(error as Error).message}`, TAMPERED_HINT, { cause: error });
  }
}

const BODY_IDLE_MS = 60_000;


interface DecryptOutcome {
  readonly ciphertext: { bytes: number; sha256: string };
  readonly plaintext: { bytes: number; sha256: string };
  readonly readFailure?: string;
  readonly decryptFailure?: string;
  readonly decompressFailure?: string;
  readonly writeFailure?: string;
  /** The temp file itself could not be created or written (the decoders were stopped). */
  readonly fileFailure?: string;
}

/** The object's body through decryption and decompression into `path`, hashing both ends; every failure is reported, none thrown. */
async function decryptToFile(body: Readable, record: WalRecord, from: Pick<WalObjectSource, 'key' | 'gpgKeyring'>, path: string): Promise<DecryptOutcome> {
  const cipherHash = new Sha256Stream();
  let readFailure: string | undefined;
  const feed: CiphertextFeed = {
    done: Promise.resolve(null),
    start(into) {
      // A broken socket is ours to report; the decryptor closing its input (and so the body) first
      // is the decryptor's to report.
      body.once('error', (error) => {
        if (!into.destroyed) readFailure = error.message;
      });
      // A body that stops arriving would hold recovery forever: after a minute without a byte it
      // is a failed read (exit 126; the recovery can be started again).
      let idle = setTimeout(() => body.destroy(new Error(`no data from S3 for ${BODY_IDLE_MS / 1000} s`)), BODY_IDLE_MS);
      body.on('data', () => {
        clearTimeout(idle);
        idle = setTimeout(() => body.destroy(new Error(`no data from S3 for ${BODY_IDLE_MS / 1000} s`)), BODY_IDLE_MS);
      });
      body.once('close', () => clearTimeout(idle));
      pipeline(body, cipherHash, into, () => undefined);
    },
    stop: () => body.destroy(),
  };
  let decryption: Decryption;
  try {
    decryption = from.gpgKeyring ? await decryptWithGpg(feed, Promise.resolve(from.gpgKeyring), { shared: true }) : await decryptWithOpenpgp(feed, from.key);
  } catch (error) {
    body.destroy();
    // The hash covers what was received: a foreign object then fails its SHA-256 check, which
    // names the cause better than "not an OpenPGP message".
    return { ciphertext: cipherHash.digest(), plaintext: { bytes: 0, sha256: '' }, readFailure, decryptFailure: (error as Error).message };
  }
  const decompression = startDecompression(record.compression, decryption, undefined, undefined);
  const plainHash = new Sha256Stream();
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  let fileFailure: string | undefined;
  file.once('error', (error) => {
    fileFailure = error.message;
    // Nobody reads the plaintext any more: stopped, zstd and gpg would block on their full pipes
    // for ever (a prefetcher whose spool was removed hung so).
    decompression.kill();
    decryption.kill();
    body.destroy();
  });
  const written = new Promise<string | undefined>((resolve) => {
    pipeline(decompression.plaintext, plainHash, file, (error) => resolve(fileFailure ?? (error ? error.message : undefined)));
  });
  const [decryptFailure, decompressFailure, writeFailure] = await Promise.all([decryption.done, decompression.decompressed, written]);
  if (decryptFailure) decompression.kill();
  return {
    ciphertext: cipherHash.digest(),
    plaintext: plainHash.digest(),
    ...(readFailure ? { readFailure } : {}),
    ...(decryptFailure ? { decryptFailure } : {}),
    ...(decompressFailure ? { decompressFailure } : {}),
    ...(writeFailure ? { writeFailure } : {}),
    ...(fileFailure ? { fileFailure } : {}),
  };
}

/** For callers that hold ColdsealErrors (list, restore): a failure with the exit code of its kind. */
export function asColdsealError(failure: WalReadFailure): ColdsealError {
  const code = failure.kind === 'integrity' ? EXIT.INTEGRITY : failure.kind === 'missing' ? EXIT.NOT_FOUND : failure.kind === 'archived' ? EXIT.ARCHIVED : EXIT.STORAGE;
  return new ColdsealError(code, failure.message, failure.hint, { cause: failure });
}
