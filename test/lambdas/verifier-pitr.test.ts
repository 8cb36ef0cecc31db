import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { groupParameters } from '../../format/parameters';
import { artifactKey, manifestKey, walObjectKey } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { reportSchema } from '../../format/verification-report';
import { formatLsn, historyFileName, segmentFileName, segmentStartLsn } from '../../format/wal';
import type { WalRecord } from '../../format/wal-record';
import { encryptionKeyIds, fingerprintOf, generateKeyPair, readPrivateKey, readPublicKeys, type PrivateKey } from '../../runtime/pgp';
import { signManifest } from '../../runtime/signed-document';
import { signWalRecord } from '../../runtime/wal-record';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { walStateKey } from '../../lambdas/verifier/core/wal-objects';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, PREFIX, buildBackup, drainInbox, encryptTo, newWorld, putObject, type World } from './fixtures';

/**
 * The verifier on PostgreSQL WAL archives (PITR sources): WAL objects written as the agent's
 * archive-push writes them (the signed record in the object's own metadata, an OpenPGP message to
 * the group's recipients), base backups as signed manifests with a "cluster" artifact. The verifier
 * never decrypts, so the ciphertext is random bytes encrypted to the escrow key.
 */
let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

const MB = 1024 * 1024;
const SYSID = '7312345678901234567';
const MIN = 60_000;
const GROUPS = [{ name: 'web', rpoHours: 26, sources: ['pg'], hosts: ['db-1'], retentionDays: { daily: 35 }, drillMaxAgeDays: null, pitrSources: [{ source: 'pg', archiveTimeoutSeconds: 60 }] }];

interface WalSpec {
  host: string;
  walFile: string;
  segSize: number;
  archivedAt: Date;
  signingKey?: PrivateKey;
  systemIdentifier?: string;
  /** Store other bytes than the record signs (same length). */
  corrupt?: boolean;
  /** Object Lock retention as the agent sets it (like the daily tier); default on. */
  lock?: boolean;
}

async function putWal(world: World, spec: WalSpec): Promise<string> {
  const plaintext = randomBytes(24 * 1024);
  const ciphertext = await encryptTo(plaintext, [world.keys.recipient.publicKey]);
  const signingKey = spec.signingKey ?? world.keys.signingKey;
  const recipientKeys = await readPublicKeys(world.keys.recipient.publicKey, 'recipient');
  const record: WalRecord = {
    formatVersion: 1,
    group: 'web',
    host: spec.host,
    source: 'pg',
    walFile: spec.walFile,
    systemIdentifier: spec.systemIdentifier ?? SYSID,
    walSegmentSize: spec.segSize,
    plaintextBytes: plaintext.length,
    plaintextSha256: createHash('sha256').update(plaintext).digest('hex'),
    ciphertextBytes: ciphertext.length,
    ciphertextSha256: createHash('sha256').update(ciphertext).digest('hex'),
    compression: 'zstd',
    recipientKeyIds: await encryptionKeyIds(recipientKeys),
    signingKeyFingerprint: fingerprintOf(signingKey),
    archivedAt: spec.archivedAt.toISOString(),
    agentVersion: '0.1.0',
  };
  const body = Buffer.from(ciphertext);
  if (spec.corrupt) body[body.length - 100] ^= 0xff;
  const key = walObjectKey('web', spec.host, 'pg', spec.walFile);
  const lock = spec.lock ?? true;
  await world.s3.send(
    new PutObjectCommand({
      Bucket: world.bucket,
      Key: key,
      Body: body,
      Metadata: await signWalRecord(record, signingKey),
      ObjectLockMode: lock ? 'GOVERNANCE' : undefined,
      ObjectLockRetainUntilDate: lock ? new Date(world.clock.ms + 35 * DAY) : undefined,
    }),
  );
  return key;
}

/** A base backup's signed manifest (artifact kind "cluster") and its ciphertext. */
async function putBaseBackup(world: World, spec: { host: string; finishedAt: Date; timeline: number; startSeg: bigint; segSize: number }): Promise<{ stamp: string; stoppedAt: string; manifestKey: string; artifactKey: string }> {
  const built = await buildBackup(world, { host: spec.host, finishedAt: spec.finishedAt, payloadBytes: 30_000 });
  const loc = { tier: 'daily', group: 'web', host: spec.host, source: 'pg' } as const;
  const key = artifactKey(loc, built.manifest.stamp, 'cluster', 'tar');
  const start = segmentStartLsn(spec.startSeg, spec.segSize) + 0x28n;
  const stop = start + 0x1000n;
  const artifact = built.manifest.artifacts[0];
  const manifest: Manifest = {
    ...built.manifest,
    artifacts: [
      {
        ...artifact,
        name: 'cluster',
        kind: 'cluster',
        key,
        contentFormat: 'pg-base-tar',
        tool: { name: 'pg_basebackup', version: '15.8', args: ['-Ft', '-D', '-', '-X', 'fetch'] },
        baseBackup: {
          systemIdentifier: SYSID,
          timeline: spec.timeline,
          startLsn: formatLsn(start),
          stopLsn: formatLsn(stop),
          startWalFile: segmentFileName(spec.timeline, spec.startSeg, spec.segSize),
          stopWalFile: segmentFileName(spec.timeline, spec.startSeg, spec.segSize),
          walSegmentSize: spec.segSize,
          stoppedAt: spec.finishedAt.toISOString(),
          backupLabel: `START WAL LOCATION: ${formatLsn(start)}\n`,
          tablespaceMap: null,
          walArchived: true,
        },
      },
    ],
  };
  await putObject(world, key, built.ciphertext);
  const mKey = manifestKey(loc, built.manifest.stamp);
  await putObject(world, mKey, await signManifest(manifest, world.keys.signingKey));
  return { stamp: built.manifest.stamp, stoppedAt: spec.finishedAt.toISOString(), manifestKey: mKey, artifactKey: key };
}

interface Archive {
  readonly segSize: number;
  /** Segment names in archive order, with their archive time. */
  readonly segments: { name: string; archivedAt: Date; key: string }[];
  readonly base: { stamp: string; stoppedAt: string; manifestKey: string; artifactKey: string };
}

/**
 * A healthy archive across a promotion: timeline 1 from before the base backup, its last segment
 * only as .partial, then 00000002.history and timeline 2 from the switch segment on. The segment
 * numbers straddle a log-id boundary so that the 64 MB names (last 8 digits up to 0000003F) differ
 * from 16 MB ones (up to 000000FF).
 */
async function healthyArchive(world: World, host: string, segSize: number): Promise<Archive> {
  const perId = 0x100000000n / BigInt(segSize);
  const first = perId - 4n; // four segments before the log id rolls over
  const now = world.clock.ms;
  const base = await putBaseBackup(world, { host, finishedAt: new Date(now - 3 * HOUR), timeline: 1, startSeg: first + 1n, segSize });
  const segments: Archive['segments'] = [];
  let at = now - 3 * HOUR - 10 * MIN;
  const add = async (walFile: string) => {
    at += 10 * MIN;
    const key = await putWal(world, { host, walFile, segSize, archivedAt: new Date(at) });
    if (/^[0-9A-F]{24}$/.test(walFile)) segments.push({ name: walFile, archivedAt: new Date(at), key });
  };
  for (let s = first; s < first + 4n; s++) await add(segmentFileName(1, s, segSize));
  const switchSeg = first + 4n; // the first segment of the new log id
  await add(`${segmentFileName(1, switchSeg, segSize)}.partial`);
  await add(historyFileName(2));
  for (let s = switchSeg; s < switchSeg + 3n; s++) await add(segmentFileName(2, s, segSize));
  // The newest segment two minutes old: that is the recovery point.
  const last = segments[segments.length - 1];
  last.archivedAt = new Date(now - 2 * MIN);
  await putWal(world, { host, walFile: last.name, segSize, archivedAt: last.archivedAt });
  return { segSize, segments, base };
}

function verifier(world: World) {
  return createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock });
}

async function sweep(world: World): Promise<SweepResult> {
  return (await verifier(world)({ action: 'sweep' })) as SweepResult;
}

const list = (result: SweepResult) => result.findings.map((f) => `${f.check}: ${f.summary}`);

/** The PostgreSQL rows of the report (MySQL sources have rows of another shape). */
function pgRows(result: SweepResult): Array<Extract<NonNullable<SweepResult['report']['pitr']>[number], { timelines: unknown }>> {
  return (result.report.pitr ?? []).filter((r) => r.engine !== 'mysql');
}

test('a healthy archive across two timelines, 16 MB and 64 MB segments: OK, with the window and recovery point in the report', async () => {
  const world = await newWorld({ account, groups: [{ ...GROUPS[0], hosts: ['db-1', 'db-2'] }] });
  const a16 = await healthyArchive(world, 'db-1', 16 * MB);
  const a64 = await healthyArchive(world, 'db-2', 64 * MB);
  assert.equal(a16.segments[3].name, '0000000100000000000000FF');
  assert.equal(a64.segments[3].name, '00000001000000000000003F');
  assert.equal(a64.segments[4].name, '000000020000000100000000');
  await drainInbox(world);

  const result = await sweep(world);
  assert.deepEqual(list(result), []);
  assert.equal(result.report.status, 'OK');
  const rows = pgRows(result);
  assert.deepEqual(rows.map((r) => [r.host, r.status, r.walSegmentSize, r.timelines.join(','), r.gaps.length]), [
    ['db-1', 'OK', 16 * MB, '1,2', 0],
    ['db-2', 'OK', 64 * MB, '1,2', 0],
  ]);
  for (const [row, archive] of [[rows[0], a16], [rows[1], a64]] as const) {
    const newest = archive.segments[archive.segments.length - 1];
    assert.equal(row.window!.from.baseBackup, archive.base.stamp);
    assert.equal(row.window!.from.time, archive.base.stoppedAt);
    assert.equal(row.window!.to.segment, newest.name);
    assert.equal(row.window!.to.timeline, 2);
    assert.equal(row.window!.to.time, newest.archivedAt.toISOString());
    assert.deepEqual(row.recoveryPoint, { segment: newest.name, archivedAt: newest.archivedAt.toISOString(), ageSeconds: 120 });
    // 4 segments of timeline 1, the .partial, the .history, 3 of timeline 2: each checked and hashed.
    assert.deepEqual({ ...row.objects, hashedBytes: row.objects.hashedBytes > 9 * 24 * 1024 }, { total: 9, checked: 9, hashed: 9, hashedBytes: true, pending: 0, failed: 0 });
  }
  const json = reportSchema.parse(JSON.parse(await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: result.reportKeys.json }))).Body!.transformToString()));
  assert.equal(json.pitr?.length, 2);
  const html = await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: result.reportKeys.html }))).Body!.transformToString();
  assert.ok(html.includes('<h2>Point-in-time recovery</h2>'));
  assert.ok(html.includes(a64.segments[a64.segments.length - 1].name), 'the window end is shown');
  const [message] = await drainInbox(world);
  assert.ok(message.message.includes(`PITR web/db-1/pg: window ${a16.base.stoppedAt} to ${a16.segments[a16.segments.length - 1].archivedAt.toISOString()}, recovery point 2 min old, no gaps; 9 WAL objects, 9 checked now`), message.message);

  // Read as 16 MB, the 64 MB names would leave 0x40..0xFF missing: the cluster's own segment size is what counts.
  assert.ok(!result.findings.some((f) => f.check === 'wal-gap'));
});

test('a deleted segment is a FAIL naming the missing range and the window it breaks', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const archive = await healthyArchive(world, 'db-1', 16 * MB);
  // A second base backup after the hole, on timeline 2: recovery works again from its stop.
  const later = await putBaseBackup(world, { host: 'db-1', finishedAt: new Date(world.clock.ms - 30 * MIN), timeline: 2, startSeg: 0x100n + 1n, segSize: 16 * MB });
  const gone = archive.segments[2]; // 0000000100000000000000FE, after the first base backup's start
  assert.equal(gone.name, '0000000100000000000000FE');
  await world.s3.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: gone.key }));
  const result = await sweep(world);
  assert.deepEqual(result.findings.map((f) => f.check), ['wal-gap'], list(result).join(' | '));
  const [gap] = result.findings;
  assert.equal(gap.severity, 'fail');
  assert.match(gap.summary, /^WAL segment 0000000100000000000000FE \(timeline 1, 1 segment, LSN 0\/FE000000 to 0\/FF000000\) missing from the WAL archive of db-1\/pg/);
  assert.ok(gap.summary.includes(`recovery from base backup ${archive.base.stamp} stops at LSN 0/FE000000`), gap.summary);
  assert.ok(gap.summary.includes(`the last point reachable before it is the end of 0000000100000000000000FD (archived ${archive.segments[1].archivedAt.toISOString()})`), gap.summary);
  assert.ok(gap.summary.includes(`until ${new Date(world.clock.ms - 30 * MIN).toISOString()} (the stop of base backup ${later.stamp}) cannot be restored`), gap.summary);
  assert.equal(result.report.status, 'FAIL');
  const row = pgRows(result)[0];
  assert.equal(row.status, 'FAIL');
  assert.deepEqual(row.gaps.map((g) => [g.from, g.to, g.brokenBases.join(), g.nextBase?.stamp]), [['0000000100000000000000FE', '0000000100000000000000FE', archive.base.stamp, later.stamp]]);
  // The window still reaches the newest WAL, from the later base backup; the older range ends at the hole.
  assert.equal(row.window!.from.baseBackup, later.stamp);
  assert.equal(row.window!.to.segment, archive.segments[archive.segments.length - 1].name);
  assert.deepEqual(row.ranges.map((r) => [r.from.baseBackup, r.to.segment]), [[archive.base.stamp, '0000000100000000000000FD'], [later.stamp, archive.segments[archive.segments.length - 1].name]]);
  assert.equal(row.baseBackups, 2);

  // Without a later base backup, nothing after the hole is restorable.
  for (const key of [later.manifestKey, later.artifactKey]) await world.s3.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: key }));
  world.clock.advance(HOUR);
  const again = await sweep(world);
  const gap2 = again.findings.find((f) => f.check === 'wal-gap')!;
  assert.ok(gap2.summary.includes(`no kept base backup starts after the gap, so nothing after ${archive.segments[1].archivedAt.toISOString()} can be restored until a new base backup is taken`), gap2.summary);
  assert.equal(pgRows(again)[0].window!.to.segment, '0000000100000000000000FD');
  assert.equal(pgRows(again)[0].recoveryPoint!.archivedAt, archive.segments[1].archivedAt.toISOString());
});

test('a swapped, a re-signed and a corrupted WAL object each FAIL naming the segment, and the hole they leave', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const archive = await healthyArchive(world, 'db-1', 16 * MB);
  assert.deepEqual(list(await sweep(world)), []);
  const [s0, s1, s2] = archive.segments;
  // Swapped: the object of FD copied (with its metadata) under FC's key.
  await world.s3.send(new CopyObjectCommand({ Bucket: world.bucket, Key: s0.key, CopySource: `${world.bucket}/${s1.key}`, MetadataDirective: 'COPY' }));
  // Re-signed by a key the group does not trust.
  const foreign = await generateKeyPair({ name: 'intruder' }, undefined, { signOnly: true });
  await putWal(world, { host: 'db-1', walFile: s1.name, segSize: 16 * MB, archivedAt: s1.archivedAt, signingKey: await readPrivateKey(foreign.privateKey, 'foreign') });
  // Bytes changed after signing.
  await putWal(world, { host: 'db-1', walFile: s2.name, segSize: 16 * MB, archivedAt: s2.archivedAt, corrupt: true });
  // Validly signed, but WAL of another cluster (after the newest segment: it leaves no hole).
  const alien = segmentFileName(2, 0x103n, 16 * MB);
  const alienKey = await putWal(world, { host: 'db-1', walFile: alien, segSize: 16 * MB, archivedAt: new Date(world.clock.ms - MIN), systemIdentifier: '7000000000000000001' });
  world.clock.advance(HOUR);
  const result = await sweep(world);
  const byCheck = new Map(result.findings.map((f) => [`${f.check}:${f.where.split('/').pop()}`, f]));
  assert.deepEqual(result.findings.map((f) => f.check).sort(), ['wal-gap', 'wal-record', 'wal-record', 'wal-sha256', 'wal-signature'], list(result).join(' | '));
  assert.equal(byCheck.get(`wal-record:${s0.name}.pgp`)!.summary, `WAL file ${s0.name} of db-1/pg carries the signed record of another WAL file: it was copied or swapped under this name`);
  assert.ok(byCheck.get(`wal-record:${s0.name}.pgp`)!.where.endsWith(s0.key));
  assert.equal(byCheck.get(`wal-record:${alien}.pgp`)!.summary, `WAL file ${alien} of db-1/pg belongs to another cluster: its signed record says system identifier 7000000000000000001, this source's base backups say ${SYSID}`);
  assert.ok(byCheck.get(`wal-record:${alien}.pgp`)!.where.endsWith(alienKey));
  assert.equal(byCheck.get(`wal-signature:${s1.name}.pgp`)!.summary, `WAL file ${s1.name} of db-1/pg is not signed by a trusted signing key of its group`);
  assert.equal(byCheck.get(`wal-sha256:${s2.name}.pgp`)!.summary, `WAL file ${s2.name} of db-1/pg does not match the SHA-256 in its signed record: its bytes were changed or damaged`);
  // FC is before the base backup's start (FD): only FD and FE break its window.
  assert.match(result.findings.find((f) => f.check === 'wal-gap')!.summary, /^WAL segments 0000000100000000000000FD to 0000000100000000000000FE \(timeline 1, 2 segments/);
  assert.ok(result.findings.every((f) => f.severity === 'fail'));
  const row = pgRows(result)[0];
  assert.equal(row.objects.failed, 4);
  assert.equal(row.objects.checked, 4, 'only the four changed or new objects were read again');
  // The only base backup's first segment is gone: no point in time can be restored (as coldseal list says).
  assert.equal(row.window, null);
  assert.equal(row.recoveryPoint, null);
});

test('incremental: a second run hashes only the new objects; the daily sample re-reads a share of the old ones', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const archive = await healthyArchive(world, 'db-1', 16 * MB);
  const first = await sweep(world);
  assert.deepEqual(list(first), []);
  assert.equal(pgRows(first)[0].objects.hashed, 9);
  const state = JSON.parse(await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: walStateKey('web', 'db-1', 'pg') }))).Body!.transformToString());
  assert.equal(Object.keys(state.objects).length, 9);

  world.clock.advance(HOUR);
  const next = 0x100n + 3n;
  for (const [i, s] of [next, next + 1n].entries()) await putWal(world, { host: 'db-1', walFile: segmentFileName(2, s, 16 * MB), segSize: 16 * MB, archivedAt: new Date(world.clock.ms - (2 - i) * MIN) });
  const second = await sweep(world);
  assert.deepEqual(list(second), []);
  const row = pgRows(second)[0];
  assert.deepEqual([row.objects.total, row.objects.checked, row.objects.hashed], [11, 2, 2]);
  assert.equal(row.window!.to.segment, segmentFileName(2, next + 1n, 16 * MB));
  assert.equal(row.recoveryPoint!.ageSeconds, 60);
  assert.equal(second.report.verification.hashedObjects, 2, 'no backup nor old WAL read again');

  // Two days on: the sample re-reads ceil(11 / 30 days) = 1 object, the least recently hashed.
  world.clock.advance(2 * DAY);
  const third = await sweep(world);
  assert.deepEqual(pgRows(third)[0].objects.hashed, 1);
  assert.ok(archive.segments.length > 0);
});

test('with the hash budget spent, new objects still get their record checked; the hash waits for the next run', async () => {
  const world = await newWorld({ account, groups: GROUPS, extraEnv: { COLDSEAL_HASH_BUDGET_MB: '0.01' } });
  await healthyArchive(world, 'db-1', 16 * MB);
  const result = await sweep(world);
  const row = pgRows(result)[0];
  assert.equal(row.objects.checked, 9);
  assert.ok(row.objects.pending >= 8, JSON.stringify(row.objects));
  assert.deepEqual(list(result), []);
  world.clock.advance(25 * HOUR);
  const later = await sweep(world);
  assert.ok(later.findings.some((f) => f.check === 'wal-pending' && f.severity === 'warn'), list(later).join(' | '));
});

test('the newest WAL object must be addressed to the recipients configured today; older ones keep the keys of their time', async () => {
  const world = await newWorld({ groups: GROUPS });
  await healthyArchive(world, 'db-1', 16 * MB);
  const rotated = await generateKeyPair({ name: 'coldseal escrow 2' });
  await world.ssm.send(new PutParameterCommand({ Name: groupParameters('web', PREFIX).recipients, Type: 'String', Value: rotated.publicKey, Overwrite: true }));
  const result = await sweep(world);
  const wal = result.findings.filter((f) => f.check.startsWith('wal-'));
  assert.deepEqual(wal.map((f) => f.check), ['wal-recipients'], list(result).join(' | '));
  assert.match(wal[0].summary, /^the newest WAL file of db-1\/pg, 000000020000000100000002, is encrypted to key ids [0-9a-f]{16}, not to the recipients configured in \/coldseal-test\/groups\/web\/recipients/);
});

test('segments of a timeline whose .history object is gone: a FAIL, and the window stays on the parent timeline', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  const archive = await healthyArchive(world, 'db-1', 16 * MB);
  await world.s3.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: walObjectKey('web', 'db-1', 'pg', historyFileName(2)) }));
  const result = await sweep(world);
  assert.deepEqual(result.findings.map((f) => f.check), ['wal-timeline'], list(result).join(' | '));
  assert.equal(result.findings[0].summary, 'timeline 2 of db-1/pg has 3 archived segments (from 000000020000000100000000) but no 00000002.history: recovery cannot follow it');
  const row = pgRows(result)[0];
  assert.equal(row.window!.to.segment, '0000000100000000000000FF');
  assert.equal(row.recoveryPoint!.archivedAt, archive.segments[3].archivedAt.toISOString());
});

test('a WAL object without Object Lock retention is a FAIL (one per source, naming the first)', async () => {
  const world = await newWorld({ account, groups: GROUPS });
  await healthyArchive(world, 'db-1', 16 * MB);
  const walFile = segmentFileName(2, 0x103n, 16 * MB);
  await putWal(world, { host: 'db-1', walFile, segSize: 16 * MB, archivedAt: new Date(world.clock.ms - MIN), lock: false });
  const result = await sweep(world);
  assert.deepEqual(result.findings.map((f) => f.check), ['object-lock'], list(result).join(' | '));
  assert.equal(result.findings[0].summary, `1 WAL object of db-1/pg has no Object Lock retention for the 35-day term (first: ${walFile}): it can be deleted or overwritten`);
  assert.equal(pgRows(result)[0].window!.to.segment, walFile, 'an unlocked object is still part of the window');
});
