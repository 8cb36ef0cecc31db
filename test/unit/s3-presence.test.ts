import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { S3Client } from '@aws-sdk/client-s3';
import { isNotFound, unreadableMessage, whyUnreadable } from '../../runtime/s3-presence';

const s3Error = (name: string, status?: number) => Object.assign(new Error('UnknownError'), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}) });

test('isNotFound: a 404 about the key, not about the bucket or a version', () => {
  const cases: [unknown, boolean][] = [
    [s3Error('NoSuchKey'), true],
    [s3Error('NotFound', 404), true],
    [s3Error('Unknown', 404), true],
    [s3Error('NoSuchBucket', 404), false],
    [s3Error('NoSuchVersion', 404), false],
    [s3Error('Unknown', 403), false],
    [new Error('socket hang up'), false],
  ];
  for (const [error, expected] of cases) assert.equal(isNotFound(error), expected, (error as Error).name);
});

/** A bucket whose LIST answers from `keys`, or is itself denied. */
function bucket(keys: string[] | 'denied'): { s3: S3Client; listed: string[] } {
  const listed: string[] = [];
  const s3 = {
    send: async (command: { input: { Prefix: string; MaxKeys: number } }) => {
      listed.push(`${command.input.Prefix}:${command.input.MaxKeys}`);
      if (keys === 'denied') throw s3Error('AccessDenied', 403);
      return { Contents: keys.filter((k) => k.startsWith(command.input.Prefix)).sort().slice(0, command.input.MaxKeys).map((Key) => ({ Key })) };
    },
  } as unknown as S3Client;
  return { s3, listed };
}

test('whyUnreadable: 404 is missing at once; a 403 is told apart by one listing under the key, when allowed', async () => {
  const key = 'backups/daily/web/web-1/pg/S.db.dump.pgp';
  const none = bucket([]);
  assert.equal(await whyUnreadable(none.s3, 'b', key, s3Error('NotFound', 404)), 'missing');
  assert.deepEqual(none.listed, [], 'a 404 needs no listing');
  const present = bucket([key, `${key}.seg00002`]);
  assert.equal(await whyUnreadable(present.s3, 'b', key, s3Error('Unknown', 403)), 'denied');
  assert.deepEqual(present.listed, [`${key}:1`]);
  // Only a longer key with this prefix: this one is gone.
  assert.equal(await whyUnreadable(bucket([`${key}.seg00002`]).s3, 'b', key, s3Error('Unknown', 403)), 'missing');
  assert.equal(await whyUnreadable(bucket('denied').s3, 'b', key, s3Error('Unknown', 403)), 'denied-or-missing');
  assert.equal(await whyUnreadable(none.s3, 'b', key, s3Error('SlowDown', 503)), undefined, 'not a 403 or 404: not ours to explain');
});

test('unreadableMessage names the object and says what is known', () => {
  assert.equal(unreadableMessage('missing', 'segment 2 of 3, s3://b/k'), 'segment 2 of 3, s3://b/k is missing although the signed manifest lists it');
  assert.equal(unreadableMessage('denied', 's3://b/k'), 's3://b/k exists but these credentials may not read it (access denied)');
  assert.match(unreadableMessage('denied-or-missing', 's3://b/k'), /^s3:\/\/b\/k cannot be read: access denied, .* without s3:ListBucket\)$/);
});
