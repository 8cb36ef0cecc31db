import { execFileSync } from 'node:child_process';
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { ColdsealError, EXIT } from '../errors';

/**
 * Where zstd runs. The `zstd` child when the host has the binary (multi-threaded, and the bytes of a
 * dump need not pass through Node); else Node's own zstd (zlib, Node ≥ 22.15 / 23.8: the
 * self-contained agent's Node 24 has it), so a host without zstd still backs up and restores zstd
 * objects. Both write and read the same format (zstd frames), so an object made by one is read by
 * the other and by the `zstd` CLI of any host.
 *
 * COLDSEAL_ZSTD=child|in-process forces one for compression and decompression alike (the bench
 * compares them; tests run each); unset or "auto" lets the host decide as above.
 */
export type ZstdEngine = 'child' | 'in-process';

export interface ZstdAvailability {
  /** The zstd CLI's version, when the binary is on PATH. */
  readonly cli?: string;
  /** The libzstd version inside this Node's zlib, when it has zstd. */
  readonly inProcess?: string;
  /** COLDSEAL_ZSTD, when set to a known engine. */
  readonly forced?: ZstdEngine;
}

/** The part of node:zlib's zstd API used here (Node ≥ 22.15; @types/node here is 20's). */
interface ZlibWithZstd {
  createZstdCompress?(options: { chunkSize?: number; params?: Record<number, number> }): Transform & { bytesWritten: number };
  createZstdDecompress?(options: { chunkSize?: number }): Transform & { bytesWritten: number };
  constants: { ZSTD_c_compressionLevel?: number; ZSTD_c_checksumFlag?: number };
}

const zstdZlib = zlib as unknown as ZlibWithZstd;

let cliFound: string | null | undefined;

/** The host's zstd CLI version, or undefined without the binary (looked up once). */
export function zstdCliVersion(): string | undefined {
  if (cliFound === undefined) {
    try {
      const match = /v(\d+\.\d+\.\d+)/.exec(execFileSync('zstd', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
      cliFound = match?.[1] ?? null;
    } catch {
      cliFound = null;
    }
  }
  return cliFound ?? undefined;
}

/** The libzstd version in this Node's zlib, or undefined when this Node has no zstd (Node 20). */
export function inProcessZstdVersion(): string | undefined {
  if (typeof zstdZlib.createZstdCompress !== 'function' || typeof zstdZlib.createZstdDecompress !== 'function') return undefined;
  return (process.versions as Record<string, string | undefined>).zstd ?? 'unknown';
}

/** How the manifest and messages name Node's zstd: "node-zlib-zstd 1.5.7". */
export function inProcessZstdLabel(version = inProcessZstdVersion()): string {
  return `node-zlib-zstd ${version ?? ''}`.trim();
}

function forcedEngine(): ZstdEngine | undefined {
  const value = process.env.COLDSEAL_ZSTD;
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if (value === 'child' || value === 'in-process') return value;
  throw new ColdsealError(EXIT.CONFIG, `COLDSEAL_ZSTD must be "child", "in-process" or "auto", not "${value}"`, 'Unset COLDSEAL_ZSTD to let coldseal choose');
}

export function zstdAvailability(): ZstdAvailability {
  const forced = forcedEngine();
  // A forced engine needs no look-up of the other (the bench's in-process runs spawn no zstd --version).
  return {
    ...(forced !== 'in-process' ? { cli: zstdCliVersion() } : {}),
    ...(forced !== 'child' ? { inProcess: inProcessZstdVersion() } : {}),
    ...(forced ? { forced } : {}),
  };
}

/** The engine to use, or undefined when there is none (forced to one this host lacks, or neither). */
export function pickZstdEngine(available: ZstdAvailability): ZstdEngine | undefined {
  if (available.forced) return (available.forced === 'child' ? available.cli : available.inProcess) ? available.forced : undefined;
  if (available.cli) return 'child';
  if (available.inProcess) return 'in-process';
  return undefined;
}

/** What to say when zstd is needed and there is no engine for it. */
export function noZstdEngine(available: ZstdAvailability): { message: string; hint: string } {
  const install = 'Install zstd (apt install zstd / dnf install zstd)';
  if (available.forced === 'child') return { message: 'COLDSEAL_ZSTD is "child" but the zstd binary is not on PATH', hint: `${install}, or unset COLDSEAL_ZSTD` };
  if (available.forced === 'in-process') return { message: `COLDSEAL_ZSTD is "in-process" but this Node (${process.version}) has no zstd in its zlib`, hint: 'Run the self-contained agent (its Node has zstd), Node 22.15 or later, or unset COLDSEAL_ZSTD' };
  return { message: `the zstd binary is not on PATH and this Node (${process.version}) has no zstd in its zlib`, hint: `${install}, or run the self-contained agent (its Node has zstd built in)` };
}

/**
 * Node's zstd compressor, single-threaded: Node 24.22.3's zlib stream ends early with
 * ZSTD_c_nbWorkers > 0 ("stream.push() after EOF", the output a truncated frame) in about every run
 * on a 270 MB input (https://github.com/nodejs/node/issues/59899, open), so workers are never asked
 * for here (compression.threads does not apply). Node may end the stream with an extra empty frame
 * (https://github.com/nodejs/node/issues/66078): still one valid zstd stream, for Node and the CLI.
 */
export function createInProcessZstdCompress(level: number): Transform & { bytesWritten: number } {
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zstdZlib.constants;
  if (!zstdZlib.createZstdCompress || ZSTD_c_compressionLevel === undefined || ZSTD_c_checksumFlag === undefined) throw new Error(`this Node (${process.version}) has no zstd in its zlib`);
  // The content checksum the zstd CLI writes by default (libzstd's default is none): a damaged frame
  // then fails decompression wherever it is read, as the CLI's frames do.
  return zstdZlib.createZstdCompress({ chunkSize: 256 * 1024, params: { [ZSTD_c_compressionLevel]: level, [ZSTD_c_checksumFlag]: 1 } });
}

export function createInProcessZstdDecompress(): Transform & { bytesWritten: number } {
  if (!zstdZlib.createZstdDecompress) throw new Error(`this Node (${process.version}) has no zstd in its zlib`);
  return zstdZlib.createZstdDecompress({ chunkSize: 256 * 1024 });
}
