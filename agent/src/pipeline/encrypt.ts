import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { fingerprintOf, PGP_CONFIG, type PublicKey } from '../../../runtime/pgp';
import { ColdsealError, EXIT } from '../errors';
import { keepTail } from '../process-output';
import { nodeToWeb, Rechunker, webToNode } from './streams';

/**
 * OpenPGP encryption to every recipient, SEIPDv1 (AES-256 + MDC), no OpenPGP compression: packets
 * GnuPG 2.2 decrypts. Two engines make the same packets:
 * - the host's gpg binary when it has one, in a child process fed straight from the compressor's
 *   stdout: on a 2-core host, moving encryption (and its buffer churn) out of Node is what lets the
 *   agent keep pace with a shell pipeline;
 * - openpgp.js in process otherwise, so a host needs nothing but Node.
 * gpg works on a throwaway keyring holding only the recipients' public keys.
 */
export type EncryptionPreference = 'auto' | 'gpg' | 'openpgp.js';

export type Encryptor =
  | { readonly kind: 'openpgp.js'; readonly implementation: string; readonly recipients: readonly PublicKey[]; close(): void }
  | { readonly kind: 'gpg'; readonly implementation: string; readonly home: GpgHome; readonly fingerprints: readonly string[]; close(): void };

let gpgVersionFound: string | null | undefined;

/** The host's GnuPG version, or undefined without a gpg binary (looked up once). */
export function gpgVersion(): string | undefined {
  if (gpgVersionFound === undefined) {
    try {
      const match = /gpg \(GnuPG\) (\d+\.\d+\.\d+)/.exec(execFileSync('gpg', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
      gpgVersionFound = match?.[1] ?? null;
    } catch {
      gpgVersionFound = null;
    }
  }
  return gpgVersionFound ?? undefined;
}

export interface GpgHome {
  readonly homedir: string;
  /** Options every gpg call on this home needs (`--no-autostart` for a home of public keys only). */
  readonly gpgArgs: readonly string[];
  /** Stops the home's gpg-agent and removes the directory (idempotent). */
  close(): void;
}

/**
 * A throwaway GnuPG home holding only the given keys (armored), so gpg never sees the user's own
 * keyring or trust settings. A private key goes to memory-backed /dev/shm where there is one, and
 * the home is removed as soon as the caller is done.
 */
export async function openGpgHome(armoredKeys: string, what: string, options: { readonly privateKeys: boolean }): Promise<GpgHome> {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const homedir = mkdtempSync(join(base, 'coldseal-gpg-'));
  // Public keys need no gpg-agent (only secret keys live in it): not starting one, and not having
  // to stop it, takes about a third of a second off every backup.
  const gpgArgs = options.privateKeys ? [] : ['--no-autostart'];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    if (options.privateKeys) {
      try {
        execFileSync('gpgconf', ['--homedir', homedir, '--kill', 'all'], { stdio: 'ignore' });
      } catch {
        // No agent was started, or gpgconf is missing: nothing to stop.
      }
    }
    rmSync(homedir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const child = execFile('gpg', ['--homedir', homedir, ...gpgArgs, '--batch', '--quiet', '--import'], (error, _stdout, stderr) =>
        error ? reject(new ColdsealError(EXIT.KEYS, `gpg could not import ${what}: ${stderr.trim().split('\n')[0]}`, 'Check the key, or set the implementation to "openpgp.js"')) : resolve(),
      );
      child.stdin!.end(armoredKeys);
    });
  } catch (error) {
    close();
    throw error;
  }
  return { homedir, gpgArgs, close };
}

/**
 * A recipient key that advertises AEAD (features 0x02) or SEIPDv2 (0x08) would make GnuPG ≥ 2.3
 * write AEAD packets that GnuPG 2.2 cannot read; for such keys only openpgp.js is used, which
 * writes SEIPDv1 whatever the key says.
 */
async function advertisesAead(key: PublicKey): Promise<boolean> {
  const user = await key.getPrimaryUser().catch(() => undefined);
  const features = user?.selfCertification.features?.[0] ?? 0;
  return (features & 0x0a) !== 0;
}

export async function prepareEncryptor(preference: EncryptionPreference, recipients: readonly PublicKey[]): Promise<Encryptor> {
  const openpgpJs: Encryptor = { kind: 'openpgp.js', implementation: `openpgp.js ${openpgp.config.versionString.replace(/^OpenPGP\.js v?/, '')}`, recipients, close() {} };
  if (preference === 'openpgp.js') return openpgpJs;
  const version = gpgVersion();
  const aead = (await Promise.all(recipients.map(advertisesAead))).some(Boolean);
  if (!version || aead) {
    if (preference === 'gpg') {
      throw new ColdsealError(
        EXIT.CONFIG,
        version ? 'encryption.implementation is "gpg" but a recipient key advertises AEAD, which GnuPG ≥ 2.3 would use and GnuPG 2.2 cannot read' : 'encryption.implementation is "gpg" but the gpg binary is not on PATH',
        'Set encryption.implementation to "auto" (openpgp.js is used then)',
      );
    }
    return openpgpJs;
  }
  const home = await openGpgHome(recipients.map((k) => k.armor()).join('\n'), 'the recipient public keys', { privateKeys: false });
  return { kind: 'gpg', implementation: `gpg ${version}`, home, fingerprints: recipients.map(fingerprintOf), close: home.close };
}

export interface RunningEncryption {
  /** Ciphertext. */
  readonly output: Readable;
  /** The gpg child, whose exit status is part of the artifact's outcome. */
  readonly child?: ChildProcess;
  /** Settles when all compressed bytes were handed to gpg (or it stopped taking them). */
  readonly inputDone: Promise<void>;
  stderrTail(): string;
}

/**
 * Encrypts `source` (compressed bytes). With `direct`, `source` is a child's stdout (zstd) that gpg
 * takes as its own stdin, so the bytes never pass through Node; openpgp.js always reads in Node.
 */
export async function startEncryption(encryptor: Encryptor, source: Readable, options: { direct?: boolean } = {}): Promise<RunningEncryption> {
  if (encryptor.kind === 'openpgp.js') {
    // openpgp.js pays a fixed cost per chunk: feed it ~1 MiB chunks, not the 64 KiB a pipe delivers.
    const message = await openpgp.createMessage({ binary: nodeToWeb(source.pipe(new Rechunker())), format: 'binary' });
    const encrypted = await openpgp.encrypt({ message, encryptionKeys: [...encryptor.recipients], format: 'binary', config: PGP_CONFIG });
    return { output: webToNode(encrypted as unknown as ReadableStream<Uint8Array>), inputDone: Promise.resolve(), stderrTail: () => '' };
  }
  const args = [
    ...['--homedir', encryptor.home.homedir, ...encryptor.home.gpgArgs, '--batch', '--no-tty', '--quiet', '--trust-model', 'always', '--no-auto-key-locate'],
    ...['--compress-algo', 'none', '--cipher-algo', 'AES256', '--encrypt', '--output', '-'],
    ...encryptor.fingerprints.flatMap((f) => ['--recipient', f]),
  ];
  const direct = options.direct === true;
  const child = spawn('gpg', args, { stdio: [direct ? source : 'pipe', 'pipe', 'pipe'] });
  const stderrTail = keepTail(child.stderr!, 4096);
  if (direct) {
    // gpg holds its own copy of the pipe; closing ours lets zstd see EPIPE (not block) should gpg die.
    source.destroy();
    return { output: child.stdout!, child, inputDone: Promise.resolve(), stderrTail };
  }
  // A broken pipe here means gpg died: its exit status says why, so the error itself is not news.
  const inputDone = new Promise<void>((resolve) => pipeline(source, child.stdin!, () => resolve()));
  return { output: child.stdout!, child, inputDone, stderrTail };
}
