import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import * as openpgp from 'openpgp';
import type { VerifiedPart } from '../../../runtime/part-reader';
import { PGP_CONFIG, type PrivateKey } from '../../../runtime/pgp';
import { ColdsealError, EXIT } from '../errors';
import { keepTail, lastLines } from '../process-output';
import { gpgVersion, openGpgHome, type GpgHome } from './encrypt';
import { nodeToWeb, webToNode } from './streams';

/**
 * OpenPGP decryption of a verified ciphertext feed, the mirror of encrypt.ts: through the host's
 * gpg when it has one (as backup does), openpgp.js otherwise.
 */
export type DecryptionPreference = 'auto' | 'gpg' | 'openpgp.js';

export function chooseDecryption(preference: DecryptionPreference | undefined): 'gpg' | 'openpgp.js' {
  const wanted = preference ?? ((process.env.COLDSEAL_DECRYPT as DecryptionPreference | undefined) || 'auto');
  if (wanted === 'openpgp.js') return 'openpgp.js';
  if (gpgVersion()) return 'gpg';
  if (wanted === 'gpg') throw new ColdsealError(EXIT.CONFIG, 'decryption with gpg was asked for but the gpg binary is not on PATH', 'Install gnupg, or leave the choice to coldseal (openpgp.js is used without gpg)');
  return 'openpgp.js';
}

export interface Decryption {
  readonly output: Readable;
  /** The output is a child's pipe that another child can be given as its stdin. */
  readonly direct?: boolean;
  readonly by: string;
  /** Resolves null on success, else the reason decryption failed. */
  readonly done: Promise<string | null>;
  kill(): void;
}

/** A throwaway keyring holding only this one key, removed (and its agent stopped) when gpg exits. */
export function recipientKeyring(key: PrivateKey): Promise<GpgHome> {
  return openGpgHome(key.armor(), 'the recipient private key', { privateKeys: true });
}

/**
 * `shared`: the keyring serves other decryptions too (the WAL prefetcher's, one per segment); its
 * owner closes it. Otherwise it is closed when this gpg exits.
 */
export async function decryptWithGpg(ciphertext: CiphertextFeed, keyring: Promise<GpgHome>, options: { readonly shared?: boolean } = {}): Promise<Decryption> {
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
      if (!options.shared) home.close();
      if (code !== 0) return resolve(`gpg --decrypt failed (${signal ?? `status ${code}`}): ${lastLines(stderr(), 2)}`);
      const lines = status();
      if (!/^\[GNUPG:\] DECRYPTION_OKAY\b/m.test(lines) || /^\[GNUPG:\] DECRYPTION_INFO 0 \d+(?: 0)?$/m.test(lines)) return resolve('MDC');
      resolve(null);
    });
  });
  return { output: child.stdout!, direct: true, by: `gpg ${gpgVersion()}`, done, kill: () => child.kill('SIGKILL') };
}

export async function decryptWithOpenpgp(ciphertext: CiphertextFeed, key: PrivateKey): Promise<Decryption> {
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
 * collection. With 64 KiB chunks scavenges come often and free them young, at no extra CPU:
 * openpgp.js's cost is per byte, not per chunk, at these sizes (figures in docs/benchmarks.md).
 */
const COPY_CHUNK = 64 * 1024;
/** Parts in flight for openpgp.js (gpg keeps the PartReader's default). */
export const OPENPGP_JS_WINDOW = 2;

/**
 * The verified ciphertext, written part by part into a decryptor's input. A part's bytes live in
 * a buffer the PartReader reuses, so each part is delivered (its write completed, or copied)
 * before the next is asked for: memory stays the reader's window, and no part's chunks linger as
 * garbage for the collector.
 */
export interface CiphertextFeed {
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

export function feedCiphertext(first: VerifiedPart | undefined, parts: AsyncIterator<VerifiedPart>, fail: (error: unknown) => ColdsealError, where: string): CiphertextFeed {
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
