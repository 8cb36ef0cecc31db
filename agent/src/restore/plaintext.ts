import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { PassThrough, pipeline, Readable, type Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as openpgp from 'openpgp';
import type { S3Client } from '@aws-sdk/client-s3';
import { sameKeyIds } from '../../../format/backup-judgement';
import type { Artifact, Manifest } from '../../../format/manifest';
import { PartReader, PartReadError, type ObjectPin, type PartBufferPool, type VerifiedPart } from '../../../runtime/part-reader';
import { fingerprintOf, messageRecipientKeyIds, PGP_CONFIG, type PrivateKey } from '../../../runtime/pgp';
import { s3PartFetcher } from '../../../runtime/s3-part-fetcher';
import { unreadableMessage } from '../../../runtime/s3-presence';
import { objectLabel } from '../../../format/ranges';
import { ColdsealError, EXIT } from '../errors';
import { gpgVersion, openGpgHome, type GpgHome } from '../pipeline/encrypt';
import { webToNode, nodeToWeb } from '../pipeline/streams';
import { keepTail, lastLines } from '../process-output';

export type { ObjectPin } from '../../../runtime/part-reader';

/**
 * The backup pipeline in reverse, as one stream, in one pass: parallel ranged GETs (PartReader)
 * → each part's SHA-256 checked against the signed manifest BEFORE its bytes go on → OpenPGP
 * decryption (the host's gpg when it has one, as backup does; openpgp.js otherwise) →
 * decompression (zstd as a child process) → plaintext. A changed byte is refused before any byte
 * of its part reaches decryption, let alone a target; the whole SHA-256, the OpenPGP integrity
 * code (MDC), the decompressor's own checks and (for the caller) the completion trailer are still
 * checked at the end, and `finished` reports the first that failed. Memory: the reader's window
 * ((parts in flight + the one handed on) × part size) plus a constant.
 */
export type DecryptionPreference = 'auto' | 'gpg' | 'openpgp.js';

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

function chooseDecryption(preference: DecryptionPreference | undefined): 'gpg' | 'openpgp.js' {
  const wanted = preference ?? ((process.env.COLDSEAL_DECRYPT as DecryptionPreference | undefined) || 'auto');
  if (wanted === 'openpgp.js') return 'openpgp.js';
  if (gpgVersion()) return 'gpg';
  if (wanted === 'gpg') throw new ColdsealError(EXIT.CONFIG, 'decryption with gpg was asked for but the gpg binary is not on PATH', 'Install gnupg, or leave the choice to coldseal (openpgp.js is used without gpg)');
  return 'openpgp.js';
}

interface Decryption {
  readonly output: Readable;
  /** The output is a child's pipe that another child can be given as its stdin. */
  readonly direct?: boolean;
  readonly by: string;
  /** Resolves null on success, else the reason decryption failed. */
  readonly done: Promise<string | null>;
  kill(): void;
}

/** A throwaway keyring holding only this one key, removed (and its agent stopped) when gpg exits. */
function recipientKeyring(key: PrivateKey): Promise<GpgHome> {
  return openGpgHome(key.armor(), 'the recipient private key', { privateKeys: true });
}

async function decryptWithGpg(ciphertext: CiphertextFeed, keyring: Promise<GpgHome>): Promise<Decryption> {
  const home = await keyring;
  // The verdict is read from gpg's status lines (fd 3) as well as its exit status: DECRYPTION_OKAY
  // is only printed once the integrity code matched, so a gpg that exits 0 without it is refused.
  const child: ChildProcess = spawn('gpg', ['--homedir', home.homedir, '--batch', '--no-tty', '--quiet', '--status-fd', '3', '--pinentry-mode', 'loopback', '--decrypt'], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const stderr = keepTail(child.stderr!, 4096);
  const status = keepTail(child.stdio[3] as Readable, 8192);
  child.stdin!.on('error', () => undefined);
  // A pipe lets go of a chunk once its write completed: the part buffers are written in place.
  ciphertext.start(child.stdin!, 'in-place');
  const done = new Promise<string | null>((resolve) => {
    child.once('error', (error) => resolve(`gpg could not be started: ${error.message}`));
    child.once('close', (code, signal) => {
      home.close();
      if (code !== 0) return resolve(`gpg --decrypt failed (${signal ?? `status ${code}`}): ${lastLines(stderr(), 2)}`);
      const lines = status();
      if (!/^\[GNUPG:\] DECRYPTION_OKAY\b/m.test(lines) || /^\[GNUPG:\] DECRYPTION_INFO 0 \d+(?: 0)?$/m.test(lines)) return resolve('MDC');
      resolve(null);
    });
  });
  return { output: child.stdout!, direct: true, by: `gpg ${gpgVersion()}`, done, kill: () => child.kill('SIGKILL') };
}

async function decryptWithOpenpgp(ciphertext: CiphertextFeed, key: PrivateKey): Promise<Decryption> {
  // openpgp.js holds the chunks it was given, so it gets copies (COPY_CHUNK). It is told to stream
  // before the MDC is checked (allowUnauthenticatedStream): every part was checked against the
  // signed manifest before it got here, and the MDC verdict still comes at the end.
  const input = new PassThrough({ highWaterMark: COPY_CHUNK });
  ciphertext.start(input, 'copy');
  const message = await openpgp.readMessage({ binaryMessage: nodeToWeb(input) });
  const result = await openpgp.decrypt({ message, decryptionKeys: key, format: 'binary', config: { ...PGP_CONFIG, allowUnauthenticatedStream: true } });
  const output = webToNode(result.data as unknown as ReadableStream<Uint8Array>);
  const done = new Promise<string | null>((resolve) => {
    output.once('end', () => resolve(null));
    output.once('error', (error) => resolve(/Modification detected|MDC/i.test(error.message) ? 'MDC' : error.message));
    output.once('close', () => resolve(output.readableEnded ? null : 'stopped'));
  });
  return { output, by: `openpgp.js ${openpgp.config.versionString.replace(/^OpenPGP\.js v?/, '')}`, done, kill: () => output.destroy() };
}

/**
 * openpgp.js copies each chunk several times on its way (packet reader, CFB, the MDC's tee and
 * look-behind slices), each copy an ArrayBuffer outside V8's heap that is freed only when a
 * collection finds it dead. Few large chunks make few JS objects: the young generation fills
 * slowly, no scavenge comes, and dead copies pile up until ~64 MB of external memory starts a full
 * collection. With 64 KiB chunks scavenges come often and free them young. Measured on a 1 GB
 * restore (bench, --output): peak RSS 235-247 MB with 1 MiB chunks and 4 parts in flight, 194-204 MB
 * with 64 KiB chunks, 178 MB with 2 parts in flight as well; CPU did not rise (14.6-15.4 s against
 * 18.4 s): openpgp.js's cost is per byte, not per chunk, at these sizes.
 */
const COPY_CHUNK = 64 * 1024;
/** Parts in flight for openpgp.js (gpg keeps the PartReader's default). */
const OPENPGP_JS_WINDOW = 2;

/**
 * The verified ciphertext, written part by part into a decryptor's input. A part's bytes live in
 * a buffer the PartReader reuses, so each part is delivered (its write completed, or copied)
 * before the next is asked for: memory stays the reader's window, and no part's chunks linger as
 * garbage for the collector.
 */
interface CiphertextFeed {
  /**
   * Starts writing into `into`, ending it after the last part (destroying it when a read fails).
   * 'in-place': `into` lets go of a chunk once its write completes (a child's stdin). 'copy': it
   * may hold chunks (openpgp.js), so it gets copies.
   */
  start(into: Writable, mode: 'in-place' | 'copy'): void;
  /** Null once every part was delivered and the input ended, else why not. */
  readonly done: Promise<ColdsealError | null>;
  /** Stops delivering (a consumer failed, or the caller aborted). */
  stop(): void;
}

function written(into: Writable, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => into.write(bytes, (error) => (error ? reject(error) : resolve())));
}

function drained(into: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      into.off('drain', onDrain);
      into.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(new Error('the decryptor stopped reading'));
    into.once('drain', onDrain);
    into.once('close', onClose);
  });
}

function feedCiphertext(first: VerifiedPart | undefined, parts: AsyncIterator<VerifiedPart>, fail: (error: unknown) => ColdsealError, where: string): CiphertextFeed {
  const stoppedError = () => new ColdsealError(EXIT.FAILURE, `reading ${where} was stopped`);
  let settle!: (failure: ColdsealError | null) => void;
  const done = new Promise<ColdsealError | null>((resolve) => (settle = resolve));
  let target: Writable | undefined;
  let started = false;
  let stopped = false;
  const deliver = async (into: Writable, mode: 'in-place' | 'copy') => {
    let part = first;
    first = undefined;
    try {
      while (part) {
        const bytes = part.bytes;
        part = undefined;
        try {
          if (mode === 'in-place') await written(into, bytes);
          else {
            for (let offset = 0; offset < bytes.length; offset += COPY_CHUNK) {
              if (stopped) break;
              if (!into.write(Buffer.from(bytes.subarray(offset, offset + COPY_CHUNK)))) await drained(into);
            }
          }
        } catch {
          // The decryptor closed its input: its own verdict says why; ours is that the read stopped.
          throw stoppedError();
        }
        if (stopped) throw stoppedError();
        let step: IteratorResult<VerifiedPart>;
        try {
          step = await parts.next();
        } catch (error) {
          throw fail(error);
        }
        if (step.done) break;
        part = step.value;
      }
      into.end();
      settle(null);
    } catch (error) {
      into.destroy();
      settle(error instanceof ColdsealError ? error : fail(error));
    } finally {
      await parts.return?.(undefined).catch(() => undefined);
    }
  };
  return {
    done,
    start(into, mode) {
      if (started) throw new Error('the ciphertext feed was started twice');
      started = true;
      target = into;
      void deliver(into, mode);
    },
    stop() {
      stopped = true;
      if (!started) {
        started = true;
        first = undefined;
        void parts.return?.(undefined).catch(() => undefined);
        settle(stoppedError());
      } else target?.destroy();
    },
  };
}

export async function openPlaintext(options: PlaintextOptions): Promise<OpenedPlaintext> {
  const { s3, bucket, manifest, artifact, key } = options;
  const where = `s3://${bucket}/${artifact.key}`;
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
    const head = first.done ? new Uint8Array() : first.value.bytes;
    let addressees: string[];
    try {
      addressees = await messageRecipientKeyIds(head);
    } catch (error) {
      await parts.return(undefined);
      throw integrity('format', `${where} is not an OpenPGP message (${(error as Error).message})`);
    }
    if (!sameKeyIds(addressees, manifest.encryption.recipientKeyIds)) {
      await parts.return(undefined);
      throw integrity('recipients', `${where} is encrypted to key ids ${addressees.join(', ') || '(none)'} but the signed manifest says ${manifest.encryption.recipientKeyIds.join(', ')}`);
    }
    const ours = key.getKeyIDs().map((id) => id.toHex().toLowerCase());
    if (!addressees.some((id) => ours.includes(id))) {
      await parts.return(undefined);
      throw new ColdsealError(
        EXIT.KEYS,
        `the private key ${fingerprintOf(key)} cannot decrypt this backup: it is encrypted to key ids ${addressees.join(', ')} (recipient fingerprints ${manifest.encryption.recipientFingerprints.join(', ')})`,
        'Give the recipient private key this backup was encrypted to (--key FILE)',
      );
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
  const algorithm = manifest.compression.algorithm;
  const fd = options.plaintextFd;
  let reportedBytes: () => number | undefined = () => undefined;
  let plaintext: Readable;
  let decompressed: Promise<string | null>;
  let kill = () => {};
  if (algorithm === 'zstd') {
    // zstd reads gpg's stdout itself (and, given a descriptor, writes the file): the decrypted
    // stream is not copied through Node. Backpressure still holds: zstd's stdout is read by the sink.
    const direct = decryption.direct === true;
    const child = spawn('zstd', ['-d', '-c', '-v', '--no-progress'], { stdio: [direct ? decryption.output : 'pipe', fd ?? to ?? 'pipe', 'pipe'] });
    // The sink's process holds its own copy of the pipe now.
    to?.destroy();
    const stderr = keepTail(child.stderr!, 2048);
    // -v ends with "/*stdin*\ : 1641092 bytes": the plaintext size, counted where Node cannot see it.
    reportedBytes = () => {
      const match = /: (\d+) bytes\s*$/.exec(stderr());
      return match ? Number(match[1]) : undefined;
    };
    if (direct) {
      // zstd holds its own copy of the pipe; ours closed, gpg gets EPIPE (not a hang) should zstd die.
      decryption.output.destroy();
    } else {
      child.stdin!.on('error', () => undefined);
      pipeline(decryption.output, child.stdin!, () => undefined);
    }
    decompressed = new Promise((resolve) => {
      child.once('error', (error) => resolve(`zstd could not be started (${error.message}): install zstd`));
      child.once('close', (code, signal) => resolve(code === 0 ? null : `zstd -d failed (${signal ?? `status ${code}`}): ${lastLines(stderr(), 1)}`));
    });
    // Node resumes (and so discards) a child's unread stdout once the child exits: a small dump
    // that zstd finished while the safety dump was being taken would reach the sink empty. Piped
    // on at once, it waits in the PassThrough instead (bounded: a pipe's worth at most).
    const out = child.stdout;
    plaintext = out ? out.pipe(new PassThrough()) : Readable.from([]);
    kill = () => {
      child.kill('SIGKILL');
      out?.destroy();
    };
  } else {
    const out = algorithm === 'gzip' ? createGunzip() : new PassThrough();
    // A sink's own failure is the sink's to report; a failed write to our file descriptor is ours.
    const file = !to && fd !== undefined ? createWriteStream('', { fd, autoClose: false }) : undefined;
    const sink = to ?? file;
    decompressed = new Promise((resolve) => {
      const done = (error: NodeJS.ErrnoException | null) =>
        resolve(!error ? null : error.code?.startsWith('Z_') ? `gunzip failed: ${error.message}` : file ? `writing the plaintext failed: ${error.message}` : null);
      if (sink) pipeline(decryption.output, out, sink, done);
      else pipeline(decryption.output, out, done);
    });
    plaintext = sink ? Readable.from([]) : out;
    kill = () => out.destroy();
  }

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
