import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable, Writable } from 'node:stream';
import { sameKeyIds } from '../../../format/backup-judgement';
import type { Artifact, Manifest } from '../../../format/manifest';
import { objectLabel } from '../../../format/ranges';
import { PartReader, PartReadError, type ObjectPin, type PartBufferPool, type VerifiedPart } from '../../../runtime/part-reader';
import { fingerprintOf, messageRecipientKeyIds, type PrivateKey } from '../../../runtime/pgp';
import { s3PartFetcher } from '../../../runtime/s3-part-fetcher';
import { unreadableMessage } from '../../../runtime/s3-presence';
import { ColdsealError, EXIT } from '../errors';
import { requireDecompressor, startDecompression } from '../pipeline/decompress';
import { chooseDecryption, decryptWithGpg, decryptWithOpenpgp, feedCiphertext, OPENPGP_JS_WINDOW, recipientKeyring, type CiphertextFeed, type Decryption, type DecryptionPreference } from '../pipeline/decrypt';

export type { ObjectPin } from '../../../runtime/part-reader';

/**
 * The backup pipeline in reverse, as one stream, in one pass: parallel ranged GETs (PartReader)
 * → each part's SHA-256 checked against the signed manifest BEFORE its bytes go on → OpenPGP
 * decryption (the host's gpg when it has one, as backup does; openpgp.js otherwise) →
 * decompression (zstd as a child process, or Node's own zstd without one) → plaintext. A changed byte is refused before any byte
 * of its part reaches decryption, let alone a target; the whole SHA-256, the OpenPGP integrity
 * code (MDC), the decompressor's own checks and (for the caller) the completion trailer are still
 * checked at the end, and `finished` reports the first that failed. Memory: the reader's window
 * ((parts in flight + the one handed on) × part size) plus a constant.
 */
export interface PlaintextOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly manifest: Manifest;
  readonly artifact: Artifact;
  readonly key: PrivateKey;
  /** Read exactly this object version. */
  readonly pin?: ObjectPin;
  readonly onProgress?: (ciphertextBytes: number) => void;
  /** @default 'auto' (gpg when on PATH, else openpgp.js); COLDSEAL_DECRYPT overrides 'auto'. */
  readonly decryption?: DecryptionPreference;
  /**
   * Write the plaintext to this file descriptor instead of handing it to Node: gpg's stdout goes
   * straight into zstd's stdin and zstd writes the file itself, so no decrypted byte is copied
   * through Node (that hop cost ~2 CPU-s per 0.3 GB, half the speed of the shell pipeline).
   * `plaintext` is then an empty stream; the caller closes the descriptor after `finished`.
   */
  readonly plaintextFd?: number;
  /**
   * Called once the first part is checked, before decryption starts: a child's stdin returned here gets
   * zstd's output directly (the sink is only created now, after the caller's own preparations,
   * so no plaintext can reach it earlier). Undefined keeps the plaintext in `plaintext`.
   */
  readonly plaintextTo?: () => Promise<Writable | undefined>;
  /** Read only the first parts (enough for an archive's head); the read then ends early, by design. */
  readonly maxParts?: number;
  /** Part buffers shared with the run's other reads (a head read ahead, the other artifacts). */
  readonly buffers?: PartBufferPool;
}

export interface OpenedPlaintext {
  readonly plaintext: Readable;
  /**
   * Resolves once every part matched the manifest, the whole ciphertext matched its size and
   * SHA-256, the OpenPGP integrity check (MDC) passed and the decompressor finished cleanly.
   * Rejects with a ColdsealError naming the first check that failed.
   */
  readonly finished: Promise<ObjectPin & { ciphertextBytes: number; plaintextBytes?: number }>;
  /** Which engine decrypts ("gpg 2.2.40" or "openpgp.js 6.x"). */
  readonly decryptedBy: string;
  /** Stops reading (a consumer failed): kills the children and aborts the reads. */
  abort(): void;
}

function integrity(check: string, message: string, hint = 'Do not use this backup: restore an older one (coldseal list), and find out how the object changed (S3 access logs, versions)'): ColdsealError {
  return new ColdsealError(EXIT.INTEGRITY, `${check} check failed: ${message}`, hint);
}

/**
 * A listed object that is gone: the backup failed its completeness check (exit 6), whichever
 * command found it. `what` names the object (objectLabel: its segment and URL).
 */
export function missingObject(what: string, key: string, bucket: string): ColdsealError {
  return integrity(
    'presence',
    unreadableMessage('missing', what),
    `Do not use this backup: restore an older one (coldseal list). In a versioned bucket a delete marker may hide a version Object Lock still keeps: aws s3api list-object-versions --bucket ${bucket} --prefix ${key}`,
  );
}

/** The PartReader's failures, as the agent reports them (check name, exit code, what to do). */
export function partReadFailure(error: unknown, bucket: string, artifact: Artifact): ColdsealError {
  if (error instanceof ColdsealError) return error;
  if (!(error instanceof PartReadError)) return new ColdsealError(EXIT.STORAGE, `reading s3://${bucket}/${artifact.key} failed: ${(error as Error).message}`, 'Check the network and run again');
  const part = error.part;
  // The object the part is in (a later segment's, not the artifact's first key), and which segment.
  const where = part ? objectLabel(`s3://${bucket}/${part.key}`, part.segment, part.segments) : `s3://${bucket}/${artifact.key}`;
  const total = artifact.parts.sha256.length;
  switch (error.failure) {
    case 'missing':
      return part ? missingObject(where, part.key, bucket) : integrity('presence', error.message);
    case 'archived':
      return new ColdsealError(EXIT.ARCHIVED, error.message, 'Run coldseal restore with --retrieval-tier to bring it back first');
    case 'changed':
      return integrity('object version', error.message);
    case 'size':
      return integrity('size', error.message);
    case 'part-checksum':
      return integrity('checksum', `SHA-256 of part ${part!.index} of ${total} (bytes ${part!.offset}-${part!.offset + part!.length - 1}) of ${where} is ${error.actual}, the signed manifest says ${part!.sha256}: the ciphertext was altered or damaged`);
    case 'checksum':
      return integrity('checksum', `SHA-256 of s3://${bucket}/${artifact.key}${artifact.segments && artifact.segments.length > 1 ? ` and its ${artifact.segments.length - 1} further segment(s)` : ''} is ${error.actual}, the signed manifest says ${artifact.ciphertextSha256}: the ciphertext was altered or damaged`);
    case 'storage':
      return new ColdsealError(EXIT.STORAGE, error.message, 'Check network access and your permissions on the bucket, then run again');
  }
}

export async function openPlaintext(options: PlaintextOptions): Promise<OpenedPlaintext> {
  const { s3, bucket, manifest, artifact, key } = options;
  const where = `s3://${bucket}/${artifact.key}`;
  // A host that cannot decompress the object is told so before any read starts.
  requireDecompressor(manifest.compression.algorithm);
  const engine = chooseDecryption(options.decryption);
  let reader: PartReader;
  try {
    // openpgp.js decrypts ~10× slower than gpg (~25 MB/s of ciphertext on this machine's cores):
    // one part fetched ahead of the one it decrypts keeps it busy, and more would only hold memory.
    const window = engine === 'openpgp.js' ? OPENPGP_JS_WINDOW : undefined;
    reader = new PartReader({ artifact, window, fetch: s3PartFetcher(s3, bucket), pins: options.pin ? new Map([[artifact.key, options.pin]]) : undefined, onProgress: options.onProgress, maxParts: options.maxParts, buffers: options.buffers });
  } catch (error) {
    throw integrity('parts', (error as Error).message, 'The signed manifest is inconsistent: restore an older backup');
  }
  const parts = reader[Symbol.asyncIterator]();
  const fail = (error: unknown) => partReadFailure(error, bucket, artifact);

  // gpg's keyring (and its agent) is made while the first part is fetched, not after it (~60 ms),
  // and removed on every way out until gpg has it.
  const keyring = engine === 'gpg' ? recipientKeyring(key) : undefined;
  keyring?.catch(() => undefined);
  let keyringHandedOver = false;
  let aborted = false;
  let ciphertext!: CiphertextFeed;
  let to: Writable | undefined;
  let decryption!: Decryption;
  try {
    // The first part (checked) holds the PKESK packets: addressees are known before decryption starts.
    let first: IteratorResult<VerifiedPart>;
    try {
      first = await parts.next();
    } catch (error) {
      throw fail(error);
    }
    try {
      await checkAddressees(first.done ? new Uint8Array() : first.value.bytes, manifest, key, where);
    } catch (error) {
      await parts.return(undefined);
      throw error;
    }

    // --- ciphertext: verified parts, in order ---------------------------------------------------
    ciphertext = feedCiphertext(first.done ? undefined : first.value, parts, fail, where);

    // --- where the plaintext goes -----------------------------------------------------------------
    // Asked before gpg starts: a child's stdout starts being read into Node as soon as it exists, so
    // gpg, zstd and the sink are wired together in one go, with no byte taken out of the pipe between.
    try {
      to = await options.plaintextTo?.();
    } catch (error) {
      ciphertext.stop();
      throw error;
    }

    // --- decryption -----------------------------------------------------------------------------
    try {
      if (keyring) {
        keyringHandedOver = true;
        decryption = await decryptWithGpg(ciphertext, keyring);
      } else decryption = await decryptWithOpenpgp(ciphertext, key);
    } catch (error) {
      ciphertext.stop();
      const failure = await Promise.race([ciphertext.done, new Promise<null>((r) => setTimeout(() => r(null), 0))]);
      if (failure) throw failure;
      if (error instanceof ColdsealError) throw error;
      throw new ColdsealError(EXIT.KEYS, `decrypting ${where} failed: ${(error as Error).message}`, 'Check that the key is the recipient key of this backup and not damaged');
    }
  } catch (error) {
    if (!keyringHandedOver) void keyring?.then((home) => home.close(), () => undefined);
    throw error;
  }

  // --- decompression --------------------------------------------------------------------------
  const fd = options.plaintextFd;
  const { plaintext, decompressed, reportedBytes, kill } = startDecompression(manifest.compression.algorithm, decryption, fd, to);

  const finished = (async () => {
    const [readError, decryptError, decompressError] = await Promise.all([ciphertext.done, decryption.done, decompressed]);
    // The bytes are the root cause when they are wrong; then decryption; then decompression.
    if (readError) throw readError;
    if (aborted) throw new ColdsealError(EXIT.FAILURE, `reading ${where} was stopped`);
    if (decryptError) {
      if (decryptError === 'MDC' || /manipulated|MDC|Modification detected/i.test(decryptError)) throw integrity('decryption', `the OpenPGP integrity code (MDC) of ${where} does not match: the message was altered`);
      throw integrity('decryption', `decrypting ${where} failed: ${decryptError}`);
    }
    // A full disk is not a damaged backup.
    if (decompressError && fd !== undefined && /writing the plaintext|write error|No space/i.test(decompressError)) throw new ColdsealError(EXIT.FAILURE, `${decompressError} (restoring ${where})`, 'Free space where the file goes, or give another --output');
    if (decompressError) throw integrity('decompression', `${decompressError} while decompressing ${where}: the dump inside is damaged`);
    const pin = reader.objectPins.get(artifact.key) ?? {};
    return { ...pin, ciphertextBytes: reader.bytesRead, plaintextBytes: reportedBytes() };
  })();
  finished.catch(() => undefined);

  return {
    plaintext,
    finished,
    decryptedBy: decryption.by,
    abort: () => {
      aborted = true;
      // A paused stdout that nobody reads would never see zstd's end, and zstd's 'close' never come.
      kill();
      plaintext.destroy();
      decryption.kill();
      ciphertext.stop();
    },
  };
}

/** The first part (checked) holds the PKESK packets: the addressees must be the manifest's, and the key one of them. */
async function checkAddressees(head: Uint8Array, manifest: Manifest, key: PrivateKey, where: string): Promise<void> {
  let addressees: string[];
  try {
    addressees = await messageRecipientKeyIds(head);
  } catch (error) {
    throw integrity('format', `${where} is not an OpenPGP message (${(error as Error).message})`);
  }
  if (!sameKeyIds(addressees, manifest.encryption.recipientKeyIds)) {
    throw integrity('recipients', `${where} is encrypted to key ids ${addressees.join(', ') || '(none)'} but the signed manifest says ${manifest.encryption.recipientKeyIds.join(', ')}`);
  }
  const ours = key.getKeyIDs().map((id) => id.toHex().toLowerCase());
  if (!addressees.some((id) => ours.includes(id))) {
    throw new ColdsealError(
      EXIT.KEYS,
      `the private key ${fingerprintOf(key)} cannot decrypt this backup: it is encrypted to key ids ${addressees.join(', ')} (recipient fingerprints ${manifest.encryption.recipientFingerprints.join(', ')})`,
      'Give the recipient private key this backup was encrypted to (--key FILE)',
    );
  }
}
