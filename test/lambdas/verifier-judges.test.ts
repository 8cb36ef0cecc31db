import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { RestoreObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { artifactKey, manifestKey, segmentKey, sourcePrefix, stampOf } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { encryptionKeyIds, generateKeyPair, readPublicKeys, type GeneratedKey, type PublicKey } from '../../runtime/pgp';
import { signManifest } from '../../runtime/signed-document';
import { S3BucketStore } from '../../lambdas/shared/aws';
import { statusOf, type Finding } from '../../lambdas/shared/findings';
import { checkBackup } from '../../lambdas/verifier/core/check-backup';
import { buildInventory } from '../../lambdas/verifier/core/inventory';
import type { GroupKeys } from '../../lambdas/verifier/core/keys';
import { verifyBackup, type BackupVerification, type Check } from '../../agent/src/restore/verify';
import { silentLog } from '../../agent/src/log';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, buildBackup, drainInbox, encryptTo, healthyFleet, newWorld, putObject, type World } from './fixtures';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { ManifestResult, SweepResult } from '../../lambdas/verifier/core/verifier';

/**
 * The two judges of one backup: `coldseal verify` (agent/src/restore/verify.ts) and the verifier
 * Lambda (lambdas/verifier/core/check-backup.ts) are handed the same manifest, the same objects
 * (so the same heads: size, storage class, restore status, Object Lock) and the same clock, and
 * must reach the same verdict on every check they both make. Each row breaks one thing.
 *
 * The agent speaks in lines (signature, completion, object, object-lock, checksum, recipients,
 * message-recipients), the Lambda in findings; each side's output is read back into the concepts
 * both judge. What only one side can do (the agent's full read, the Lambda's hashing budget, RPO,
 * replica) is not compared here.
 */

type Verdict = 'PASS' | 'WARN' | 'FAIL';
const CONCEPTS = ['location', 'completion', 'object', 'object-lock', 'archive', 'recipients'] as const;
type Concept = (typeof CONCEPTS)[number];
const RANK: Record<Verdict, number> = { PASS: 0, WARN: 1, FAIL: 2 };
const worst = (verdicts: Verdict[]): Verdict => verdicts.reduce<Verdict>((a, b) => (RANK[b] > RANK[a] ? b : a), 'PASS');

/** The agent's lines per concept (a line absent is no objection). */
function agentVerdicts(result: BackupVerification): Record<Concept | 'overall', Verdict> {
  const all: Check[] = [...result.checks, ...result.artifacts.flatMap((a) => a.checks)];
  const verdict = (c: Check): Verdict => (!c.ok ? 'FAIL' : (c as { warn?: boolean }).warn ? 'WARN' : 'PASS');
  const of = (names: string[], only: (c: Check) => boolean = () => true) => worst(all.filter((c) => names.includes(c.name) && only(c)).map(verdict));
  const concepts: Record<Concept, Verdict> = {
    location: of(['signature', 'location']),
    completion: of(['completion']),
    object: of(['object']),
    'object-lock': of(['object-lock']),
    archive: of(['checksum'], (c) => /archived/.test(c.detail)),
    recipients: of(['recipients', 'message-recipients']),
  };
  return { ...concepts, overall: worst(all.map(verdict)) };
}

/** The Lambda's findings per concept. */
function lambdaVerdicts(findings: readonly Finding[]): Record<Concept | 'overall', Verdict> {
  const concept = (f: Finding): Concept | undefined => {
    switch (f.check) {
      case 'manifest-signature':
      case 'manifest-location':
        return 'location';
      case 'manifest-invalid':
        return /segments/.test(f.summary) ? 'object' : 'location';
      case 'dump-exit-status':
      case 'completion-marker':
        return 'completion';
      case 'ciphertext-missing':
      case 'ciphertext-size':
        return 'object';
      case 'object-lock':
        return 'object-lock';
      case 'not-read-verified':
        return 'archive';
      case 'recipients':
      case 'not-openpgp':
        return 'recipients';
      default:
        return undefined;
    }
  };
  const verdict = (f: Finding): Verdict => (f.severity === 'fail' ? 'FAIL' : 'WARN');
  const concepts = Object.fromEntries(CONCEPTS.map((c) => [c, worst(findings.filter((f) => concept(f) === c).map(verdict))])) as Record<Concept, Verdict>;
  const status = statusOf(findings);
  return { ...concepts, overall: status === 'OK' ? 'PASS' : status };
}

let account: MotoAccount;
let world: World;
let configured: string[];
let trusted: PublicKey[];
let oldEscrow: GeneratedKey;
before(async () => {
  account = await newMotoAccount();
  world = await newWorld({ account });
  configured = await encryptionKeyIds(await readPublicKeys(world.keys.recipient.publicKey, 'recipient'));
  trusted = await readPublicKeys(world.keys.signing.publicKey, 'signing');
  oldEscrow = await generateKeyPair({ name: 'coldseal escrow before the rotation' });
});

const PART = 4096;
/** The tier's lock as the stack sets it (infra/lib/settings.ts): 30 days, expiry 35. */
const LOCK_DAYS = 30;
const EXPIRE_DAYS = 35;

interface Setup {
  world: World;
  source: string;
  base: number;
}

interface Row {
  name: string;
  /** Builds and stores the backup; returns the manifest key to judge (and whether it is the newest of its source). */
  setup: (s: Setup) => Promise<{ key: string; newest?: boolean }>;
  /** The clock both judges read, from the row's base time (the time the objects were written). */
  after?: number;
  expect: Partial<Record<Concept, Verdict>> & { overall: Verdict };
}

async function signed(world: World, manifest: Manifest): Promise<string> {
  return signManifest(manifest, world.keys.signingKey);
}

/** A backup of the fixtures' kind, changed by `change` and signed again. */
async function put(s: Setup, options: { change?: (m: Manifest) => Manifest; storageClass?: 'GLACIER'; lock?: boolean | Date; recipients?: string[]; finishedAt?: number; skipCiphertext?: boolean; ciphertext?: Uint8Array } = {}) {
  const built = await buildBackup(s.world, { host: 'web-1', source: s.source, finishedAt: new Date(options.finishedAt ?? s.base - HOUR), partSize: PART, recipients: options.recipients });
  const manifest = options.change ? options.change(built.manifest) : built.manifest;
  const body = options.ciphertext ?? built.ciphertext;
  if (!options.skipCiphertext) await putLocked(s.world, manifest.artifacts[0].key, body, options);
  await putObject(s.world, built.manifestKey, await signed(s.world, manifest));
  return { key: built.manifestKey, manifest, built };
}

async function putLocked(world: World, key: string, body: Uint8Array | string, options: { storageClass?: 'GLACIER'; lock?: boolean | Date } = {}): Promise<void> {
  if (options.lock instanceof Date) {
    await world.s3.send(new PutObjectCommand({ Bucket: world.bucket, Key: key, Body: body, StorageClass: options.storageClass, ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: options.lock }));
  } else await putObject(world, key, body, { storageClass: options.storageClass, lock: options.lock });
}

/** Format 2: the ciphertext cut into segments of two parts each. */
async function putSegmented(s: Setup, options: { skip?: number; extra?: number; miscount?: boolean } = {}) {
  const built = await buildBackup(s.world, { host: 'web-1', source: s.source, finishedAt: new Date(s.base - HOUR), payloadBytes: 20_500, partSize: PART });
  const artifact = built.manifest.artifacts[0];
  const ciphertext = Buffer.from(built.ciphertext);
  const span = PART * 2;
  const segments = [];
  for (let offset = 0, n = 1; offset < ciphertext.length; offset += span, n++) {
    const body = ciphertext.subarray(offset, offset + span);
    segments.push({ key: segmentKey(artifact.key, n), bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), parts: Math.ceil(body.length / PART), body });
  }
  const listed = segments.map(({ body: _b, ...rest }, i) => (options.miscount && i === 0 ? { ...rest, parts: rest.parts + 1 } : rest));
  const manifest: Manifest = { ...built.manifest, formatVersion: 2, artifacts: [{ ...artifact, segments: listed }] };
  for (const [i, segment] of segments.entries()) if (options.skip !== i + 1) await putObject(s.world, segment.key, segment.body);
  if (options.extra) await putObject(s.world, segmentKey(artifact.key, options.extra), Buffer.from('one more segment'));
  await putObject(s.world, built.manifestKey, await signed(s.world, manifest));
  return built.manifestKey;
}

/** A files source whose tar exited 1 ("file changed as we read it"), which the agent tolerated with a warning. */
const tarExitOne = (m: Manifest): Manifest => ({
  ...m,
  engine: { kind: 'files', version: null },
  artifacts: m.artifacts.map((a) => ({
    ...a,
    kind: 'directory',
    contentFormat: 'tar',
    tool: { name: 'tar', version: '1.35', args: ['--create', '--directory=/var/log', '.'] },
    exitCode: 1,
    warnings: ['tar exited with status 1: some files changed while they were read (tar: ./syslog: file changed as we read it)'],
    completion: { method: 'archive-end', detail: 'tar exited with status 1 after writing the end-of-archive record' },
  })),
});

const ROWS: Row[] = [
  { name: 'a healthy backup', setup: async (s) => put(s), expect: { overall: 'PASS' } },
  { name: 'tar exited 1, tolerated by the agent with a warning', setup: async (s) => put(s, { change: tarExitOne }), expect: { completion: 'WARN', overall: 'WARN' } },
  {
    name: 'pg_dump exited 2, not tolerated',
    setup: async (s) => put(s, { change: (m) => ({ ...m, artifacts: m.artifacts.map((a) => ({ ...a, exitCode: 2 })) }) }),
    expect: { completion: 'FAIL', overall: 'FAIL' },
  },
  {
    name: 'a trailer-checked dump without its completion marker',
    setup: async (s) => put(s, { change: (m) => ({ ...m, artifacts: m.artifacts.map((a) => ({ ...a, completion: { method: 'marker', detail: ' ' } })) }) }),
    expect: { completion: 'FAIL', overall: 'FAIL' },
  },
  {
    name: 'a signed manifest copied under another host',
    setup: async (s) => {
      const { manifest, built } = await put(s);
      const elsewhere = manifestKey({ tier: 'daily', group: 'web', host: 'web-2', source: s.source }, built.manifest.stamp);
      await putObject(s.world, elsewhere, await signed(s.world, manifest));
      return { key: elsewhere };
    },
    expect: { location: 'FAIL', overall: 'FAIL' },
  },
  {
    name: 'an artifact of another stamp of the same source',
    setup: async (s) => {
      const other = artifactKey({ tier: 'daily', group: 'web', host: 'web-1', source: s.source }, stampOf(new Date(s.base - 3 * DAY)), 'app', 'dump');
      const { built } = await put(s, { skipCiphertext: true, change: (m) => ({ ...m, artifacts: m.artifacts.map((a) => ({ ...a, key: other })) }) });
      await putObject(s.world, other, built.ciphertext);
      return { key: built.manifestKey };
    },
    expect: { location: 'FAIL', overall: 'FAIL' },
  },
  { name: 'the ciphertext is missing', setup: async (s) => put(s, { skipCiphertext: true }), expect: { object: 'FAIL', overall: 'FAIL' } },
  {
    name: 'the ciphertext is truncated',
    setup: async (s) => {
      const built = await buildBackup(s.world, { host: 'web-1', source: s.source, finishedAt: new Date(s.base - HOUR), partSize: PART });
      return put(s, { ciphertext: built.ciphertext.subarray(0, built.ciphertext.length - 10) });
    },
    expect: { object: 'FAIL', overall: 'FAIL' },
  },
  { name: 'a segment is missing', setup: async (s) => ({ key: await putSegmented(s, { skip: 2 }) }), expect: { object: 'FAIL', overall: 'FAIL' } },
  { name: 'a segment beyond the signed list', setup: async (s) => ({ key: await putSegmented(s, { extra: 4 }) }), expect: { object: 'FAIL', overall: 'FAIL' } },
  { name: 'segments that do not describe the ciphertext', setup: async (s) => ({ key: await putSegmented(s, { miscount: true }) }), expect: { object: 'FAIL', overall: 'FAIL' } },
  { name: 'a healthy segmented backup', setup: async (s) => ({ key: await putSegmented(s) }), expect: { overall: 'PASS' } },
  { name: 'no Object Lock retention', setup: async (s) => put(s, { lock: false }), expect: { 'object-lock': 'FAIL', overall: 'FAIL' } },
  {
    name: 'an Object Lock that ended days after the backup, long before the tier\'s lock',
    setup: async (s) => put(s, { lock: new Date(s.base + DAY) }),
    after: 3 * DAY,
    expect: { 'object-lock': 'FAIL', overall: 'FAIL' },
  },
  {
    name: 'an Object Lock that ran its full term (the tier keeps the object a few days longer)',
    setup: async (s) => put(s, { lock: new Date(s.base + LOCK_DAYS * DAY) }),
    after: (LOCK_DAYS + 2) * DAY,
    expect: { overall: 'PASS' },
  },
  { name: 'archived in Glacier, never read back', setup: async (s) => put(s, { storageClass: 'GLACIER' }), expect: { archive: 'WARN', overall: 'WARN' } },
  {
    name: 'archived in Glacier with a restored copy',
    setup: async (s) => {
      const stored = await put(s, { storageClass: 'GLACIER' });
      await s.world.s3.send(new RestoreObjectCommand({ Bucket: s.world.bucket, Key: stored.manifest.artifacts[0].key, RestoreRequest: { Days: 1, GlacierJobParameters: { Tier: 'Standard' } } }));
      return stored;
    },
    expect: { overall: 'PASS' },
  },
  {
    name: 'the newest backup is encrypted to a key that is not configured',
    setup: async (s) => put(s, { recipients: [oldEscrow.publicKey] }),
    expect: { recipients: 'FAIL', overall: 'FAIL' },
  },
  {
    name: 'the message is addressed to other keys than its signed manifest says',
    setup: async (s) => {
      const built = await buildBackup(s.world, { host: 'web-1', source: s.source, finishedAt: new Date(s.base - HOUR), partSize: PART });
      const other = await encryptTo(randomBytes(1000), [oldEscrow.publicKey]);
      return put(s, { ciphertext: other, change: (m) => ({ ...m, artifacts: m.artifacts.map((a) => ({ ...a, ...digestsOf(other, built.manifest.artifacts[0].parts.size) })) }) });
    },
    expect: { recipients: 'FAIL', overall: 'FAIL' },
  },
  {
    name: 'an older backup addressed to the escrow key of its time (rotated since)',
    setup: async (s) => {
      const old = await put(s, { recipients: [oldEscrow.publicKey], finishedAt: s.base - 3 * DAY });
      await put(s);
      return { key: old.key, newest: false };
    },
    expect: { overall: 'PASS' },
  },
  {
    name: 'not an OpenPGP message',
    setup: async (s) => {
      const junk = randomBytes(5000);
      return put(s, { ciphertext: junk, change: (m) => ({ ...m, artifacts: m.artifacts.map((a) => ({ ...a, ...digestsOf(junk, PART) })) }) });
    },
    expect: { recipients: 'FAIL', overall: 'FAIL' },
  },
];

function digestsOf(body: Uint8Array, partSize: number) {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const parts: string[] = [];
  for (let offset = 0; offset < body.length; offset += partSize) parts.push(sha(body.subarray(offset, offset + partSize)));
  return { ciphertextBytes: body.length, ciphertextSha256: sha(body), parts: { size: partSize, sha256: parts } };
}

async function lambdaJudge(key: string, now: Date, newest: boolean): Promise<Record<Concept | 'overall', Verdict>> {
  const store = new S3BucketStore(world.s3, world.bucket);
  const parsed = /^backups\/(\w+)\/([\w-]+)\/([\w-]+)\/([\w-]+)\/(\d{8}T\d{6}Z)\./.exec(key)!;
  const loc = { tier: parsed[1] as 'daily', group: parsed[2], host: parsed[3], source: parsed[4] };
  const backup = buildInventory(await store.list(sourcePrefix(loc))).backups.find((b) => b.manifest?.key === key)!;
  const keys: GroupKeys = { group: 'web', signing: trusted, recipientKeyIds: configured, problem: undefined, signingParameter: '/coldseal-test/groups/web/signing-public-keys', recipientsParameter: '/coldseal-test/groups/web/recipients' };
  const ctx = { store, bucket: world.bucket, keys, records: new Map(), now, reverifyDays: 30, retentionDays: { daily: EXPIRE_DAYS }, lockDays: { daily: LOCK_DAYS } };
  const checked = await checkBackup(ctx, backup, { newest });
  return lambdaVerdicts(checked.findings);
}

async function agentJudge(key: string, now: Date, newest: boolean): Promise<Record<Concept | 'overall', Verdict>> {
  const clients = { s3: world.s3, ssm: world.ssm, sns: new SNSClient(world.account.clientConfig) };
  // What `coldseal verify` knows on a host of the stack: its configuration's Object Lock per tier.
  const options = { clients, bucket: world.bucket, log: silentLog, trusted, expectedRecipientKeyIds: configured, now, newest, objectLock: { daily: { mode: 'GOVERNANCE' as const, days: LOCK_DAYS } } };
  return agentVerdicts(await verifyBackup(key, options));
}

test('coldseal verify and the verifier Lambda reach the same verdict on every check', async () => {
  const disagreements: string[] = [];
  const base = world.clock.ms;
  for (const [i, row] of ROWS.entries()) {
    const { key, newest = true } = await row.setup({ world, source: `judge-${String(i).padStart(2, '0')}`, base });
    const now = new Date(base + (row.after ?? 0));
    const agent = await agentJudge(key, now, newest);
    const lambda = await lambdaJudge(key, now, newest);
    for (const concept of [...CONCEPTS, 'overall'] as const) {
      const expected = row.expect[concept] ?? 'PASS';
      if (agent[concept] !== expected || lambda[concept] !== expected) {
        disagreements.push(`${row.name}: ${concept}: expected ${expected}, coldseal verify says ${agent[concept]}, the verifier Lambda says ${lambda[concept]}`);
      }
    }
  }
  assert.deepEqual(disagreements, []);
});

test('a dump exit status the agent tolerated is a WARN said once: announced when the backup lands, then listed in the report without raising its status or repeating', async () => {
  const once = await newWorld({ account, groups: [{ name: 'web', rpoHours: 96, sources: ['pg'], hosts: ['web-1', 'web-2'], retentionDays: { daily: EXPIRE_DAYS }, lockDays: { daily: LOCK_DAYS }, drillMaxAgeDays: 8 }] });
  await healthyFleet(once);
  const handler = createVerifierHandler({ env: once.env, clientConfig: once.account.clientConfig, clock: once.clock });
  await handler({ action: 'sweep' });
  await drainInbox(once);

  const built = await buildBackup(once, { host: 'web-1', finishedAt: new Date(once.clock.ms - 5 * 60_000), partSize: PART });
  await putObject(once, built.artifactKey, built.ciphertext);
  await putObject(once, built.manifestKey, await signed(once, tarExitOne(built.manifest)));
  const landed = (await handler({ 'detail-type': 'Object Created', source: 'aws.s3', detail: { bucket: { name: once.bucket }, object: { key: built.manifestKey } } })) as ManifestResult;
  assert.deepEqual(landed.findings.map((f) => `${f.severity} ${f.check}`), ['warn dump-exit-status']);
  let sent = await drainInbox(once);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].subject, 'coldseal WARN: 1 new (new backup) - Dump exit status on web/web-1/pg');
  assert.match(sent[0].message, /^NEW WARN Dump exit status - web\/web-1\/pg, daily\n {2}tar exited with status 1 for artifact "app", which the agent tolerated: the dump is complete\n/);

  for (const days of [0, 1, 2]) {
    once.clock.advance(days * DAY);
    const result = (await handler({ action: 'sweep' })) as SweepResult;
    assert.deepEqual(result.findings.map((f) => `${f.severity} ${f.check}`), ['warn dump-exit-status'], `day ${days}`);
    assert.deepEqual(result.plan.opened, [], `day ${days}: nothing new`);
    assert.deepEqual(result.plan.reminded, [], `day ${days}: not repeated`);
    assert.equal(result.report.status, 'OK', `day ${days}: said once, it no longer sets the status`);
    assert.deepEqual(result.report.findings.map((f) => [f.check, f.once]), [['dump-exit-status', true]], `day ${days}: the report still lists it`);
    assert.equal(result.report.sources.find((s) => s.host === 'web-1')?.status, 'OK');
    sent = await drainInbox(once);
    assert.equal(sent.length, 1, `day ${days}: the daily report only`);
    assert.deepEqual(sent[0].attributes, { kind: 'report', status: 'OK' });
    assert.ok(!sent[0].message.includes('Dump exit status'), sent[0].message);
  }
});
