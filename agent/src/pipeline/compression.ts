import { spawn, type ChildProcess } from 'node:child_process';
import { createGzip } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';
import type { AgentConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import { keepTail } from '../process-output';
import { createInProcessZstdCompress, inProcessZstdLabel, noZstdEngine, pickZstdEngine, zstdAvailability, type ZstdAvailability } from './zstd';

/**
 * Compression runs in a zstd child when the host has the binary (multi-threaded, 3–4× gzip's speed
 * at a better ratio here), else in Node's own zstd when this Node has it (the self-contained agent's
 * does: one thread, see zstd.ts), else in Node's zlib as gzip. The algorithm is recorded in the
 * manifest so a restore (or a person with only the shell) knows which tool to use; both zstd
 * engines write the same frames, told apart only by `implementation`.
 */
export interface CompressionChoice {
  readonly algorithm: 'zstd' | 'gzip';
  readonly level: number;
  readonly threads: number;
  /** "zstd-cli 1.5.4", "node-zlib-zstd 1.5.7" or "node-zlib 1.3.1": recorded in the manifest. */
  readonly implementation: string;
  readonly extension: 'zst' | 'gz';
  /** Where the compressor runs: a child process (zstd), or Node itself (zstd or gzip). */
  readonly runsIn: 'child' | 'node';
}

export function chooseCompression(config: AgentConfig['compression'], available: () => ZstdAvailability = zstdAvailability): CompressionChoice {
  if (config.algorithm !== 'gzip') {
    const zstd = available();
    const engine = pickZstdEngine(zstd);
    if (engine === 'child') return { algorithm: 'zstd', level: config.level ?? 3, threads: config.threads, implementation: `zstd-cli ${zstd.cli}`, extension: 'zst', runsIn: 'child' };
    if (engine === 'in-process') return { algorithm: 'zstd', level: config.level ?? 3, threads: 1, implementation: inProcessZstdLabel(zstd.inProcess), extension: 'zst', runsIn: 'node' };
    if (config.algorithm === 'zstd' || zstd.forced) {
      const { message, hint } = noZstdEngine(zstd);
      throw new ColdsealError(EXIT.CONFIG, `compression.algorithm is "${config.algorithm}" but ${message}`, `${hint}; or set compression.algorithm to "gzip"`);
    }
  }
  return { algorithm: 'gzip', level: Math.min(config.level ?? 6, 9), threads: 1, implementation: `node-zlib ${process.versions.zlib}`, extension: 'gz', runsIn: 'node' };
}

export interface RunningCompressor {
  /** Compressed output. */
  readonly output: Readable;
  /** Where to write plaintext when it passes through Node; undefined when the dump's stdout feeds the child directly. */
  readonly input?: Writable;
  /** The zstd child, when there is one (its exit status is part of the dump's outcome); in Node a failure is an error on `output`. */
  readonly child?: ChildProcess;
  /** Uncompressed bytes as the compressor reports them (zstd -vv, or what Node's stream took in), once it has finished. */
  uncompressedBytes(): number | undefined;
  /** Compressed bytes as the compressor reports them (zstd -vv), once it has exited. */
  compressedBytes(): number | undefined;
  stderrTail(): string;
}

/**
 * @param directInput the dump's stdout, handed to the zstd child as its stdin so the dump's bytes
 *   never pass through Node (that would cost ~3 CPU-s per GB); or an open file's descriptor, which
 *   zstd reads itself (a WAL file); omit to write plaintext to `input`.
 */
export function startCompressor(choice: CompressionChoice, directInput?: Readable | number): RunningCompressor {
  if (choice.runsIn === 'node') {
    if (typeof directInput === 'number') throw new Error(`${choice.implementation} compresses in Node: give it a stream, not a file descriptor`);
    const stream = choice.algorithm === 'zstd' ? createInProcessZstdCompress(choice.level) : createGzip({ level: choice.level, chunkSize: 256 * 1024 });
    if (directInput) directInput.pipe(stream);
    return { output: stream, input: directInput ? undefined : stream, uncompressedBytes: () => stream.bytesWritten, compressedBytes: () => undefined, stderrTail: () => '' };
  }
  const child = spawn('zstd', [`-${choice.level}`, `-T${choice.threads}`, '-vv', '--no-progress', '-c', '-'], {
    stdio: [directInput ?? 'pipe', 'pipe', 'pipe'],
  });
  // The child holds its own copy of the pipe; closing ours means that if zstd dies the dump tool
  // gets SIGPIPE instead of blocking forever, and the dump's 'close' event can fire.
  if (typeof directInput !== 'number') directInput?.destroy();
  const stderrTail = keepTail(child.stderr!, 4096);
  // zstd -vv ends with "/*stdin*\ : 23.45%   (1130000000 B => 265000000 B, /*stdout*\)" (numbers space-padded).
  const report = () => /\(\s*(\d+) B =>\s*(\d+) B/.exec(stderrTail());
  return {
    output: child.stdout!,
    input: directInput ? undefined : child.stdin!,
    child,
    uncompressedBytes: () => {
      const match = report();
      return match ? Number(match[1]) : undefined;
    },
    compressedBytes: () => {
      const match = report();
      return match ? Number(match[2]) : undefined;
    },
    stderrTail,
  };
}
