import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { generateKeyPair, readPrivateKey } from '../../runtime/pgp';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { ManifestResult, SweepResult } from '../../lambdas/verifier/core/verifier';
import { reportSchema } from '../../format/verification-report';
import { verificationRecordKey, type VerificationRecord } from '../../lambdas/verifier/core/hashing';
import type { Check } from '../../lambdas/shared/findings';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, buildBackup, drainInbox, healthyFleet, newWorld, putBackup, putDrill, putObject, storeBackup, type World } from './fixtures';
import type { Alert } from '../../local-system/alerts';

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

function verifier(world: World) {
  return createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock });
}

async function sweep(world: World): Promise<SweepResult> {
  return (await verifier(world)({ action: 'sweep' })) as SweepResult;
}

function objectCreated(world: World, key: string) {
  return { 'detail-type': 'Object Created' as const, source: 'aws.s3' as const, detail: { bucket: { name: world.bucket }, object: { key } } };
}

async function readText(world: World, key: string): Promise<string> {
  return (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: key }))).Body!.transformToString();
}

/** The sweep found exactly one problem, and the one message sent says what, where, since and what to do. */
async function expectOneNewFinding(world: World, result: SweepResult, check: Check, label: string, summary: RegExp): Promise<Alert> {
  assert.deepEqual(
    result.findings.map((f) => f.check),
    [check],
    `expected exactly one ${check} finding, got: ${result.findings.map((f) => `${f.check}: ${f.summary}`).join(' | ')}`,
  );
  const finding = result.findings[0];
  assert.match(finding.summary, summary);
  const sent = await drainInbox(world);
  assert.equal(sent.length, 1, 'one report message');
  const [message] = sent;
  const status = finding.severity === 'fail' ? 'FAIL' : 'WARN';
  assert.equal(message.subject, `coldseal report ${world.clock.now().toISOString().slice(0, 10)}: ${status} - 1 finding (1 new)`);
  assert.deepEqual(message.attributes, { kind: 'report', status });
  assert.ok(message.message.includes(`NEW ${status} ${label}`), message.message);
  assert.ok(message.message.includes(`  ${finding.summary}\n`), message.message);
  assert.ok(message.message.includes(`  where: ${finding.where}\n`));
  assert.ok(message.message.includes(`  since: ${finding.since}\n`));
  assert.ok(message.message.includes(`  do:    ${finding.action}\n`));
  assert.equal(result.report.status, status);
  return message;
}

test('a healthy fleet gives an OK report, stored as JSON and HTML, and no alert', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  const result = await sweep(world);
  assert.deepEqual(result.findings, []);
  assert.equal(result.report.status, 'OK');
  assert.equal(result.report.counts.backups, 12);
  assert.equal(result.report.verification.verifiedArtifacts, 12);
  assert.equal(result.report.verification.hashedObjects, 12);
  const sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].attributes, { kind: 'report', status: 'OK' });
  assert.match(sent[0].subject, /^coldseal report \d{4}-\d\d-\d\d: OK - 0 findings$/);
  assert.match(sent[0].message, /^OK: 0 failing, 0 warning; 2 sources, 12 backups; hashed 23\d KiB/m);
  assert.match(sent[0].message, /Every check passed\./);
  assert.ok(sent[0].message.includes(`Full report: s3://${world.bucket}/${result.reportKeys.html}`));

  const json = reportSchema.parse(JSON.parse(await readText(world, result.reportKeys.json)));
  assert.equal(json.status, 'OK');
  assert.deepEqual(json.sources.map((s) => `${s.host}/${s.source}:${s.status}:${s.history.length}`), ['web-1/pg:OK:6', 'web-2/pg:OK:6']);
  assert.deepEqual(json.drills.map((d) => [d.host, d.ok]), [['web-1', true]]);
  const html = await readText(world, result.reportKeys.html);
  assert.match(html, /<title>coldseal verification \d{4}-\d\d-\d\d: OK<\/title>/);
  assert.equal((html.match(/<svg class="chart"/g) ?? []).length, 2);

  // A second sweep reads nothing again: every object has a complete verification record.
  const again = await sweep(world);
  assert.equal(again.report.verification.hashedBytes, 0);
  assert.equal(again.report.verification.verifiedArtifacts, 12);
  await drainInbox(world);
});

test('a flipped byte in a verified ciphertext is found on the next sweep', async () => {
  const world = await newWorld({ account });
  const fleet = await healthyFleet(world);
  assert.equal((await sweep(world)).report.status, 'OK');
  await drainInbox(world);
  const victim = fleet.get('web-1')![5];
  const damaged = Buffer.from(victim.ciphertext);
  damaged[9000] ^= 0x01; // second 8 KiB part
  await putObject(world, victim.artifactKey, damaged);
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'ciphertext-sha256', 'Ciphertext SHA-256 - web/web-1/pg, daily', /^artifact "app" does not match the SHA-256 in its signed manifest: its bytes were changed or damaged$/);
  assert.match(result.findings[0].detail!, /^part 2 of 3 \(bytes 8192-16383\) has SHA-256 [0-9a-f]{12}\.\.\., the signed manifest says [0-9a-f]{12}\.\.\.$/);
  // The read stops at the first bad part: parts after it are not fetched.
  assert.equal(JSON.parse(await readText(world, verificationRecordKey(victim.artifactKey))).partsDone, 1);
  assert.equal(result.findings[0].where, `s3://${world.bucket}/${victim.artifactKey}`);
});

test('a truncated ciphertext is a size finding, without reading it', async () => {
  const world = await newWorld({ account });
  const fleet = await healthyFleet(world);
  const victim = fleet.get('web-2')![5];
  await putObject(world, victim.artifactKey, victim.ciphertext.subarray(0, 5000));
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'ciphertext-size', 'Ciphertext size - web/web-2/pg, daily', new RegExp(`^artifact "app" is 5000 bytes, the signed manifest says ${victim.ciphertext.length} \\(truncated\\)$`));
});

test('a manifest edited after signing is refused', async () => {
  const world = await newWorld({ account });
  const fleet = await healthyFleet(world);
  // The newest: a refused backup between good ones is also a closed RPO gap (rpo-missed, verifier-audit.test.ts).
  const victim = fleet.get('web-1')![5];
  const envelope = JSON.parse(victim.manifestText) as { payload: string };
  envelope.payload = envelope.payload.replace(/"exitCode": 0/, '"exitCode": 0 ').replace(/"ciphertextSha256": "[0-9a-f]+"/, `"ciphertextSha256": "${'0'.repeat(64)}"`);
  await putObject(world, victim.manifestKey, JSON.stringify(envelope));
  const result = await sweep(world);
  const message = await expectOneNewFinding(world, result, 'manifest-signature', 'Manifest signature - web/web-1/pg, daily', /^manifest does not match its signature: it was changed after it was signed$/);
  assert.match(message.message, /do: {4}Do not restore from this backup; restore from an earlier one if needed\. Find who wrote this key/);
});

test('a manifest signed by a key the group does not trust is refused', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  const stranger = await generateKeyPair({ name: 'someone else' });
  const backup = await putBackup(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - 30 * 60_000), payloadBytes: 20_500, signingKey: await readPrivateKey(stranger.privateKey, 'stranger') });
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'manifest-signature', 'Manifest signature - web/web-2/pg, daily', /^manifest is not signed by a trusted signing key of group "web"$/);
  assert.match(result.findings[0].detail!, /signed by key id [0-9a-f]{16}, which is not a trusted signing key of this group/);
  assert.equal(result.findings[0].where, `s3://${world.bucket}/${backup.manifestKey}`);
});

test('a newest backup addressed to other recipients than configured is a finding', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  const other = await generateKeyPair({ name: 'not the escrow key' });
  await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 20 * 60_000), payloadBytes: 20_200, recipients: [other.publicKey] });
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'recipients', 'Recipients - web/web-1/pg, daily', /^artifact "app" is encrypted to key ids [0-9a-f]{16}, not to the recipients configured in \/coldseal-test\/groups\/web\/recipients \([0-9a-f]{16}\)$/);
});

test('ciphertext without a manifest becomes an orphan after an hour, not before', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  const partial = await buildBackup(world, { host: 'web-2', finishedAt: new Date(world.clock.ms), payloadBytes: 20_000 });
  await storeBackup(world, partial, {}, false);
  const running = await sweep(world);
  assert.deepEqual(running.findings, [], 'an upload in progress is not an orphan');
  await drainInbox(world);
  world.clock.advance(2 * HOUR);
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'orphan', 'Orphan ciphertext - web/web-2/pg, daily', /^ciphertext \(19\.\d KiB\) has no manifest, 2\.0 h after it was written: the run that wrote it did not finish$/);
});

test('a source whose newest backup is older than the RPO is a finding', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world, { hosts: ['web-1'] });
  for (let k = 3; k >= 0; k--) await putBackup(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - 30 * HOUR - k * DAY), payloadBytes: 20_000 });
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'rpo', 'Backup older than RPO - web/web-2/pg', /^newest valid backup is 30\.0 h old \(\d{8}T\d{6}Z\); the RPO is 26 h$/);
  assert.equal(result.findings[0].since, new Date(world.clock.ms - 4 * HOUR).toISOString());
});

test('a 0-byte dump fails, a 90% smaller one warns', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 10 * 60_000), empty: true });
  const empty = await sweep(world);
  await expectOneNewFinding(world, empty, 'empty-dump', 'Empty dump - web/web-1/pg, daily', /^newest backup \(\d{8}T\d{6}Z\) holds an empty dump: app is 0 bytes$/);

  const world2 = await newWorld({ account });
  await healthyFleet(world2);
  await putBackup(world2, { host: 'web-2', finishedAt: new Date(world2.clock.ms - 10 * 60_000), payloadBytes: 2_030 });
  const smaller = await sweep(world2);
  await expectOneNewFinding(world2, smaller, 'size-drop', 'Sudden size drop - web/web-2/pg, daily', /^newest backup \(\d{8}T\d{6}Z\) is 2\.0 KiB, 90% below the median of the previous 6 \(19\.8 KiB\)$/);
});

test('a failed restore drill is a finding with the failed checks', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  await putDrill(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - HOUR), ok: false });
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'drill-failed', 'Restore drill failed - web', /^latest restore drill \(\d{8}T\d{6}Z on web-2\) failed: 1 of the restored dumps did not check out$/);
  assert.equal(result.findings[0].detail, 'pg/app: row counts (public.orders: 0 rows restored, 1234 dumped)');
  assert.deepEqual(result.report.drills.map((d) => [d.host, d.ok]), [['web-2', false]]);
});

test('a drill that read the offsite replica says so in the report (JSON and HTML)', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world, { drill: false });
  await putDrill(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - HOUR), ok: true, readFrom: { bucket: 'coldseal-replica-222233334444-eu-west-3', region: 'eu-west-3' } });
  const result = await sweep(world);
  assert.deepEqual(result.report.drills.map((d) => [d.host, d.ok, d.readFrom]), [['web-1', true, 's3://coldseal-replica-222233334444-eu-west-3 (eu-west-3)']]);
  const html = await readText(world, result.reportKeys.html);
  assert.match(html, /<td>offsite replica s3:\/\/coldseal-replica-222233334444-eu-west-3 \(eu-west-3\)<\/td>/);
  await putDrill(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - 1000), ok: true });
  const next = await sweep(world);
  assert.deepEqual(next.report.drills.map((d) => [d.host, d.readFrom]), [['web-2', undefined]]);
  assert.match(await readText(world, next.reportKeys.html), /<td>data bucket<\/td>/);
});

test('a non-zero dump exit status and a missing Object Lock retention are findings', async () => {
  const world = await newWorld({ account, groups: [{ name: 'web', sources: ['pg'], hosts: ['web-1'], retentionDays: { daily: 35 } }] });
  await healthyFleet(world, { hosts: ['web-1'], drill: false });
  await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 5 * 60_000), exitCode: 1 });
  const failed = await sweep(world);
  await expectOneNewFinding(world, failed, 'dump-exit-status', 'Dump exit status - web/web-1/pg, daily', /^pg_dump exited with status 1 for artifact "app"$/);
  // The action names the group too: coldseal trigger needs it when a deployment has several.
  assert.match(failed.findings[0].action, /then run coldseal trigger --group web --host web-1\.$/);

  const world2 = await newWorld({ account, groups: [{ name: 'web', sources: ['pg'], hosts: ['web-1'], retentionDays: { daily: 35 } }] });
  await healthyFleet(world2, { hosts: ['web-1'], drill: false });
  await putBackup(world2, { host: 'web-1', finishedAt: new Date(world2.clock.ms - 5 * 60_000), lock: false });
  const unlocked = await sweep(world2);
  await expectOneNewFinding(world2, unlocked, 'object-lock', 'Object Lock retention - web/web-1/pg, daily', /^artifact "app" has no Object Lock retention: it can be deleted or overwritten$/);
});

test('archived objects are checked from metadata; one never read before archiving is flagged', async () => {
  // An RPO longer than the 35 days between the monthly copy and the dailies: that gap is not what this test is about.
  const groups = [{ name: 'web', rpoHours: 1000, sources: ['pg'], hosts: ['web-1'], retentionDays: {} }];
  const world = await newWorld({ account, groups });
  await healthyFleet(world, { hosts: ['web-1'], drill: false });
  const monthly = await putBackup(world, { host: 'web-1', tier: 'monthly', finishedAt: new Date(world.clock.ms - 40 * DAY) });
  assert.deepEqual((await sweep(world)).findings, []);
  // Lifecycle moves it to Glacier after it was read-verified: still proven, by its record.
  // (moto applies no lifecycle: the same bytes are stored again as GLACIER, which keeps the ETag as a transition does.)
  await putObject(world, monthly.artifactKey, monthly.ciphertext, { storageClass: 'GLACIER' });
  const archived = await sweep(world);
  assert.deepEqual(archived.findings, []);
  assert.equal(archived.report.verification.archivedArtifacts, 1);
  await drainInbox(world);
  // One that went to Glacier before any read (e.g. written there directly): flagged, and no GET is tried.
  const yearly = await buildBackup(world, { host: 'web-1', tier: 'yearly', finishedAt: new Date(world.clock.ms - 20 * DAY) });
  await storeBackup(world, yearly, { storageClass: 'GLACIER' });
  const result = await sweep(world);
  await expectOneNewFinding(world, result, 'not-read-verified', 'Archived, never read-verified - web/web-1/pg, yearly', /^artifact "app" is in GLACIER and was never read back and hashed before it was archived$/);
});

test('large objects are hashed part by part across invocations within a byte budget, and damage in a late part is found', async () => {
  const groups = [{ name: 'web', sources: ['pg'], hosts: ['web-1'], retentionDays: {} }];
  // 0.05 MiB per invocation against a ~200 KB object: four invocations.
  const world = await newWorld({ account, groups, extraEnv: { COLDSEAL_HASH_BUDGET_MB: '0.05' } });
  const big = await buildBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - HOUR), payloadBytes: 200_000 });
  const damaged = Buffer.from(big.ciphertext);
  damaged[150_000] ^= 0xff;
  await storeBackup(world, { ...big, ciphertext: damaged });
  const parts = big.manifest.artifacts[0].parts.sha256.length;
  assert.equal(parts, 25);
  const progress: number[] = [];
  let result: SweepResult | undefined;
  for (let i = 0; i < 4; i++) {
    result = await sweep(world);
    const record = JSON.parse(await readText(world, verificationRecordKey(big.artifactKey))) as VerificationRecord;
    progress.push(record.partsDone);
    if (record.complete) break;
    assert.deepEqual(result.findings, [], 'nothing to say while parts so far match (and the backup is less than a day old)');
    assert.equal(result.report.verification.pendingObjects, 1);
  }
  assert.deepEqual(progress, [6, 12, 18, 18]);
  assert.deepEqual(result!.findings.map((f) => f.check), ['ciphertext-sha256']);
  assert.match(result!.findings[0].detail!, /^part 19 of 25 \(bytes 147456-155647\) has SHA-256/);
  await drainInbox(world);
});

test('a new manifest is verified at once; duplicates stay quiet; the next good backup announces the resolution once', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world);
  const handler = verifier(world);
  const small = await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 5 * 60_000), payloadBytes: 1_500 });
  const first = (await handler(objectCreated(world, small.manifestKey))) as ManifestResult;
  assert.deepEqual(first.findings.map((f) => f.check), ['size-drop']);
  let sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].attributes, { kind: 'alert', status: 'WARN' });
  assert.equal(sent[0].subject, 'coldseal WARN: 1 new (new backup) - Sudden size drop on web/web-1/pg');
  assert.match(sent[0].message, /^NEW WARN Sudden size drop - web\/web-1\/pg, daily\n {2}newest backup \(\d{8}T\d{6}Z\) is 1\.5 KiB, 93% below the median of the previous 6 \(19\.8 KiB\)\n/);
  assert.ok(sent[0].message.includes(`Backup: s3://${world.bucket}/${small.manifestKey}`));

  // EventBridge delivers at least once: the same event again sends nothing.
  world.clock.advance(10 * 60_000);
  const repeat = (await handler(objectCreated(world, small.manifestKey))) as ManifestResult;
  assert.equal(repeat.plan.quiet.length, 1);
  assert.deepEqual(await drainInbox(world), []);

  world.clock.advance(DAY);
  const good = await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 60_000), payloadBytes: 20_100 });
  const fixed = (await handler(objectCreated(world, good.manifestKey))) as ManifestResult;
  assert.deepEqual(fixed.findings, []);
  sent = await drainInbox(world);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].subject, 'coldseal RESOLVED: 1 resolved (new backup) - Sudden size drop on web/web-1/pg');
  assert.match(sent[0].message, /^RESOLVED Sudden size drop - web\/web-1\/pg: newest backup \(\d{8}T\d{6}Z\) is 1\.5 KiB, 93% below/m);
  const again = (await handler(objectCreated(world, good.manifestKey))) as ManifestResult;
  assert.deepEqual(again.plan.resolved, []);
  assert.deepEqual(await drainInbox(world), []);
});

test('daily sweeps: a problem is new once, repeated at most daily, and resolved once', async () => {
  const world = await newWorld({ account, groups: [{ name: 'web', rpoHours: 96, sources: ['pg'], hosts: ['web-1'], retentionDays: {} }] });
  await healthyFleet(world, { hosts: ['web-1'], drill: false });
  const extra = await buildBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 3 * HOUR) });
  await storeBackup(world, extra, {}, false);
  world.clock.advance(2 * HOUR); // past the orphan grace, counted from the real upload time
  const subjects: string[] = [];
  const bodies: string[] = [];
  const run = async () => {
    const r = await sweep(world);
    const sent = await drainInbox(world);
    assert.equal(sent.length, 1);
    subjects.push(sent[0].subject.replace(/^coldseal report \S+: /, ''));
    bodies.push(sent[0].message);
    return r;
  };
  await run(); // new
  world.clock.advance(6 * HOUR);
  await run(); // open, already alerted
  world.clock.advance(19 * HOUR);
  await run(); // repeated: a day since the last alert
  await putObject(world, extra.manifestKey, extra.manifestText); // the run's manifest shows up after all
  world.clock.advance(HOUR);
  await run(); // resolved
  world.clock.advance(HOUR);
  await run(); // quiet again
  assert.deepEqual(subjects, ['WARN - 1 finding (1 new)', 'WARN - 1 finding', 'WARN - 1 finding', 'OK - 0 findings (1 resolved)', 'OK - 0 findings']);
  assert.match(bodies[0], /^NEW WARN Orphan ciphertext/m);
  assert.match(bodies[1], /^OPEN \(already alerted\) WARN Orphan ciphertext/m);
  assert.match(bodies[2], /^OPEN since \d{4}-\d\d-\d\dT\d\d:\d\dZ WARN Orphan ciphertext/m);
  assert.match(bodies[3], /^RESOLVED Orphan ciphertext - web\/web-1\/pg: ciphertext \(19\.\d KiB\) has no manifest/m);
  assert.match(bodies[4], /Every check passed\./);
});
