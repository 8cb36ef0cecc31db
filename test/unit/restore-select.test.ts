import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { S3Client } from '@aws-sdk/client-s3';
import { artifactKey, manifestKey, type SourceLocation } from '../../format/layout';
import type { Artifact, Manifest } from '../../format/manifest';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { pickArtifact, resolveManifestKey } from '../../agent/src/restore/select';

const web1: SourceLocation = { tier: 'daily', group: 'web', host: 'web-1', source: 'pg' };
const weekly: SourceLocation = { ...web1, tier: 'weekly' };

/** A bucket as LIST sees it: keys under a prefix (the catalog lists one prefix per tier). */
function listingBucket(keys: readonly string[]): { s3: S3Client; prefixes: string[] } {
  const prefixes: string[] = [];
  const s3 = {
    send: async (command: { input: { Prefix: string } }) => {
      prefixes.push(command.input.Prefix);
      return { Contents: keys.filter((k) => k.startsWith(command.input.Prefix)).map((Key) => ({ Key, Size: 1 })), IsTruncated: false };
    },
  } as unknown as S3Client;
  return { s3, prefixes };
}

function committed(loc: SourceLocation, stamp: string): string[] {
  return [artifactKey(loc, stamp, 'db', 'dump'), manifestKey(loc, stamp)];
}

const bucket = listingBucket([
  ...committed(web1, '20261120T010000Z'),
  ...committed(weekly, '20261122T010000Z'),
  ...committed(web1, '20261123T010000Z'),
  artifactKey(web1, '20261124T010000Z', 'db', 'dump'), // never committed
]);
const selector = { group: 'web', host: 'web-1', source: 'pg' };

test('--at latest: the newest committed backup of the source, over every tier', async () => {
  const chosen = await resolveManifestKey(bucket.s3, 'b', { ...selector, at: 'latest' });
  assert.equal(chosen.key, manifestKey(web1, '20261123T010000Z'));
  assert.equal(chosen.newest, true);
  assert.ok(bucket.prefixes.includes('backups/weekly/web/web-1/pg/'), 'each tier is listed under the narrowest prefix');
});

test('--at a time: the last backup at or before it; an older one is not the newest', async () => {
  const cases: [string, string, boolean][] = [
    ['2026-11-22T12:00:00Z', manifestKey(weekly, '20261122T010000Z'), false],
    ['2026-11-22T01:00:00Z', manifestKey(weekly, '20261122T010000Z'), false],
    [' 2026-11-30 ', manifestKey(web1, '20261123T010000Z'), true],
  ];
  for (const [at, key, newest] of cases) {
    const chosen = await resolveManifestKey(bucket.s3, 'b', { ...selector, at });
    assert.deepEqual([chosen.key, chosen.newest], [key, newest], at);
  }
  await assert.rejects(resolveManifestKey(bucket.s3, 'b', { ...selector, at: '2026-11-01T00:00:00Z' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.NOT_FOUND);
});

test('--at a stamp: exactly that backup, or NOT_FOUND naming the last one before it', async () => {
  assert.equal((await resolveManifestKey(bucket.s3, 'b', { ...selector, at: '20261120T010000Z' })).key, manifestKey(web1, '20261120T010000Z'));
  await assert.rejects(resolveManifestKey(bucket.s3, 'b', { ...selector, at: '20261121T000000Z' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.NOT_FOUND && e.message === 'no complete backup of "pg" has the stamp 20261121T000000Z (the last before it is 20261120T010000Z)');
  // An uncommitted backup's stamp is not a backup.
  await assert.rejects(resolveManifestKey(bucket.s3, 'b', { ...selector, at: '20261124T010000Z' }), /the last before it is 20261123T010000Z/);
});

test('--at a key: its manifest, without listing; drill receipts and foreign keys are refused', async () => {
  const quiet = listingBucket([]);
  const artifact = artifactKey(web1, '20261120T010000Z', 'db', 'dump');
  for (const at of [artifact, `s3://some-bucket/${artifact}`, manifestKey(web1, '20261120T010000Z')]) {
    assert.deepEqual(await resolveManifestKey(quiet.s3, 'b', { group: 'web', at }), { key: manifestKey(web1, '20261120T010000Z') }, at);
  }
  assert.deepEqual(quiet.prefixes, []);
  for (const at of ['drills/web/web-1/20261120T010000Z.drill.json', 'backups/daily/web/web-1/pg/readme.txt']) {
    await assert.rejects(resolveManifestKey(quiet.s3, 'b', { group: 'web', at }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && e.message === `--at "${at}" is not the key of a backup manifest or artifact`);
  }
});

test('without a key, --source is required; an --at that is nothing known is a usage error', async () => {
  await assert.rejects(resolveManifestKey(bucket.s3, 'b', { group: 'web', at: 'latest' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && e.hint === 'Add --source NAME');
  await assert.rejects(resolveManifestKey(bucket.s3, 'b', { ...selector, at: 'yesterday' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /--at "yesterday" is neither "latest", a stamp/.test(e.message));
});

test('pickArtifact: the one that fits, the named one, or a usage error listing them', () => {
  const artifacts = [
    { name: 'shop', kind: 'database' },
    { name: 'globals', kind: 'globals' },
  ] as Artifact[];
  const manifest = { artifacts } as unknown as Manifest;
  assert.equal(pickArtifact(manifest, undefined, (a) => a.kind === 'database').name, 'shop');
  assert.equal(pickArtifact(manifest, 'globals', (a) => a.kind === 'database').name, 'globals', 'a name wins over the filter');
  assert.equal(pickArtifact({ artifacts: [artifacts[0]] } as unknown as Manifest, undefined).name, 'shop');
  assert.throws(() => pickArtifact(manifest, undefined), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && e.message === 'the backup holds 2 artifacts (shop [database], globals [globals])' && e.hint === 'Say which one with --artifact NAME');
  assert.throws(() => pickArtifact(manifest, 'orders'), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.NOT_FOUND && e.message === 'the backup holds no artifact "orders"' && e.hint === 'It holds: shop, globals');
});
