import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { binlogFileName } from '../../format/binlog';
import { BINLOG_RECORD_METADATA, type BinlogRecord } from '../../format/binlog-record';
import { binlogObjectKey, manifestKey, walObjectKey } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { reportSchema } from '../../format/verification-report';
import { encryptionKeyIds, fingerprintOf, readPublicKeys } from '../../runtime/pgp';
import { signBinlogRecord } from '../../runtime/binlog-record';
import { signManifest } from '../../runtime/signed-document';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { BinlogPitrRow } from '../../lambdas/verifier/core/binlog-pitr';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, buildBackup, drainInbox, encryptTo, newWorld, putObject, type World } from './fixtures';

/**
 * The verifier on MySQL/MariaDB binary log archives (PITR sources with engine "mysql"): binary log
 * objects written as binlog-push writes them (the signed record in the object's own metadata, an
 * OpenPGP message to the group's recipients, Object Lock), dumps as signed manifests whose
 * database artifact records the binary log position of its snapshot. The verifier never decrypts,
 * so a "binary log" is random bytes encrypted to the escrow key.
 */
let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

const MIN = 60_000;
const GROUPS = [{ name: 'web', rpoHours: 26, sources: ['shop'], hosts: ['maria-1'], retentionDays: { daily: 35 }, drillMaxAgeDays: null, pitrSources: [{ source: 'shop', engine: 'mysql', archiveTimeoutSeconds: 300 }] }];
const BASE = 'mariadb-bin';
const HOST = 'maria-1';

/** File n of the archive: opened at `start + 10(n-1)` minutes, closed 10 minutes later, two transactions of domain 0 (seq 2n-1, 2n). */
interface FileSpec {
  n: number;
  start: number;
}

function window(spec: FileSpec): Pick<BinlogRecord, 'gtidStart' | 'gtidEnd' | 'openedAt' | 'closedAt' | 'firstCommitAt' | 'lastCommitAt'> {
  const opened = spec.start + (spec.n - 1) * 10 * MIN;
  return {
    gtidStart: spec.n === 1 ? '' : `0-1-${2 * (spec.n - 1)}`,
    gtidEnd: `0-1-${2 * spec.n}`,
    openedAt: new Date(opened).toISOString(),
    closedAt: new Date(opened + 10 * MIN).toISOString(),
    firstCommitAt: new Date(opened + 2 * MIN).toISOString(),
    lastCommitAt: new Date(opened + 8 * MIN).toISOString(),
  };
}

/** Writes one binary log object as binlog-push does: ciphertext, signed record in its metadata, Object Lock. */
async function putBinlog(world: World, spec: FileSpec & { corrupt?: boolean }): Promise<string> {
  const binlogFile = binlogFileName(BASE, spec.n);
  const plaintext = randomBytes(16 * 1024);
  const ciphertext = await encryptTo(plaintext, [world.keys.recipient.publicKey]);
  const recipientKeys = await readPublicKeys(world.keys.recipient.publicKey, 'recipient');
  const w = window(spec);
  const record: BinlogRecord = {
    formatVersion: 1,
    kind: 'binlog',
    group: 'web',
    host: HOST,
    source: 'shop',
    binlogFile,
    flavor: 'mariadb',
    serverVersion: '10.11.6-MariaDB-log',
    serverId: 1,
    ...w,
    endsWith: 'rotate',
    transactions: 2,
    plaintextBytes: plaintext.length,
    plaintextSha256: createHash('sha256').update(plaintext).digest('hex'),
    ciphertextBytes: ciphertext.length,
    ciphertextSha256: createHash('sha256').update(ciphertext).digest('hex'),
    compression: 'zstd',
    recipientKeyIds: await encryptionKeyIds(recipientKeys),
    signingKeyFingerprint: fingerprintOf(world.keys.signingKey),
    archivedAt: new Date(Date.parse(w.closedAt) + 30_000).toISOString(),
    agentVersion: '0.1.0',
  };
  const body = Buffer.from(ciphertext);
  if (spec.corrupt) body[body.length - 100] ^= 0xff;
  const key = binlogObjectKey('web', HOST, 'shop', binlogFile);
  await world.s3.send(
    new PutObjectCommand({
      Bucket: world.bucket,
      Key: key,
      Body: body,
      IfNoneMatch: '*',
      Metadata: await signBinlogRecord(record, world.keys.signingKey),
      ObjectLockMode: 'GOVERNANCE',
      ObjectLockRetainUntilDate: new Date(world.clock.ms + 35 * DAY),
    }),
  );
  return key;
}

/** A dump of database shop whose snapshot sits in file n (after its first transaction), read at `readAt`. */
async function putDump(world: World, n: number, readAt: number): Promise<{ stamp: string; manifestKey: string }> {
  const built = await buildBackup(world, { host: HOST, source: 'shop', finishedAt: new Date(readAt + 2 * MIN), payloadBytes: 20_000 });
  const artifact = built.manifest.artifacts[0];
  const manifest: Manifest = {
    ...built.manifest,
    engine: { kind: 'mysql', version: '10.11.6-MariaDB' },
    artifacts: [
      {
        ...artifact,
        name: 'shop',
        contentFormat: 'sql',
        tool: { name: 'mariadb-dump', version: '10.11.6', args: ['--single-transaction', '--master-data=2', '--gtid', 'shop'] },
        binlogPosition: { file: binlogFileName(BASE, n), position: 4242, gtid: `0-1-${2 * n - 1}`, flavor: 'mariadb', readAt: new Date(readAt).toISOString() },
      },
    ],
  };
  await putObject(world, artifact.key, built.ciphertext);
  const key = manifestKey({ tier: 'daily', group: 'web', host: HOST, source: 'shop' }, built.manifest.stamp);
  await putObject(world, key, await signManifest(manifest, world.keys.signingKey));
  return { stamp: built.manifest.stamp, manifestKey: key };
}

/**
 * Eight files, 10 minutes each, the last closed 3 minutes ago; a dump in file 2 and one in file 6.
 * `skip` leaves files out (purged on the server before binlog-push archived them).
 */
async function archive(world: World, skip: number[] = []): Promise<{ start: number; keys: Map<number, string>; dumps: { stamp: string; manifestKey: string }[] }> {
  const start = world.clock.ms - 3 * MIN - 80 * MIN;
  const keys = new Map<number, string>();
  for (let n = 1; n <= 8; n++) if (!skip.includes(n)) keys.set(n, await putBinlog(world, { n, start }));
  const dumps = [await putDump(world, 2, start + 13 * MIN), await putDump(world, 6, start + 53 * MIN)];
  return { start, keys, dumps };
}

async function sweep(world: World): Promise<SweepResult> {
  return (await createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock })({ action: 'sweep' })) as SweepResult;
}

const list = (result: SweepResult) => result.findings.map((f) => `${f.check}: ${f.summary}`);
const binlogRow = (result: SweepResult) => (result.report.pitr ?? []).find((r): r is typeof r & BinlogPitrRow => r.engine === 'mysql')!;
const iso = (ms: number) => new Date(ms).toISOString();

test('a healthy binary log archive: OK, with the window from the oldest dump and the recovery point in the JSON, HTML and SNS summary', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const a = await archive(world);
  await drainInbox(world);
  const result = await sweep(world);
  assert.deepEqual(list(result), []);
  assert.equal(result.report.status, 'OK');
  const row = binlogRow(result);
  assert.equal(row.status, 'OK');
  assert.equal(row.flavor, 'mariadb');
  assert.deepEqual(row.serverIds, [1]);
  assert.equal(row.dumps, 2);
  assert.deepEqual(row.window, {
    from: { time: iso(a.start + 13 * MIN), position: 'mariadb-bin.000002:4242', gtid: '0-1-3', dump: a.dumps[0].stamp, database: 'shop' },
    to: { time: iso(a.start + 80 * MIN), file: 'mariadb-bin.000008', gtid: '0-1-16' },
  });
  assert.deepEqual(row.recoveryPoint, { file: 'mariadb-bin.000008', closedAt: iso(a.start + 80 * MIN), ageSeconds: 180 });
  assert.deepEqual(row.gaps, []);
  assert.deepEqual({ ...row.objects, hashedBytes: row.objects.hashedBytes > 8 * 16 * 1024 }, { total: 8, checked: 8, hashed: 8, hashedBytes: true, pending: 0, failed: 0 });

  const json = reportSchema.parse(JSON.parse(await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: result.reportKeys.json }))).Body!.transformToString()));
  assert.equal(json.pitr?.[0].engine, 'mysql');
  const html = await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: result.reportKeys.html }))).Body!.transformToString();
  assert.ok(html.includes('<h2>Point-in-time recovery</h2>'));
  assert.ok(html.includes('end of mariadb-bin.000008'), 'the window end is shown');
  assert.ok(html.includes('mariadb-bin.000002:4242'), 'the window start is shown');
  // The recovery point counts the binary log: the newest restorable moment is the close of file 8, not the newer dump.
  const rp = json.sources.find((x) => x.source === 'shop')!.recoveryPoint!;
  assert.deepEqual(rp.log, { kind: 'binlog', reachableTo: iso(a.start + 80 * MIN), ageHours: 0.1, newestArchivedAt: iso(a.start + 80 * MIN + 30_000) });
  assert.deepEqual(rp.current, { at: iso(a.start + 80 * MIN), ageHours: 0.1, by: 'log' });
  assert.deepEqual(rp.misses, []);
  assert.equal(html.match(/<rect class="pitr"/g)?.length, 1, 'the reachable range is a band on the recovery window picture');
  const [message] = await drainInbox(world);
  assert.ok(message.message.includes(`PITR web/maria-1/shop (binary logs): window ${iso(a.start + 13 * MIN)} to ${iso(a.start + 80 * MIN)}, recovery point 3 min old (mariadb-bin.000008), no gaps; 8 binary log objects, 8 checked now`), message.message);

  // A second run reads no object again (state kept per source) and says the same.
  const again = await sweep(world);
  assert.deepEqual(list(again), []);
  assert.equal(binlogRow(again).objects.checked, 0);
  assert.deepEqual(binlogRow(again).window, row.window);
});

test('a binary log purged on the server before it was archived: a FAIL naming the lost range and the dump it stops', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const a = await archive(world, [4]);
  const result = await sweep(world);
  assert.deepEqual(result.findings.map((f) => f.check), ['binlog-gap'], list(result).join(' | '));
  const [gap] = result.findings;
  assert.equal(gap.severity, 'fail');
  assert.ok(gap.summary.startsWith(`binary log archive of maria-1/shop: binary log mariadb-bin.000004 is not in the archive: transactions committed between ${iso(a.start + 30 * MIN)} and ${iso(a.start + 40 * MIN)} (GTID after 0-1-6 up to 0-1-8) cannot be replayed`), gap.summary);
  assert.ok(gap.summary.includes(`replay from dump ${a.dumps[0].stamp} stops at the end of mariadb-bin.000003`), gap.summary);
  assert.ok(gap.summary.includes(`points in time from ${iso(a.start + 30 * MIN)} until ${iso(a.start + 53 * MIN)} (dump ${a.dumps[1].stamp}) cannot be restored`), gap.summary);
  assert.match(gap.action, /coldseal pitr binlog-push --source shop by hand/);
  assert.match(gap.action, /binlog_expire_logs_seconds/);
  assert.equal(result.report.status, 'FAIL');
  const row = binlogRow(result);
  assert.equal(row.status, 'FAIL');
  assert.deepEqual(row.gaps.map((g) => [g.missing.join(), g.brokenDumps.join(), g.nextDump?.stamp]), [['mariadb-bin.000004', a.dumps[0].stamp, a.dumps[1].stamp]]);
  // The window is the range that reaches the newest file: from the dump after the hole.
  assert.equal(row.window!.from.dump, a.dumps[1].stamp);
  assert.equal(row.window!.to.file, 'mariadb-bin.000008');
  assert.deepEqual(row.ranges.map((r) => [r.from.dump, r.to.file]), [[a.dumps[0].stamp, 'mariadb-bin.000003'], [a.dumps[1].stamp, 'mariadb-bin.000008']]);
});

test('tampered binary log objects: changed bytes, an edited record and a record copied under another name are each a FAIL, and each leaves a hole', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const a = await archive(world, [3]);
  await putBinlog(world, { n: 3, start: a.start, corrupt: true });
  // File 5's record edited (a later GTID end), keeping the old signature: what an attacker without the key can do.
  const key5 = a.keys.get(5)!;
  const head5 = await world.s3.send(new HeadObjectCommand({ Bucket: world.bucket, Key: key5 }));
  const payload = JSON.parse(Buffer.from(head5.Metadata![BINLOG_RECORD_METADATA.payload], 'base64').toString('utf8')) as BinlogRecord;
  const edited = { ...head5.Metadata!, [BINLOG_RECORD_METADATA.payload]: Buffer.from(JSON.stringify({ ...payload, closedAt: iso(Date.parse(payload.closedAt) + MIN) })).toString('base64') };
  await world.s3.send(new CopyObjectCommand({ Bucket: world.bucket, Key: key5, CopySource: `${world.bucket}/${key5}`, MetadataDirective: 'REPLACE', Metadata: edited }));
  // File 7 replaced by a copy of file 6 (a valid object under the wrong name).
  await world.s3.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: a.keys.get(7)! }));
  await world.s3.send(new CopyObjectCommand({ Bucket: world.bucket, Key: a.keys.get(7)!, CopySource: `${world.bucket}/${a.keys.get(6)!}` }));

  const result = await sweep(world);
  const byCheck = (check: string) => result.findings.filter((f) => f.check === check);
  assert.deepEqual(byCheck('binlog-sha256').map((f) => f.where), [`s3://${world.bucket}/${binlogObjectKey('web', HOST, 'shop', 'mariadb-bin.000003')}`], list(result).join(' | '));
  assert.match(byCheck('binlog-sha256')[0].summary, /^binary log mariadb-bin\.000003 of maria-1\/shop does not match the SHA-256 in its signed record/);
  assert.deepEqual(byCheck('binlog-signature').map((f) => f.where), [`s3://${world.bucket}/${key5}`]);
  assert.match(byCheck('binlog-signature')[0].summary, /does not match its signature: its record was changed after it was signed/);
  assert.deepEqual(byCheck('binlog-record').map((f) => f.where), [`s3://${world.bucket}/${a.keys.get(7)!}`]);
  assert.match(byCheck('binlog-record')[0].summary, /carries the signed record of another binary log: it was copied or swapped under this name/);
  assert.match(byCheck('binlog-record')[0].action, /A restore refuses this file/);
  // Each bad object counts as missing: the holes at 3, 5 and 7 are FAILs naming them.
  assert.deepEqual(byCheck('binlog-gap').map((f) => f.summary.match(/binary log (mariadb-bin\.\d+) is not in the archive/)?.[1]), ['mariadb-bin.000003', 'mariadb-bin.000005', 'mariadb-bin.000007']);
  const row = binlogRow(result);
  assert.equal(row.objects.failed, 3);
  assert.equal(row.status, 'FAIL');
  // The dump in file 6 reaches only its own file now (the hole at 7): that is the recovery point a restore achieves.
  assert.equal(row.recoveryPoint!.file, 'mariadb-bin.000006');
  assert.equal(row.newest!.file, 'mariadb-bin.000008');
});

test("a dump whose binary log never reaches the archive: nothing while binlog-push may still catch up, a FAIL after the grace", async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const start = world.clock.ms - 40 * MIN;
  for (let n = 1; n <= 3; n++) await putBinlog(world, { n, start });
  // The dump sits in file 5, which binlog-push has not archived: 10 minutes after it is too early to say.
  const dump = await putDump(world, 5, world.clock.ms - 10 * MIN);
  const early = await sweep(world);
  assert.deepEqual(list(early).filter((f) => !f.startsWith('rpo')), []);
  assert.equal(binlogRow(early).window, null);
  world.clock.advance(2 * 3_600_000);
  const late = await sweep(world);
  const noWindow = late.findings.filter((f) => f.check === 'wal-no-window');
  assert.equal(noWindow.length, 1, list(late).join(' | '));
  assert.equal(noWindow[0].severity, 'fail');
  assert.equal(noWindow[0].where, `s3://${world.bucket}/${dump.manifestKey}`);
  assert.match(noWindow[0].summary, new RegExp(`^dump ${dump.stamp} of maria-1/shop \\(database shop\\) reaches no point in time with the archived binary logs: mariadb-bin\\.000005, where dump ${dump.stamp} \\(shop\\) starts, is not archived yet`));
  assert.match(noWindow[0].action, /systemctl list-timers/);
  assert.equal(binlogRow(late).status, 'FAIL');
});

test('a group with a PostgreSQL and a MySQL PITR source: one listing, each archive judged by its own rules', async () => {
  const groups = [{ ...GROUPS[0], sources: ['shop', 'pg'], pitrSources: [...GROUPS[0].pitrSources, { source: 'pg', engine: 'postgres', archiveTimeoutSeconds: 60 }] }];
  const world = await newWorld({ account, groups });
  await archive(world);
  // A WAL object of the PostgreSQL source without its signed record: its FAIL is a WAL finding, not the binary logs'.
  const walKey = walObjectKey('web', HOST, 'pg', '000000010000000000000003');
  await putObject(world, walKey, Buffer.from('not a WAL object'));
  const result = await sweep(world);
  assert.deepEqual(result.findings.filter((f) => f.source === 'shop').map((f) => f.check), [], list(result).join(' | '));
  assert.ok(result.findings.some((f) => f.source === 'pg' && f.check === 'wal-signature'), list(result).join(' | '));
  const rows = result.report.pitr ?? [];
  assert.deepEqual(rows.map((r) => [r.source, r.engine ?? 'postgres', r.objects.total, r.status]), [
    ['shop', 'mysql', 8, 'OK'],
    ['pg', 'postgres', 1, 'FAIL'],
  ]);
});

test('a bad newest object hides the files missing before it: a FAIL saying nothing after the last good file can be replayed, naming both', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const a = await archive(world, [7, 8]);
  await putBinlog(world, { n: 8, start: a.start, corrupt: true });
  const result = await sweep(world);
  const gaps = result.findings.filter((f) => f.check === 'binlog-gap');
  assert.deepEqual(gaps.map((f) => f.summary), [`binary log archive of maria-1/shop: nothing after the end of mariadb-bin.000006 (${iso(a.start + 60 * MIN)}) can be replayed: mariadb-bin.000008 failed its checks; mariadb-bin.000007 is not in the archive at all`], list(result).join(' | '));
  assert.ok(result.findings.some((f) => f.check === 'binlog-sha256'));
  const row = binlogRow(result);
  assert.equal(row.recoveryPoint!.file, 'mariadb-bin.000006');
  assert.ok(row.notes.some((n) => /good up to mariadb-bin\.000006; mariadb-bin\.000008 after it failed its checks/.test(n)), row.notes.join());
});
