/**
 * Run by test/unit/zstd.test.ts under the self-contained agent's Node 24 (the test runner's Node 20
 * has no zstd in zlib): the in-process zstd compressor and decompressor on the cases that matter
 * (whole, truncated, corrupt, empty, trailing bytes, a file descriptor, a kill, a reader that stops),
 * printing one JSON object of facts for the test to judge.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { chooseCompression, startCompressor } from '../../agent/src/pipeline/compression';
import type { Decryption } from '../../agent/src/pipeline/decrypt';
import { startDecompression } from '../../agent/src/pipeline/decompress';

/** A decryption stand-in whose output is `bytes`, in 64 KiB chunks. */
function fakeDecryption(bytes: Buffer): Decryption {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += 65536) chunks.push(bytes.subarray(offset, offset + 65536));
  return { output: Readable.from(chunks), by: 'test', done: Promise.resolve(null), kill: () => undefined };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Decompresses `compressed` in-process; the plaintext read by Node. */
async function decompressed(compressed: Buffer) {
  const running = startDecompression('zstd', fakeDecryption(compressed), undefined, undefined);
  const [plaintext, verdict] = await Promise.all([collect(running.plaintext), running.decompressed]);
  return { verdict, plaintextBytes: plaintext.length, sha256: sha(plaintext), reportedBytes: running.reportedBytes() };
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function main(): Promise<void> {
  process.env.COLDSEAL_ZSTD = 'in-process';
  const plaintext = Buffer.concat(Array.from({ length: 400 }, (_, i) => Buffer.from(`row ${i} ${'x'.repeat(i % 97)} ${Math.sin(i)}\n`.repeat(50))));

  // Compression in Node: one zstd frame stream the zstd CLI reads.
  const choice = chooseCompression({ algorithm: 'auto', threads: 0 });
  const compressor = startCompressor(choice);
  compressor.input!.end(plaintext);
  const compressed = await collect(compressor.output);
  const byCli = execFileSync('zstd', ['-d', '-c'], { input: compressed, maxBuffer: 1 << 28 });
  let fdRefused = '';
  try {
    startCompressor(choice, 0);
  } catch (error) {
    fdRefused = (error as Error).message;
  }
  // And what the CLI wrote, Node reads.
  const cliCompressed = execFileSync('zstd', ['-3', '-c', '-q'], { input: plaintext, maxBuffer: 1 << 28 });

  const dir = mkdtempSync(join(tmpdir(), 'coldseal-zstd-cases-'));
  const toFd = async (bytes: Buffer) => {
    const path = join(dir, `out-${Math.random().toString(36).slice(2)}`);
    const fd = openSync(path, 'w');
    const running = startDecompression('zstd', fakeDecryption(bytes), fd, undefined);
    const verdict = await running.decompressed;
    closeSync(fd);
    return { verdict, sha256: sha(readFileSync(path)), reportedBytes: running.reportedBytes() };
  };
  // A sink's stdin stand-in: a PassThrough read by the test.
  const toSink = async (bytes: Buffer) => {
    const sink = new PassThrough();
    const read = collect(sink);
    const running = startDecompression('zstd', fakeDecryption(bytes), undefined, sink);
    const [verdict, got] = await Promise.all([running.decompressed, read.catch((error: Error) => Buffer.from(`error: ${error.message}`))]);
    return { verdict, sha256: sha(got) };
  };

  // A sink that fails (a restore tool that exits): its failure is its own to report, not zstd's.
  const sinkGone = async (bytes: Buffer) => {
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })) });
    sink.on('error', () => undefined);
    return { verdict: await startDecompression('zstd', fakeDecryption(bytes), undefined, sink).decompressed };
  };

  // A reader that stops: how much plaintext Node's zstd makes ahead of it (backpressure).
  const big = execFileSync('zstd', ['-3', '-c', '-q'], { input: Buffer.alloc(256 * 1024 * 1024, 'a'), maxBuffer: 1 << 28 });
  const stalled = startDecompression('zstd', fakeDecryption(big), undefined, undefined);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const aheadOfStalledReader = stalled.reportedBytes();
  stalled.kill();
  const afterKill = await Promise.race([stalled.decompressed.then((verdict) => ({ settled: true, verdict })), new Promise((resolve) => setTimeout(() => resolve({ settled: false }), 5000))]);

  const results = {
    implementation: choice.implementation,
    runsIn: choice.runsIn,
    threads: choice.threads,
    roundTripByCli: byCli.equals(plaintext),
    uncompressedBytes: compressor.uncompressedBytes(),
    plaintextBytes: plaintext.length,
    plaintextSha256: sha(plaintext),
    fdRefused,
    whole: await decompressed(compressed),
    cliMade: await decompressed(cliCompressed),
    twoFrames: await decompressed(Buffer.concat([compressed, cliCompressed])),
    truncated: await decompressed(compressed.subarray(0, compressed.length - 7)),
    half: await decompressed(compressed.subarray(0, compressed.length >> 1)),
    corrupt: await decompressed(Buffer.concat([compressed.subarray(0, 40), Buffer.alloc(64, 0x5a), compressed.subarray(104)])),
    notZstd: await decompressed(Buffer.from('this is not a zstd frame at all')),
    empty: await decompressed(Buffer.alloc(0)),
    trailingBytes: await decompressed(Buffer.concat([compressed, Buffer.from('xx')])),
    fdWhole: await toFd(compressed),
    fdTruncated: await toFd(compressed.subarray(0, compressed.length - 7)),
    sinkWhole: await toSink(compressed),
    sinkTruncated: await toSink(compressed.subarray(0, compressed.length >> 1)),
    sinkGone: await sinkGone(compressed),
    aheadOfStalledReader,
    afterKill,
  };
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

void main();
