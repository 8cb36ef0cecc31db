import { spawn } from 'node:child_process';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as openpgp from 'openpgp';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DigestStream } from '../../../format/digest';
import type { Artifact, Manifest } from '../../../format/manifest';
import { fingerprintOf, PGP_CONFIG, type PrivateKey } from '../../../format/pgp';
import { ColdsealError, EXIT } from '../errors';
import { webToNode } from '../pipeline/streams';
import { keepTail, lastLines } from '../process-output';

/**
 * The backup pipeline in reverse, as one stream: S3 GetObject → SHA-256 (against the signed
 * manifest) → OpenPGP decryption → decompression → plaintext. Memory stays at a few MiB whatever
 * the size: openpgp.js is told to stream before the MDC is checked (allowUnauthenticatedStream),
 * which is safe here because nothing is trusted until `finished` resolves, and a restore only
 * feeds a database in a second pass over the exact object version a first pass proved good.
 */
export interface PlaintextOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly manifest: Manifest;
  readonly artifact: Artifact;
  readonly key: PrivateKey;
  /** Read exactly this object version (the one a first pass checked). */
  readonly pin?: ObjectPin;
  readonly onProgress?: (ciphertextBytes: number) => void;
}

export interface ObjectPin {
  readonly etag?: string;
  readonly versionId?: string;
}

export interface OpenedPlaintext {
  readonly plaintext: Readable;
  /**
   * Resolves once the whole ciphertext was read and matched the manifest's size and SHA-256, the
   * OpenPGP integrity check (MDC) passed and the decompressor finished cleanly. Rejects with a
   * ColdsealError naming the first check that failed.
   */
  readonly finished: Promise<ObjectPin & { ciphertextBytes: number }>;
  /** Stops reading (a consumer failed): kills the decompressor and closes the S3 stream. */
  abort(): void;
}

const CHUNK = 1024 * 1024;

function integrity(check: string, message: string, hint = 'Do not use this backup: restore an older one (coldseal list), and find out how the object changed (S3 access logs, versions)'): ColdsealError {
  return new ColdsealError(EXIT.INTEGRITY, `${check} check failed: ${message}`, hint);
}

export function sameKeyIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

export async function openPlaintext(options: PlaintextOptions): Promise<OpenedPlaintext> {
  const { s3, bucket, manifest, artifact, key } = options;
  const where = `s3://${bucket}/${artifact.key}`;
  let object;
  try {
    object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: artifact.key, ...(options.pin?.versionId ? { VersionId: options.pin.versionId } : {}), ...(options.pin?.etag ? { IfMatch: options.pin.etag } : {}) }));
  } catch (error) {
    const name = (error as { name?: string }).name ?? '';
    if (name === 'NoSuchKey' || name === 'NotFound') throw integrity('presence', `${where} is missing although the signed manifest lists it`);
    if (name === 'InvalidObjectState') throw new ColdsealError(EXIT.ARCHIVED, `${where} is archived and has no restored copy`, 'Run coldseal restore with --retrieval-tier to bring it back first');
    if (name === 'PreconditionFailed') throw integrity('object version', `${where} changed between the verification pass and the restore pass`);
    throw new ColdsealError(EXIT.STORAGE, `reading ${where} failed: ${(error as Error).message}`, 'Check network access and your permissions on the bucket', { cause: error });
  }
  const body = object.Body as Readable;
  if (object.ContentLength !== undefined && object.ContentLength !== artifact.ciphertextBytes) {
    body.destroy();
    throw integrity('size', `${where} is ${object.ContentLength} bytes but the signed manifest says ${artifact.ciphertextBytes}: the object is ${object.ContentLength < artifact.ciphertextBytes ? 'truncated' : 'not the one that was backed up'}`);
  }
  const pin: ObjectPin = { etag: object.ETag, versionId: object.VersionId };

  // --- ciphertext: read in order, hashed, re-chunked to ~1 MiB for openpgp.js ------------------
  const digest = new DigestStream(artifact.parts.size);
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let reading: Promise<IteratorResult<Buffer>> = Promise.resolve({ done: false, value: Buffer.alloc(0) });
  let ended = false;
  // Reads are serialized: openpgp's pulls and a drain after a downstream failure share one iterator.
  const next = (): Promise<IteratorResult<Buffer>> => (reading = reading.then(() => (ended ? { done: true, value: undefined } : iterator.next())));
  let resolveVerdict!: (error: ColdsealError | null) => void;
  const verdict = new Promise<ColdsealError | null>((resolve) => (resolveVerdict = resolve));
  const readChunk = async (): Promise<Buffer | null> => {
    const parts: Buffer[] = [];
    let size = 0;
    while (size < CHUNK) {
      let step: IteratorResult<Buffer>;
      try {
        step = await next();
      } catch (error) {
        const failure = new ColdsealError(EXIT.STORAGE, `reading ${where} broke off after ${digest.bytesSoFar} bytes: ${(error as Error).message}`, 'Check the network and run again');
        resolveVerdict(failure);
        throw failure;
      }
      if (step.done) {
        if (!ended) {
          ended = true;
          const d = digest.finish();
          if (d.bytes !== artifact.ciphertextBytes) resolveVerdict(integrity('checksum', `${where} gave ${d.bytes} bytes, the signed manifest says ${artifact.ciphertextBytes}: truncated`));
          else if (d.sha256 !== artifact.ciphertextSha256) resolveVerdict(integrity('checksum', `SHA-256 of ${where} is ${d.sha256}, the signed manifest says ${artifact.ciphertextSha256}: the ciphertext was altered or damaged`));
          else resolveVerdict(null);
        }
        break;
      }
      digest.update(step.value);
      options.onProgress?.(digest.bytesSoFar);
      parts.push(step.value);
      size += step.value.length;
    }
    return size ? (parts.length === 1 ? parts[0] : Buffer.concat(parts, size)) : null;
  };
  let aborted = false;
  const drain = async (): Promise<void> => {
    try {
      while (!ended && !aborted) if ((await readChunk()) === null) break;
    } catch {
      // the verdict already says why
    }
  };
  const ciphertext = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const chunk = await readChunk();
          if (chunk) return controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          const failure = await verdict;
          if (failure) controller.error(failure);
          else controller.close();
        } catch (error) {
          controller.error(error);
        }
      },
    },
    { highWaterMark: 0 },
  );

  // --- OpenPGP: addressees first (cheap, from the PKESK packets), then decryption ---------------
  let message: openpgp.Message<ReadableStream<Uint8Array>>;
  try {
    message = await openpgp.readMessage({ binaryMessage: ciphertext });
  } catch (error) {
    body.destroy();
    throw integrity('format', `${where} is not an OpenPGP message (${(error as Error).message})`);
  }
  const addressees = message.getEncryptionKeyIDs().map((id) => id.toHex().toLowerCase());
  if (!sameKeyIds(addressees, manifest.encryption.recipientKeyIds)) {
    body.destroy();
    throw integrity('recipients', `${where} is encrypted to key ids ${addressees.join(', ') || '(none)'} but the signed manifest says ${manifest.encryption.recipientKeyIds.join(', ')}`);
  }
  const ours = key.getKeyIDs().map((id) => id.toHex().toLowerCase());
  if (!addressees.some((id) => ours.includes(id))) {
    body.destroy();
    throw new ColdsealError(
      EXIT.KEYS,
      `the private key ${fingerprintOf(key)} cannot decrypt this backup: it is encrypted to key ids ${addressees.join(', ')} (recipient fingerprints ${manifest.encryption.recipientFingerprints.join(', ')})`,
      'Give the recipient private key this backup was encrypted to (--key FILE)',
    );
  }
  let decrypted: ReadableStream<Uint8Array>;
  try {
    const result = await openpgp.decrypt({ message, decryptionKeys: key, format: 'binary', config: { ...PGP_CONFIG, allowUnauthenticatedStream: true } });
    decrypted = result.data as unknown as ReadableStream<Uint8Array>;
  } catch (error) {
    body.destroy();
    const failure = await Promise.race([verdict, new Promise<null>((r) => setTimeout(() => r(null), 0))]);
    if (failure) throw failure;
    throw new ColdsealError(EXIT.KEYS, `decrypting ${where} failed: ${(error as Error).message}`, 'Check that the key is the recipient key of this backup and not damaged');
  }

  // --- decompression ------------------------------------------------------------------------------
  const decryptedNode = webToNode(decrypted);
  const algorithm = manifest.compression.algorithm;
  let plaintext: Readable;
  let decompressed: Promise<string | null>;
  let upstream: Promise<Error | null>;
  let kill = () => {};
  if (algorithm === 'zstd') {
    const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr = keepTail(child.stderr, 2048);
    child.stdin.on('error', () => undefined);
    upstream = new Promise((resolve) => pipeline(decryptedNode, child.stdin, (error) => resolve(error ?? null)));
    decompressed = new Promise((resolve) => {
      child.once('error', (error) => resolve(`zstd could not be started (${error.message}): install zstd`));
      child.once('close', (code, signal) => resolve(code === 0 ? null : `zstd -d failed (${signal ?? `status ${code}`}): ${lastLines(stderr(), 1)}`));
    });
    plaintext = child.stdout;
    kill = () => child.kill('SIGKILL');
  } else {
    const out = algorithm === 'gzip' ? createGunzip() : new PassThrough();
    let decompressError: string | null = null;
    upstream = new Promise((resolve) =>
      pipeline(decryptedNode, out, (error) => {
        if (error && (error as NodeJS.ErrnoException).code?.startsWith('Z_')) decompressError = `gunzip failed: ${error.message}`;
        resolve(error && !decompressError ? error : null);
      }),
    );
    decompressed = upstream.then(() => decompressError);
    plaintext = out;
    kill = () => out.destroy();
  }

  const finished = (async () => {
    const [upstreamError, decompressError] = await Promise.all([upstream, decompressed]);
    if (upstreamError || decompressError) {
      if (aborted) throw new ColdsealError(EXIT.FAILURE, `reading ${where} was stopped`);
      // The checksum is the root cause when it fails: read the rest of the object to know.
      await drain();
      const failure = await verdict;
      if (failure) throw failure;
      if (upstreamError instanceof ColdsealError) throw upstreamError;
      if (upstreamError) {
        if (/Modification detected|MDC/i.test(upstreamError.message)) throw integrity('decryption', `the OpenPGP integrity code (MDC) of ${where} does not match: the message was altered`);
        throw integrity('decryption', `decrypting ${where} failed: ${upstreamError.message}`);
      }
      throw integrity('decompression', `${decompressError} while decompressing ${where}: the dump inside is damaged`);
    }
    const failure = await verdict;
    if (failure) throw failure;
    return { ...pin, ciphertextBytes: digest.bytesSoFar };
  })();
  finished.catch(() => undefined);

  return {
    plaintext,
    finished,
    abort: () => {
      aborted = true;
      kill();
      decryptedNode.destroy();
      body.destroy();
    },
  };
}
