import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { segmentKey } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { signManifest } from '../../runtime/signed-document';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, buildBackup, healthyFleet, newWorld, putObject, type World } from './fixtures';

/**
 * The verifier on segmented artifacts (manifest format 2): each segment is checked for presence,
 * size and lock, the whole ciphertext is read across segments, and a segment missing, or one more
 * than the signed list, is a FAIL.
 */
let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

const PART = 4096;
const PARTS_PER_SEGMENT = 2;

/** A backup of the fixtures' kind whose ciphertext is cut into segments of 2 parts, signed as format 2. */
async function putSegmented(world: World, finishedAt: Date, options: { skip?: number; extra?: boolean; truncate?: number } = {}) {
  const built = await buildBackup(world, { host: 'web-1', finishedAt, payloadBytes: 20_500, partSize: PART });
  const artifact = built.manifest.artifacts[0];
  const ciphertext = Buffer.from(built.ciphertext);
  const span = PART * PARTS_PER_SEGMENT;
  const segments = [];
  for (let offset = 0, n = 1; offset < ciphertext.length; offset += span, n++) {
    const body = ciphertext.subarray(offset, offset + span);
    segments.push({ key: segmentKey(artifact.key, n), bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), parts: Math.ceil(body.length / PART), body });
  }
  assert.ok(segments.length >= 3);
  const manifest: Manifest = { ...built.manifest, formatVersion: 2, artifacts: [{ ...artifact, segments: segments.map(({ body: _b, ...s }) => s) }] };
  for (const [i, s] of segments.entries()) {
    if (options.skip === i + 1) continue;
    await putObject(world, s.key, options.truncate === i + 1 ? s.body.subarray(0, s.body.length - 10) : s.body);
  }
  if (options.extra) await putObject(world, segmentKey(artifact.key, segments.length + 1), Buffer.from('one more segment'));
  await putObject(world, built.manifestKey, await signManifest(manifest, world.keys.signingKey));
  return { manifest, segments };
}

async function sweep(world: World): Promise<SweepResult> {
  return (await createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock })({ action: 'sweep' })) as SweepResult;
}

test('a healthy segmented backup is read across its segments and passes', async () => {
  const world = await newWorld({ account });
  await healthyFleet(world, { drill: true });
  await putSegmented(world, new Date(world.clock.ms - HOUR / 2));
  const result = await sweep(world);
  assert.deepEqual(result.findings.map((f) => `${f.check}: ${f.summary}`), []);
  assert.equal(result.report.status, 'OK');
});

test('a missing, a truncated or an extra segment is a FAIL naming the segment', async () => {
  const cases: { options: Parameters<typeof putSegmented>[2]; check: string; summary: RegExp }[] = [
    { options: { skip: 2 }, check: 'ciphertext-missing', summary: /artifact "app" segment 2 of \d+ \(8192 bytes\) named by the manifest is not in the bucket/ },
    { options: { truncate: 1 }, check: 'ciphertext-size', summary: /artifact "app" segment 1 of \d+ is 8182 bytes, the signed manifest says 8192 \(truncated\)/ },
    { options: { extra: true }, check: 'ciphertext-size', summary: /artifact "app" has a segment \d+ \(16 bytes\) that its signed manifest does not list/ },
  ];
  for (const c of cases) {
    const world = await newWorld({ account });
    await healthyFleet(world, { drill: true });
    const { segments } = await putSegmented(world, new Date(world.clock.ms - HOUR / 2), c.options);
    world.clock.advance(DAY / 24);
    const result = await sweep(world);
    const fails = result.findings.filter((f) => f.severity === 'fail');
    assert.equal(fails.length, 1, fails.map((f) => `${f.check}: ${f.summary}`).join(' | '));
    assert.equal(fails[0].check, c.check);
    assert.match(fails[0].summary, c.summary);
    assert.equal(result.report.status, 'FAIL');
    if (c.options?.skip) assert.ok(fails[0].where.endsWith(segments[c.options.skip - 1].key), fails[0].where);
  }
});
