import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackupEntry } from '../../agent/src/catalog/listing';
import { latestPerSource } from '../../agent/src/restore/drill';

const entry = (host: string, source: string, stamp: string, complete = true, tier: BackupEntry['tier'] = 'daily'): BackupEntry => ({
  tier,
  group: 'web',
  host,
  source,
  stamp,
  artifacts: [],
  ...(complete ? { manifest: { key: `${tier}/${host}/${source}/${stamp}`, size: 1, storageClass: 'STANDARD' } } : {}),
});

test('latestPerSource: the newest complete backup of each (host, source), over tiers, sorted by host then source', () => {
  const chosen = latestPerSource([
    entry('web-2', 'pg', '20261120T010000Z'),
    entry('web-1', 'pg', '20261121T010000Z'),
    entry('web-1', 'pg', '20261122T010000Z', true, 'weekly'),
    entry('web-1', 'pg', '20261123T010000Z', false),
    entry('web-1', 'files', '20261120T010000Z'),
    entry('web-1', 'mysql', '20261121T010000Z', false),
  ]);
  assert.deepEqual(chosen.map((e) => `${e.host}/${e.source}/${e.stamp}/${e.tier}`), ['web-1/files/20261120T010000Z/daily', 'web-1/pg/20261122T010000Z/weekly', 'web-2/pg/20261120T010000Z/daily']);
  assert.deepEqual(latestPerSource([entry('web-1', 'pg', '20261123T010000Z', false)]), []);
});
