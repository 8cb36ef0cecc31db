import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { WAL_FETCH_EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import { historyFileName, segmentFileName } from '../../format/wal';
import { generateKeyPair } from '../../runtime/pgp';
import { writeFetchPlan, type FetchPlan } from '../../agent/src/pitr/fetch-plan';
import { createAgentSandbox, type AgentSandbox, type CliResult } from '../harness/agent';
import { startS3Proxy, type S3Proxy } from '../harness/s3-proxy';
import { archiveWal, fakeSegment, sealWal, SYSTEM_IDENTIFIER } from '../harness/wal-archive';

/**
 * restore_command (`coldseal pitr wal-fetch`) against WAL objects written in the archive contract
 * (test/harness/wal-archive.ts): what PostgreSQL gets for a file that is there, past the end, missing
 * in the middle, tampered with, or behind an unreachable S3; and the prefetch queue.
 */
const SEG = 1 << 20;
const seg = (timeline: number, n: number) => segmentFileName(timeline, BigInt(n), SEG);

let sandbox: AgentSandbox;
let work: string;
const originals = new Map<string, Buffer>();

async function archive(source: string, walFiles: string[]): Promise<void> {
  for (const walFile of walFiles) {
    const plaintext = fakeSegment(`${source}/${walFile}`, SEG);
    originals.set(`${source}/${walFile}`, plaintext);
    await archiveWal(sandbox, { source, walFile, plaintext, walSegmentSize: SEG });
  }
}

async function spoolFor(source: string, ranges: FetchPlan['ranges'], options: { prefetch?: number; concurrency?: number; endpoint?: string; histories?: string[] } = {}): Promise<string> {
  const spool = mkdtempSync(join(work, `spool-${source}-`));
  await writeFetchPlan(spool, {
    formatVersion: 1,
    group: 'testgroup',
    host: 'testhost',
    source,
    storage: { bucket: sandbox.bucket, region: sandbox.account.clientConfig.region, endpoint: options.endpoint ?? sandbox.account.clientConfig.endpoint },
    systemIdentifier: SYSTEM_IDENTIFIER,
    walSegmentSize: SEG,
    trustedSigningKeys: sandbox.signing.publicKey,
    privateKey: { file: sandbox.recipient.privateFile },
    ranges,
    histories: options.histories ?? [],
    prefetch: options.prefetch ?? 0,
    concurrency: options.concurrency ?? 2,
    createdAt: new Date().toISOString(),
  });
  return spool;
}

/** A data directory's pg_wal, as PostgreSQL's %p points into it. */
function pgWal(): string {
  const dir = join(mkdtempSync(join(work, 'data-')), 'pg_wal');
  mkdirSync(dir);
  return dir;
}

function walFetch(spool: string, walFile: string, destination: string, extra: string[] = []): Promise<CliResult> {
  return sandbox.runCli(['pitr', 'wal-fetch', '--spool', spool, ...extra, walFile, destination]);
}

before(async () => {
  sandbox = await createAgentSandbox();
  work = mkdtempSync(join(tmpdir(), 'coldseal-walfetch-'));
  await archive('pg', [1, 2, 3, 4, 5, 6, 7, 8].map((n) => seg(1, n)));
});

after(() => rmSync(work, { recursive: true, force: true }));

describe('pitr wal-fetch (restore_command)', () => {
  test('a segment in the archive is proven, decrypted and put at %p: exactly the original bytes', async () => {
    const spool = await spoolFor('pg', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 8) }]);
    const dir = pgWal();
    const result = await walFetch(spool, seg(1, 3), join(dir, 'RECOVERYXLOG'));
    assert.equal(result.code, WAL_FETCH_EXIT.OK, result.stderr);
    assert.ok(readFileSync(join(dir, 'RECOVERYXLOG')).equals(originals.get(`pg/${seg(1, 3)}`)!));
    assert.deepEqual(readdirSync(dir), ['RECOVERYXLOG'], 'no temp file left behind');
    assert.match(result.log, new RegExp(`fetched ${seg(1, 3)} from the archive, signature and checksums verified`));
  });

  test('exit 1, nothing written: past the end of the archive, and the files recovery only probes for', async () => {
    const spool = await spoolFor('pg', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 8) }]);
    const dir = pgWal();
    const probes = [seg(1, 9), historyFileName(2), seg(2, 4), `${seg(1, 8)}.partial`];
    const results = await Promise.all(probes.map((walFile) => walFetch(spool, walFile, join(dir, 'RECOVERYXLOG'))));
    probes.forEach((walFile, i) => {
      assert.equal(results[i].code, WAL_FETCH_EXIT.NOT_IN_ARCHIVE, `${walFile}: ${results[i].stderr}`);
      assert.match(results[i].log, new RegExp(`${walFile.replace('.', '\\.')} is not in the archive`));
    });
    assert.deepEqual(readdirSync(dir), []);
  });

  test('a planned segment or history deleted from the archive: exit 126 naming it, recovery must not end there', async () => {
    await archive('hole', [1, 2, 3, 4, 5].map((n) => seg(1, n)));
    await sandbox.s3.send(new DeleteObjectCommand({ Bucket: sandbox.bucket, Key: walObjectKey('testgroup', 'testhost', 'hole', seg(1, 3)) }));
    const spool = await spoolFor('hole', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 5) }], { histories: [historyFileName(2)] });
    const dir = pgWal();
    const missing = await walFetch(spool, seg(1, 3), join(dir, 'RECOVERYXLOG'));
    assert.equal(missing.code, WAL_FETCH_EXIT.ABORT_RECOVERY, missing.stderr);
    assert.match(missing.log, new RegExp(`WAL ${seg(1, 3)} is missing from the archive although the restore planned it`));
    assert.match(missing.stderr, /restore it from the offsite replica or a previous object version, or restore to a target before/);
    const history = await walFetch(spool, historyFileName(2), join(dir, 'RECOVERYHISTORY'));
    assert.equal(history.code, WAL_FETCH_EXIT.ABORT_RECOVERY, history.stderr);
    assert.deepEqual(readdirSync(dir), []);
  });

  test('tampered objects: bytes changed, record signed by another key, object copied under another segment, WAL of another cluster: exit 126 naming the segment', async () => {
    const source = 'tamper';
    const keyOf = (walFile: string) => walObjectKey('testgroup', 'testhost', source, walFile);
    const put = (walFile: string, body: Uint8Array, metadata: Record<string, string>) => sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: keyOf(walFile), Body: body, Metadata: metadata }));
    await archive(source, [seg(1, 1)]);
    // Bytes swapped in the middle of the ciphertext, the signed record left as it was.
    const genuine = await sandbox.s3.send(new GetObjectCommand({ Bucket: sandbox.bucket, Key: keyOf(seg(1, 1)) }));
    const bytes = Buffer.from(await genuine.Body!.transformToByteArray());
    const middle = bytes.length >> 1;
    [bytes[middle], bytes[middle + 1]] = [bytes[middle + 1] ^ 0xff, bytes[middle]];
    await put(seg(1, 1), bytes, genuine.Metadata!);
    // A record signed by a key the group does not trust.
    const stranger = await generateKeyPair({ name: 'not the group' }, undefined, { signOnly: true });
    const foreign = await sealWal(sandbox, { source, walFile: seg(1, 2), plaintext: fakeSegment('x', SEG), walSegmentSize: SEG, signingKey: stranger.privateKey });
    await put(seg(1, 2), foreign.body, foreign.metadata);
    // Segment 4's genuine object copied to segment 3's key.
    const moved = await sealWal(sandbox, { source, walFile: seg(1, 4), plaintext: fakeSegment('y', SEG), walSegmentSize: SEG });
    await put(seg(1, 3), moved.body, moved.metadata);
    // Well signed, but WAL of another cluster.
    const other = await sealWal(sandbox, { source, walFile: seg(1, 5), plaintext: fakeSegment('z', SEG), walSegmentSize: SEG, systemIdentifier: '6999999999999999999' });
    await put(seg(1, 5), other.body, other.metadata);

    const spool = await spoolFor(source, [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 5) }]);
    const dir = pgWal();
    const cases = [
      [seg(1, 1), /failed its integrity check: its ciphertext \(\d+ bytes, SHA-256 [0-9a-f]{64}\) is not what the signed record says/],
      [seg(1, 2), /not a trusted signing key of this group/],
      [seg(1, 3), new RegExp(`the record is for .*${seg(1, 4)}\\.pgp, not .*${seg(1, 3)}\\.pgp \\(object copied or swapped\\)`)],
      [seg(1, 5), /belongs to database system 6999999999999999999, not 7451234567890123456/],
    ] as const;
    const results = await Promise.all(cases.map(([walFile]) => walFetch(spool, walFile, join(dir, 'RECOVERYXLOG'))));
    for (const [i, [walFile, why]] of cases.entries()) {
      const result = results[i];
      assert.equal(result.code, WAL_FETCH_EXIT.ABORT_RECOVERY, `${walFile}: ${result.stderr}`);
      assert.match(result.log, new RegExp(`WAL ${walFile}`), 'the message names the segment');
      assert.match(result.log, why);
      assert.match(result.log, /recovery stops here \(exit 126\)/);
    }
    assert.deepEqual(readdirSync(dir), [], 'nothing unverified reached pg_wal');
  });

  test('S3 unreachable: exit 126 after the retries, not "not in the archive"', async () => {
    const spool = await spoolFor('pg', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 8) }], { endpoint: 'http://127.0.0.1:9' });
    const dir = pgWal();
    const walFiles = [seg(1, 2), seg(1, 9)];
    const results = await Promise.all(walFiles.map((walFile) => walFetch(spool, walFile, join(dir, 'RECOVERYXLOG'))));
    walFiles.forEach((walFile, i) => {
      assert.equal(results[i].code, WAL_FETCH_EXIT.ABORT_RECOVERY, `${walFile}: ${results[i].stderr}`);
      assert.match(results[i].log, new RegExp(`reading s3://${sandbox.bucket}/wal/testgroup/testhost/pg/00000001/${walFile}\\.pgp failed`));
    });
    assert.deepEqual(readdirSync(dir), []);
  });

  test('connections dropped twice: the SDK\'s retries get the segment (exit 0); dropped every time: exit 126', async () => {
    let dropped = 0;
    const flaky = await startS3Proxy(sandbox.account.clientConfig.endpoint, { drop: (method, query) => method === 'GET' && !query.has('list-type') && dropped++ < 2 });
    const down = await startS3Proxy(sandbox.account.clientConfig.endpoint, { drop: (method) => method === 'GET' });
    try {
      const dir = pgWal();
      const recovered = await walFetch(await spoolFor('pg', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 8) }], { endpoint: flaky.url }), seg(1, 4), join(dir, 'RECOVERYXLOG'));
      assert.equal(recovered.code, WAL_FETCH_EXIT.OK, recovered.stderr);
      assert.equal(flaky.dropped(), 2);
      assert.ok(readFileSync(join(dir, 'RECOVERYXLOG')).equals(originals.get(`pg/${seg(1, 4)}`)!));
      const failed = await walFetch(await spoolFor('pg', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 8) }], { endpoint: down.url }), seg(1, 5), join(dir, 'RECOVERYXLOG.2'));
      assert.equal(failed.code, WAL_FETCH_EXIT.ABORT_RECOVERY, failed.stderr);
      assert.ok(down.dropped() >= 3, `retried before giving up (${down.dropped()} attempts)`);
      assert.ok(!existsSync(join(dir, 'RECOVERYXLOG.2')));
    } finally {
      await flaky.close();
      await down.close();
    }
  });

  describe('prefetch', () => {
    let proxy: S3Proxy;
    before(async () => {
      proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint);
    });
    after(() => proxy.close());

    test('after the first segment, each next one is served from the bounded, verified queue: every segment is read from S3 once', async () => {
      const PREFETCH = 3;
      const spool = await spoolFor('pg', [{ timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 8) }], { prefetch: PREFETCH, concurrency: 2, endpoint: proxy.url });
      const queue = join(spool, 'queue');
      let largest = 0;
      const sampler = setInterval(() => {
        if (existsSync(queue)) largest = Math.max(largest, readdirSync(queue).length);
      }, 5);
      const dir = pgWal();
      try {
        const first = await walFetch(spool, seg(1, 1), join(dir, 'RECOVERYXLOG'));
        assert.equal(first.code, WAL_FETCH_EXIT.OK, first.stderr);
        assert.match(first.log, /from the archive/);
        for (let n = 2; n <= 8; n++) {
          // Recovery replays a segment before it asks for the next: the prefetcher fills the queue meanwhile.
          const expected = [n, n + 1, n + 2].filter((k) => k <= 8).map((k) => seg(1, k));
          const deadline = Date.now() + 30_000;
          while (!expected.every((f) => existsSync(join(queue, f)))) {
            if (Date.now() > deadline) {
              const log = existsSync(join(spool, 'prefetch.log')) ? readFileSync(join(spool, 'prefetch.log'), 'utf8') : '-';
              assert.fail(`the prefetcher did not queue ${expected.join(', ')} (queue: ${existsSync(queue) ? readdirSync(queue).join(', ') : 'none'}; its log: ${log})`);
            }
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          const result = await walFetch(spool, seg(1, n), join(dir, 'RECOVERYXLOG'));
          assert.equal(result.code, WAL_FETCH_EXIT.OK, result.stderr);
          assert.match(result.log, new RegExp(`served ${seg(1, n)} from the prefetch queue`));
          assert.ok(readFileSync(join(dir, 'RECOVERYXLOG')).equals(originals.get(`pg/${seg(1, n)}`)!), `${seg(1, n)} is the original`);
        }
      } finally {
        clearInterval(sampler);
      }
      const gets = proxy.seen.filter((r) => r.method === 'GET' && !r.query.has('list-type'));
      assert.equal(gets.length, 8, 'each of the 8 segments was read from S3 exactly once');
      assert.ok(largest <= PREFETCH, `the queue held ${largest} files at most (bound ${PREFETCH}, in-flight ones included)`);
      assert.ok(largest >= 2, 'the queue did fill');
      assert.deepEqual(readdirSync(queue), [], 'served files left the queue');
      // Removing the spool ends the idle prefetcher.
      rmSync(spool, { recursive: true, force: true });
    });
  });
});
