import { spawn } from 'node:child_process';
import { write } from 'node:fs';
import { PassThrough, pipeline, Readable, Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Manifest } from '../../../format/manifest';
import { ColdsealError, EXIT } from '../errors';
import { keepTail, lastLines } from '../process-output';
import type { Decryption } from './decrypt';
import { ByteCounter } from './streams';
import { createInProcessZstdDecompress, inProcessZstdLabel, noZstdEngine, pickZstdEngine, zstdAvailability, type ZstdEngine } from './zstd';

type CompressionAlgorithm = Manifest['compression']['algorithm'];

export interface Decompression {
  readonly plaintext: Readable;
  readonly decompressed: Promise<string | null>;
  readonly reportedBytes: () => number | undefined;
  readonly kill: () => void;
}

/**
 * How zstd objects are decompressed on this host (zstd.ts: the child when the binary is on PATH,
 * else Node's own zstd; COLDSEAL_ZSTD forces one). Throws a ColdsealError naming what to install
 * when there is neither: callers ask before they start reading, so nothing is left running.
 */
export function requireDecompressor(algorithm: CompressionAlgorithm): ZstdEngine | undefined {
  if (algorithm !== 'zstd') return undefined;
  const available = zstdAvailability();
  const engine = pickZstdEngine(available);
  if (engine) return engine;
  const { message, hint } = noZstdEngine(available);
  throw new ColdsealError(EXIT.CONFIG, `cannot decompress a zstd object: ${message}`, hint);
}

/**
 * The decompressor after decryption. The zstd child reads gpg's stdout itself and, given a
 * descriptor or a sink's stdin, writes there directly; Node's zstd, gzip and none run in Node.
 * `decompressed` resolves null on success, else the reason; `reportedBytes` is the decompressor's
 * own plaintext count (zstd's report, or the bytes Node's zstd put out).
 */
export function startDecompression(algorithm: CompressionAlgorithm, decryption: Decryption, fd: number | undefined, to: Writable | undefined): Decompression {
  let reportedBytes: () => number | undefined = () => undefined;
  let plaintext: Readable;
  let decompressed: Promise<string | null>;
  let kill: () => void;
  const engine = algorithm === 'zstd' ? pickZstdEngine(zstdAvailability()) : undefined;
  if (algorithm === 'zstd' && engine === undefined) {
    // Callers ask requireDecompressor first; should one not, this is a failure, not a hang.
    decryption.kill();
    to?.destroy();
    decompressed = Promise.resolve(`cannot decompress: ${noZstdEngine(zstdAvailability()).message}`);
    plaintext = Readable.from([]);
    kill = () => undefined;
  } else if (algorithm === 'zstd' && engine === 'in-process') {
    ({ plaintext, decompressed, reportedBytes, kill } = decompressInProcess(decryption, fd, to));
  } else if (algorithm === 'zstd') {
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
    const file = !to && fd !== undefined ? fdSink(fd) : undefined;
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

/**
 * Node's zstd, shaped like the child: the plaintext (when not written to `fd` or `to`) is a stream
 * that ends, damaged input or not, and the verdict is `decompressed`'s. Node's zstd stream reports a
 * truncated last frame ("unexpected end of file") only after its writable side finished, so the
 * verdict waits for the decompressor's 'close' and reads its error there, not pipeline()'s alone.
 */
function decompressInProcess(decryption: Decryption, fd: number | undefined, to: Writable | undefined): Decompression {
  const zstd = createInProcessZstdDecompress();
  const counter = new ByteCounter();
  // A sink's own failure is the sink's to report; a failed write to our file descriptor is ours.
  const file = !to && fd !== undefined ? fdSink(fd) : undefined;
  const sink = to ?? file;
  const out = sink ? undefined : new PassThrough();
  const zstdClosed = new Promise<void>((resolve) => zstd.once('close', () => resolve()));
  // Whose failure it is: the first stream to emit 'error' (pipeline() then destroys the others with
  // the same error, so comparing errors cannot tell a damaged frame from a sink that went away).
  let first: { from: 'zstd' | 'file' | 'other'; error: Error } | undefined;
  const note = (from: 'zstd' | 'file' | 'other') => (error: Error) => {
    first ??= { from, error };
  };
  zstd.once('error', note('zstd'));
  decryption.output.once('error', note('other'));
  sink?.once('error', note(file ? 'file' : 'other'));
  const decompressed = new Promise<string | null>((resolve) => {
    const streams = [decryption.output, zstd, counter, ...(sink ? [sink] : [])] as const;
    pipeline(streams, (error) => {
      // Like a child's stdout, the plaintext ends however decompression ended.
      if (error) out?.end();
      void zstdClosed.then(() => {
        if (!first && !error && !zstd.errored) return resolve(null);
        // The sink's failure, or the decryption's, is reported by its owner.
        if (first?.from === 'other') return resolve(null);
        if (first?.from === 'file') return resolve(`writing the plaintext failed: ${first.error.message}`);
        const failure = first?.error ?? zstd.errored ?? error!;
        // Node's zstd stops at bytes after the last frame with this code, not a zstd error.
        const detail = (failure as NodeJS.ErrnoException).code === 'ERR_STREAM_DESTROYED' ? `unexpected bytes after a frame (${failure.message})` : failure.message;
        resolve(`zstd decompression (${inProcessZstdLabel()}) failed: ${detail}`);
      });
    });
  });
  if (out) counter.pipe(out);
  return {
    plaintext: out ?? Readable.from([]),
    decompressed,
    reportedBytes: () => counter.bytes,
    kill: () => {
      zstd.destroy();
      out?.destroy();
    },
  };
}

/**
 * Writes to the caller's descriptor and never closes it (the caller does, after `decompressed`):
 * fs.createWriteStream(…, { fd, autoClose: false }) still closes it when pipeline() destroys the
 * stream on an error, and the caller's own close could then hit a descriptor number reused since.
 */
function fdSink(fd: number): Writable {
  const writeAll = (chunk: Buffer, callback: (error?: Error | null) => void): void => {
    write(fd, chunk, 0, chunk.length, null, (error, written) => {
      if (error) return callback(error);
      if (written < chunk.length) return writeAll(chunk.subarray(written), callback);
      callback();
    });
  };
  return new Writable({ highWaterMark: 1024 * 1024, write: (chunk: Buffer, _encoding, callback) => writeAll(chunk, callback) });
}
