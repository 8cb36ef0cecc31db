import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createGzip } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';
import type { AgentConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import { keepTail } from '../process-output';

/**
 * Compression runs in a zstd child when the host has the binary (multi-threaded, 3–4× gzip's speed
 * at a better ratio here), else in Node's zlib as gzip. The choice is recorded in the manifest so a
 * restore (or a person with only the shell) knows which tool to use.
 */
export interface CompressionChoice {
  readonly algorithm: 'zstd' | 'gzip';
  readonly level: number;
  readonly threads: number;
  readonly implementation: string;
  readonly extension: 'zst' | 'gz';
}

function zstdVersion(): string | undefined {
  try {
    const match = /v(\d+\.\d+\.\d+)/.exec(execFileSync('zstd', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
    return match?.[1];
  } catch {
    return undefined;
  }
}

export function chooseCompression(config: AgentConfig['compression']): CompressionChoice {
  const zstd = config.algorithm === 'gzip' ? undefined : zstdVersion();
  if (config.algorithm === 'zstd' && !zstd) {
    throw new ColdsealError(EXIT.CONFIG, 'compression.algorithm is "zstd" but the zstd binary is not on PATH', 'Install zstd (apt install zstd / dnf install zstd) or set compression.algorithm to "auto" or "gzip"');
  }
  if (zstd) return { algorithm: 'zstd', level: config.level ?? 3, threads: config.threads, implementation: `zstd-cli ${zstd}`, extension: 'zst' };
  return { algorithm: 'gzip', level: Math.min(config.level ?? 6, 9), threads: 1, implementation: `node-zlib ${process.versions.zlib}`, extension: 'gz' };
}

export interface RunningCompressor {
  /** Compressed output. */
  readonly output: Readable;
  /** Where to write plaintext when it passes through Node; undefined when the dump's stdout feeds the child directly. */
  readonly input?: Writable;
  /** The zstd child, when there is one (its exit status is part of the dump's outcome). */
  readonly child?: ChildProcess;
  /** Uncompressed bytes as the compressor reports them (zstd -vv), once it has exited. */
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
  if (choice.algorithm === 'gzip') {
    if (typeof directInput === 'number') throw new Error('gzip compresses in Node: give it a stream, not a file descriptor');
    const gzip = createGzip({ level: choice.level, chunkSize: 256 * 1024 });
    if (directInput) directInput.pipe(gzip);
    return { output: gzip, input: directInput ? undefined : gzip, uncompressedBytes: () => gzip.bytesWritten, compressedBytes: () => undefined, stderrTail: () => '' };
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
