import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { PassThrough, pipeline, Readable, type Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Manifest } from '../../../format/manifest';
import { keepTail, lastLines } from '../process-output';
import type { Decryption } from './decrypt';

type CompressionAlgorithm = Manifest['compression']['algorithm'];

export interface Decompression {
  readonly plaintext: Readable;
  readonly decompressed: Promise<string | null>;
  readonly reportedBytes: () => number | undefined;
  readonly kill: () => void;
}

/**
 * The decompressor after decryption. zstd is a child that reads gpg's stdout itself and, given a
 * descriptor or a sink's stdin, writes there directly; gzip and none run in Node. `decompressed`
 * resolves null on success, else the reason; `reportedBytes` is zstd's own plaintext count.
 */
export function startDecompression(algorithm: CompressionAlgorithm, decryption: Decryption, fd: number | undefined, to: Writable | undefined): Decompression {
  let reportedBytes: () => number | undefined = () => undefined;
  let plaintext: Readable;
  let decompressed: Promise<string | null>;
  let kill: () => void;
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
  return { plaintext, decompressed, reportedBytes, kill };
}
