import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { S3Client } from '@aws-sdk/client-s3';
import { artifactKey, manifestKey, segmentKey, type SourceLocation } from '../../format/layout';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { groupEntries, isComplete, listAll, storageError, type BackupEntry, type CatalogObject } from '../../agent/src/catalog/listing';
import { latestOf } from '../../agent/src/catalog/latest';
import { parseRestoreHeader } from '../../agent/src/catalog/glacier';
import { summarize, type BackupRow } from '../../agent/src/catalog/rows';

const web1: SourceLocation = { tier: 'daily', group: 'web', host: 'web-1', source: 'pg' };
const at = (loc: Partial<SourceLocation>): SourceLocation => ({ ...web1, ...loc });
const obj = (key: string, size = 10, storageClass = 'STANDARD'): CatalogObject => ({ key, size, storageClass });

/** A backup's objects: its artifact (optionally in segments) and, when committed, its manifest. */
function backup(loc: SourceLocation, stamp: string, options: { manifest?: boolean; segments?: number } = {}): CatalogObject[] {
  const key = artifactKey(loc, stamp, 'db', 'dump');
  const objects = Array.from({ length: options.segments ?? 1 }, (_, i) => obj(segmentKey(key, i + 1), 100 * (i + 1)));
  return options.manifest === false ? objects : [...objects, obj(manifestKey(loc, stamp), 1)];
}

test('groupEntries: one entry per backup, segments folded into their artifact in order, foreign keys ignored', () => {
  const objects = [
    ...backup(web1, '20261122T010000Z', { segments: 3 }).reverse(),
    obj('backups/daily/web/web-1/pg/not-a-stamp.db.dump.pgp'),
    obj('reports/2026/11/22.json'),
    ...backup(web1, '20261121T010000Z', { manifest: false }),
  ];
  const entries = groupEntries(objects);
  assert.deepEqual(entries.map((e) => [e.stamp, isComplete(e)]), [['20261121T010000Z', false], ['20261122T010000Z', true]]);
  const [artifact] = entries[1].artifacts;
  assert.equal(artifact.artifact, 'db');
  assert.equal(artifact.extension, 'dump');
  assert.equal(artifact.size, 100 + 200 + 300);
  assert.deepEqual(artifact.objects.map((o) => o.size), [100, 200, 300], 'segments in segment order');
  assert.equal(artifact.key, artifactKey(web1, '20261122T010000Z', 'db', 'dump'), 'the artifact is named by its first segment');
});

test('groupEntries: filters by group, host, source, tier and time; sorts by group, host, source, stamp', () => {
  const objects = [
    ...backup(at({ host: 'web-2' }), '20261120T010000Z'),
    ...backup(at({ tier: 'weekly' }), '20261122T010000Z'),
    ...backup(web1, '20261122T010000Z'),
    ...backup(web1, '20261120T010000Z'),
    ...backup(at({ group: 'db', host: 'db-1' }), '20261121T010000Z'),
    ...backup(at({ source: 'files' }), '20261121T010000Z'),
  ];
  const id = (e: BackupEntry): string => `${e.tier}/${e.group}/${e.host}/${e.source}/${e.stamp}`;
  assert.deepEqual(groupEntries(objects).map(id), [
    'daily/db/db-1/pg/20261121T010000Z',
    'daily/web/web-1/files/20261121T010000Z',
    'daily/web/web-1/pg/20261120T010000Z',
    'daily/web/web-1/pg/20261122T010000Z',
    'weekly/web/web-1/pg/20261122T010000Z',
    'daily/web/web-2/pg/20261120T010000Z',
  ]);
  assert.deepEqual(groupEntries(objects, { group: 'web', host: 'web-1', source: 'pg', tier: 'daily' }).map((e) => e.stamp), ['20261120T010000Z', '20261122T010000Z']);
  assert.deepEqual(groupEntries(objects, { source: 'pg', since: new Date('2026-11-21T00:00:00Z') }).map(id), ['daily/db/db-1/pg/20261121T010000Z', 'daily/web/web-1/pg/20261122T010000Z', 'weekly/web/web-1/pg/20261122T010000Z']);
  // until is inclusive of the exact stamp.
  assert.deepEqual(groupEntries(objects, { host: 'web-1', source: 'pg', tier: 'daily', until: new Date('2026-11-20T01:00:00Z') }).map((e) => e.stamp), ['20261120T010000Z']);
});

test('latestOf: the newest complete backup of one source; incomplete ones never win', () => {
  const entries = groupEntries([...backup(web1, '20261120T010000Z'), ...backup(at({ tier: 'weekly' }), '20261121T010000Z'), ...backup(web1, '20261122T010000Z', { manifest: false })]);
  const latest = latestOf(entries, { group: 'web', source: 'pg' });
  assert.equal(latest.stamp, '20261121T010000Z');
  assert.equal(latest.tier, 'weekly', 'tiers are one history');
});

test('latestOf: a source on two hosts needs --host; none complete is NOT_FOUND counting the incomplete', () => {
  const entries = groupEntries([...backup(web1, '20261120T010000Z'), ...backup(at({ host: 'web-2' }), '20261122T010000Z'), ...backup(at({ source: 'files' }), '20261122T010000Z', { manifest: false })]);
  assert.throws(() => latestOf(entries, { group: 'web', source: 'pg' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /several hosts \(web-1, web-2\)/.test(e.message) && e.hint === 'Say which one with --host');
  assert.equal(latestOf(entries, { group: 'web', host: 'web-1', source: 'pg' }).stamp, '20261120T010000Z');
  assert.throws(() => latestOf(entries, { group: 'web', source: 'files' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.NOT_FOUND && e.message === 'no complete backup of source "files" in group web (1 incomplete, without a manifest)');
  assert.throws(() => latestOf(entries, { group: 'web', host: 'web-9', source: 'pg' }), (e: unknown) => e instanceof ColdsealError && e.message === 'no complete backup of source "pg" on host web-9 in group web');
});

test('parseRestoreHeader: none, ongoing, restored with or without an expiry', () => {
  assert.deepEqual(parseRestoreHeader(undefined), { state: 'none' });
  assert.deepEqual(parseRestoreHeader(''), { state: 'none' });
  assert.deepEqual(parseRestoreHeader('ongoing-request="true"'), { state: 'ongoing' });
  assert.deepEqual(parseRestoreHeader('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'), { state: 'restored', expiry: new Date('2012-12-21T00:00:00Z') });
  assert.deepEqual(parseRestoreHeader('ongoing-request="false"'), { state: 'restored', expiry: undefined });
});

test('storageError: a missing bucket, a denial and anything else, each exit STORAGE with what to check', () => {
  const cases: [unknown, RegExp, RegExp][] = [
    [Object.assign(new Error('x'), { name: 'NoSuchBucket' }), /^listing s3:\/\/b\/: the bucket does not exist$/, /bucket name and region/],
    [Object.assign(new Error('x'), { name: 'AccessDenied' }), /: access denied$/, /credentials allowed/],
    [new Error('Access Denied by policy'), /: access denied$/, /credentials allowed/],
    [new Error('socket hang up'), /^listing s3:\/\/b\/ failed: socket hang up$/, /network access/],
  ];
  for (const [error, message, hint] of cases) {
    const mapped = storageError(error, 'listing s3://b/');
    assert.equal(mapped.exitCode, EXIT.STORAGE);
    assert.match(mapped.message, message);
    assert.match(mapped.hint!, hint);
  }
});

test('listAll follows continuation tokens and maps a failed page to a storage error', async () => {
  const pages = [
    { Contents: [{ Key: 'a', Size: 1, StorageClass: 'GLACIER' }, { Key: 'b' }], IsTruncated: true, NextContinuationToken: 't1' },
    { Contents: [{ Key: 'c', Size: 3 }], IsTruncated: false },
  ];
  const tokens: (string | undefined)[] = [];
  const s3 = {
    send: async (command: { input: { ContinuationToken?: string; Prefix?: string } }) => {
      tokens.push(command.input.ContinuationToken);
      return pages[tokens.length - 1];
    },
  } as unknown as S3Client;
  const objects = await listAll(s3, 'bucket', 'backups/daily/');
  assert.deepEqual(objects.map((o) => [o.key, o.size, o.storageClass]), [['a', 1, 'GLACIER'], ['b', 0, 'STANDARD'], ['c', 3, 'STANDARD']]);
  assert.deepEqual(tokens, [undefined, 't1']);
  const failing = { send: async () => Promise.reject(Object.assign(new Error('no'), { name: 'NoSuchBucket' })) } as unknown as S3Client;
  await assert.rejects(listAll(failing, 'gone', 'backups/'), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.STORAGE && /s3:\/\/gone\/backups\/: the bucket does not exist/.test(e.message));
});

test('summarize: per source, the newest complete backup, its age, and counts per tier', () => {
  const row = (source: string, stamp: string, time: string, complete: boolean, tier: BackupRow['tier'] = 'daily'): BackupRow => ({ tier, group: 'web', host: 'web-1', source, stamp, time, complete, artifacts: [], bytes: 0, storage: 'STANDARD' });
  const rows = [
    row('pg', '20261120T010000Z', '2026-11-20T01:00:00Z', true),
    row('pg', '20261122T010000Z', '2026-11-22T01:00:00Z', true, 'weekly'),
    row('pg', '20261123T010000Z', '2026-11-23T01:00:00Z', false),
    row('files', '20261122T010000Z', '2026-11-22T01:00:00Z', false),
  ];
  const [pg, files] = summarize(rows, new Date('2026-11-23T13:00:00Z'));
  assert.equal(pg.source, 'pg');
  assert.equal(pg.latest?.stamp, '20261122T010000Z', 'an incomplete newer backup is not the latest');
  assert.equal(pg.ageHours, 36);
  assert.equal(pg.backups, 2);
  assert.equal(pg.incomplete, 1);
  assert.deepEqual(pg.byTier, { daily: 1, weekly: 1 });
  assert.deepEqual({ ...files, latest: files.latest ?? null }, { group: 'web', host: 'web-1', source: 'files', latest: null, ageHours: undefined, backups: 0, incomplete: 1, byTier: {} });
});
