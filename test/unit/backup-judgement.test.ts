import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeBackup, type Judged, type ObjectFacts } from '../../format/backup-judgement';
import { artifactKey, manifestKey, stampOf } from '../../format/layout';
import type { Manifest } from '../../format/manifest';

/**
 * The pure judgement (format/backup-judgement.ts) where the clock matters: the Object Lock term.
 * The table in test/lambdas/verifier-judges.test.ts drives both readers over S3; these are the
 * cases moto cannot date (an object written days ago, a dump that ran for a day and a half).
 */
const DAY = 86_400_000;
const HOUR = 3_600_000;
const loc = { tier: 'daily', group: 'web', host: 'web-1', source: 'pg' } as const;

function manifestOf(startedAt: Date, finishedAt: Date, change: Partial<Manifest['artifacts'][number]> = {}): Manifest {
  const stamp = stampOf(finishedAt);
  const ids = ['0123456789abcdef'];
  return {
    formatVersion: 2,
    ...loc,
    stamp,
    engine: { kind: 'files', version: null },
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    compression: { algorithm: 'zstd', level: 3, implementation: 'zstd-cli' },
    encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', recipientFingerprints: ['a'.repeat(40)], recipientKeyIds: ids },
    signingKeyFingerprint: 'b'.repeat(40),
    artifacts: [
      {
        name: 'logs',
        kind: 'directory',
        key: artifactKey(loc, stamp, 'logs', 'tar.zst'),
        contentFormat: 'tar',
        tool: { name: 'tar', version: '1.35', args: [] },
        exitCode: 0,
        warnings: [],
        completion: { method: 'archive-end', detail: 'tar exited with status 0 after writing the end-of-archive record' },
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        uncompressedBytes: 100,
        compressedBytes: 100,
        ciphertextBytes: 100,
        ciphertextSha256: 'c'.repeat(64),
        parts: { size: 1024, sha256: ['d'.repeat(64)] },
        ...change,
      },
    ],
    agent: { version: '0.1.0', node: 'v20' },
  };
}

function judge(manifest: Manifest, facts: Partial<ObjectFacts>, now: Date): Judged[] {
  const objects = new Map([[manifest.artifacts[0].key, { size: 100, storageClass: 'STANDARD', lastModified: new Date(manifest.finishedAt), restore: undefined, lock: null, ...facts }]]);
  return [...judgeBackup({ manifest, manifestKey: manifestKey(loc, manifest.stamp), objects, lock: { days: 30 }, now }).items];
}

const verdictOf = (items: Judged[], check: Judged['check']) => items.filter((i) => i.check === check).map((i) => i.verdict);

test('a lock set when a long dump started has served its term when it ends, though the object is dated a day and a half later', () => {
  const start = Date.parse('2026-11-01T00:00:00Z');
  const manifest = manifestOf(new Date(start), new Date(start + 36 * HOUR));
  const lock = { mode: 'GOVERNANCE', until: new Date(start + 30 * DAY) };
  assert.deepEqual(verdictOf(judge(manifest, { lock }, new Date(start + 29 * DAY)), 'object-lock'), ['pass']);
  assert.deepEqual(verdictOf(judge(manifest, { lock }, new Date(start + 30 * DAY + HOUR)), 'object-lock'), ['pass']);
  // A lock two days short of the tier's term is a lock that ended early.
  const short = { mode: 'GOVERNANCE', until: new Date(start + 28 * DAY) };
  assert.deepEqual(verdictOf(judge(manifest, { lock: short }, new Date(start + 28 * DAY + HOUR)), 'object-lock'), ['fail']);
  // Past the term, no lock is expected any more; before it, none is a FAIL.
  assert.deepEqual(verdictOf(judge(manifest, { lock: null }, new Date(start + 31 * DAY)), 'object-lock'), ['pass']);
  assert.deepEqual(verdictOf(judge(manifest, { lock: null }, new Date(start + DAY)), 'object-lock'), ['fail']);
  // A reader that cannot see retention neither passes nor fails it.
  assert.deepEqual(verdictOf(judge(manifest, { lock: undefined }, new Date(start + DAY)), 'object-lock'), ['skip']);
});

test('an exit status is a PASS at 0, a WARN when the agent tolerated it with a warning, a FAIL otherwise', () => {
  const at = new Date('2026-11-01T00:00:00Z');
  const now = new Date(at.getTime() + HOUR);
  const lock = { mode: 'GOVERNANCE', until: new Date(at.getTime() + 30 * DAY) };
  const run = (change: Partial<Manifest['artifacts'][number]>) => judgeBackup({ manifest: manifestOf(at, at, change), manifestKey: manifestKey(loc, stampOf(at)), objects: new Map([[artifactKey(loc, stampOf(at), 'logs', 'tar.zst'), { size: 100, storageClass: 'STANDARD', lastModified: at, restore: undefined, lock }]]), now });
  assert.equal(run({}).verdict, 'pass');
  const tolerated = run({ exitCode: 1, warnings: ['tar: ./syslog: file changed as we read it'] });
  assert.equal(tolerated.verdict, 'warn');
  assert.deepEqual(verdictOf([...tolerated.items], 'dump-exit-status'), ['warn']);
  assert.equal(run({ exitCode: 1 }).verdict, 'fail');
});
