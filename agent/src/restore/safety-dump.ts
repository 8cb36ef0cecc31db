import { spawn } from 'node:child_process';
import { chmod, lstat, mkdir, open, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stampOf } from '../../../format/layout';
import type { PublicKey } from '../../../runtime/pgp';
import { ColdsealError, EXIT } from '../errors';
import { prepareEncryptor, startEncryption } from '../pipeline/encrypt';
import { keepTail } from '../process-output';
import type { ToolRun } from '../pipeline/sink';

/**
 * The safety dump: a copy of what a restore is about to replace, kept "just in case". It holds the
 * same data as the backups, so it must not be their weakest copy: written 0600 (created so, before
 * a byte is in it) in a directory kept 0700, and encrypted to the group's recipients by default
 * (the key that restores backups decrypts it: gpg --decrypt FILE.pgp > FILE). The dump tool writes
 * to stdout and the agent writes the file, so neither the tool's umask nor its options decide the
 * mode. Safety dumps are never removed by coldseal: where they are and their size are printed.
 */
export interface SafetyDumpPolicy {
  readonly dir: string;
  /** Encrypt to these keys; undefined keeps the dump in plaintext (--plaintext-safety-dump). */
  readonly recipients?: readonly PublicKey[];
}

export interface SafetyDump {
  readonly path: string;
  readonly bytes: number;
  readonly encrypted: boolean;
}

/** Creates the directory 0700, or tightens an existing one of ours to 0700; refuses a non-directory. */
export async function prepareSafetyDir(dir: string): Promise<string> {
  const path = resolve(dir);
  try {
    await mkdir(path, { recursive: true, mode: 0o700 });
    const info = await lstat(path);
    if (!info.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    if ((info.mode & 0o077) !== 0) await chmod(path, 0o700);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      throw new ColdsealError(EXIT.USAGE, `--safety-dir ${path} is not a directory (it, or a path above it, is a file)`, 'Nothing was changed. Give a directory for safety dumps with --safety-dir');
    }
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new ColdsealError(EXIT.USAGE, `--safety-dir ${path} cannot be used (${code}): it must be a directory this user can create files in and keep 0700`, 'Nothing was changed. Give another directory with --safety-dir');
    }
    throw error;
  }
  return path;
}

class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** Runs a dump tool that writes to stdout, into a new 0600 file under the policy's directory. */
export async function writeSafetyDump(run: ToolRun, what: string, name: string, extension: string, policy: SafetyDumpPolicy): Promise<SafetyDump> {
  const dir = await prepareSafetyDir(policy.dir);
  const encrypted = policy.recipients !== undefined;
  const path = join(dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${stampOf(new Date())}.${extension}${encrypted ? '.pgp' : ''}`);
  const file = await open(path, 'wx', 0o600);
  const child = spawn(run.command, [...run.args], { env: { ...process.env, ...run.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = keepTail(child.stderr!, 16384);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolveExit) => {
    child.once('error', (error) => resolveExit({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolveExit({ code, signal }));
  });
  const counter = new ByteCounter();
  const encryptor = encrypted ? await prepareEncryptor('openpgp.js', policy.recipients!) : undefined;
  try {
    const source = encryptor ? (await startEncryption(encryptor, child.stdout!)).output : child.stdout!;
    const written = pipeline(source, counter, file.createWriteStream()).then(() => undefined, (error: Error) => error);
    const [exit, writeError] = await Promise.all([exited, written]);
    // A write failure (disk full) also breaks the tool's pipe: report the cause, not the tool's death.
    if (writeError) throw new ColdsealError(EXIT.FAILURE, `writing the safety dump ${path} failed: ${writeError.message}`, 'Nothing was changed. Free space in --safety-dir, or give another one');
    if (exit.error || exit.code !== 0) {
      const detail = exit.error ? `${run.command} could not be started (${exit.error.message})` : `${exit.signal ?? `status ${exit.code}`}: ${stderr().trim().split('\n').filter(Boolean).slice(-2).join(' / ').slice(0, 600)}`;
      throw new ColdsealError(EXIT.FAILURE, `${what} failed (${detail})`, 'Nothing was changed: the restore stops when the current content cannot be saved first');
    }
  } catch (error) {
    child.kill('SIGKILL');
    await file.close().catch(() => undefined);
    await rm(path, { force: true });
    throw error;
  } finally {
    encryptor?.close();
  }
  return { path, bytes: counter.bytes, encrypted };
}
