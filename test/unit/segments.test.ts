import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { artifactKey, parseKey, segmentKey } from '../../format/layout';
import { manifestSchema, type Artifact } from '../../format/manifest';
import { artifactObjects, ciphertextParts } from '../../format/ranges';
import { MultipartWriter } from '../../agent/src/backup/upload/multipart';
import { MIB, planUpload } from '../../agent/src/backup/upload/size-plan';
import { newMotoAccount, uniqueName } from '../harness/aws';

const loc = { tier: 'daily', group: 'prod', host: 'db-1', source: 'main' } as const;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function segmentedArtifact(bytes: Buffer, partSize: number, perSegment: number): Artifact {
  const key = artifactKey(loc, '20261122T010203Z', 'app', 'pgdump.zst');
  const parts: string[] = [];
  for (let o = 0; o < bytes.length; o += partSize) parts.push(sha(bytes.subarray(o, o + partSize)));
  const segments = [];
  for (let p = 0, n = 1; p < parts.length; p += perSegment, n++) {
    const body = bytes.subarray(p * partSize, Math.min(bytes.length, (p + perSegment) * partSize));
    segments.push({ key: segmentKey(key, n), bytes: body.length, sha256: sha(body), parts: Math.min(perSegment, parts.length - p) });
  }
  return {
    name: 'app', kind: 'database', key, contentFormat: 'pg-custom', tool: { name: 'pg_dump', version: '16', args: [] }, exitCode: 0, warnings: [],
    completion: { method: 'exit-status', detail: '' }, startedAt: '2026-11-22T01:02:03.000Z', finishedAt: '2026-11-22T01:02:04.000Z',
    uncompressedBytes: null, compressedBytes: bytes.length, ciphertextBytes: bytes.length, ciphertextSha256: sha(bytes),
    parts: { size: partSize, sha256: parts }, segments,
  };
}

describe('segment layout', () => {
  test('segment keys: the first is the artifact key, the next ones carry a number; parseKey reads them back', () => {
    const key = artifactKey(loc, '20261122T010203Z', 'my.db', 'pgdump.zst');
    assert.equal(segmentKey(key, 1), key);
    assert.equal(segmentKey(key, 2), 'backups/daily/prod/db-1/main/20261122T010203Z.my%2Edb.pgdump.zst.seg00002.pgp');
    assert.deepEqual(parseKey(segmentKey(key, 12)), { kind: 'artifact', ...loc, stamp: '20261122T010203Z', artifact: 'my.db', extension: 'pgdump.zst', segment: 12 });
    assert.equal(parseKey(key)?.kind === 'artifact' && parseKey(key)!.kind, 'artifact');
    assert.equal(parseKey(key.replace('.pgp', '.seg00001.pgp')), null, 'segment 1 has no number');
    assert.throws(() => segmentKey(key, 0), /outside 1–99999/);
  });

  test('parts and objects are walked across segments in ciphertext order', () => {
    const bytes = randomBytes(10 * 100 + 37);
    const artifact = segmentedArtifact(bytes, 100, 4);
    const objects = artifactObjects(artifact);
    assert.deepEqual(objects.map((o) => [o.segment, o.bytes, o.firstPart, o.parts, o.ciphertextOffset]), [[1, 400, 0, 4, 0], [2, 400, 4, 4, 400], [3, 237, 8, 3, 800]]);
    const parts = ciphertextParts(artifact);
    assert.equal(parts.length, 11);
    const joined = Buffer.concat(parts.map((p) => {
      const object = objects.find((o) => o.key === p.key)!;
      const body = bytes.subarray(object.ciphertextOffset, object.ciphertextOffset + object.bytes);
      assert.equal(sha(body.subarray(p.offset, p.offset + p.length)), p.sha256, `part ${p.index}`);
      return body.subarray(p.offset, p.offset + p.length);
    }));
    assert.ok(joined.equals(bytes));
    assert.deepEqual(parts.slice(3, 6).map((p) => [p.key.endsWith('seg00002.pgp'), p.index, p.offset, p.ciphertextOffset]), [[false, 4, 300, 300], [true, 5, 0, 400], [true, 6, 100, 500]]);
  });

  test('a segment list that cannot describe the artifact is refused before any read', () => {
    const artifact = segmentedArtifact(randomBytes(1037), 100, 4);
    const segments = artifact.segments!;
    assert.throws(() => ciphertextParts({ ...artifact, segments: [segments[0], segments[2]] }), /segments hold 637 bytes, the manifest states 1037/);
    assert.throws(() => ciphertextParts({ ...artifact, segments: [{ ...segments[0], bytes: 390 }, segments[1], segments[2]] }), /segment 1 .* every segment but the last must be full/);
    assert.throws(() => ciphertextParts({ ...artifact, segments: [...segments, { ...segments[2], key: 'x' }] }), /segment 3 .* every segment but the last must be full/, 'an extra segment after the last');
  });

  test('manifest format 2 carries segments; format 1 is still read and may not', () => {
    const artifact = segmentedArtifact(randomBytes(1037), 100, 4);
    const manifest = {
      formatVersion: 2, group: 'prod', host: 'db-1', source: 'main', tier: 'daily', stamp: '20261122T010203Z', engine: { kind: 'postgres', version: '16' },
      startedAt: '2026-11-22T01:02:03.000Z', finishedAt: '2026-11-22T01:02:04.000Z', compression: { algorithm: 'zstd', level: 3, implementation: 'zstd-cli' },
      encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', recipientFingerprints: ['a'.repeat(40)], recipientKeyIds: ['b'.repeat(16)] },
      signingKeyFingerprint: 'c'.repeat(40), artifacts: [artifact], agent: { version: '1', node: 'v20' },
    };
    assert.equal(manifestSchema.safeParse(manifest).success, true);
    const { segments: _omit, ...unsegmented } = artifact;
    assert.equal(manifestSchema.safeParse({ ...manifest, formatVersion: 1, artifacts: [unsegmented] }).success, true, 'version 1 reads');
    assert.equal(manifestSchema.safeParse({ ...manifest, formatVersion: 1 }).success, false, 'version 1 has no segments');
    assert.equal(manifestSchema.safeParse({ ...manifest, artifacts: [{ ...artifact, segments: [{ ...artifact.segments![1] }, artifact.segments![0], artifact.segments![2]] }] }).success, false, 'the first segment is the key');
    assert.equal(manifestSchema.safeParse({ ...manifest, formatVersion: 3 }).success, false);
  });
});

describe('multipart writer', () => {
  async function setup() {
    const account = await newMotoAccount();
    const s3 = new S3Client({ ...account.clientConfig, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const bucket = uniqueName('segments');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const get = async (key: string) => Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
    const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!).sort();
    const openUploads = async () => (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
    return { s3, bucket, get, keys, openUploads };
  }
  const key = artifactKey(loc, '20261122T010203Z', 'app', 'pgdump.zst');
  /** 64 KiB chunks, as a pipe delivers them. */
  const chunks = (bytes: Buffer) => Readable.from((function* () {
    for (let o = 0; o < bytes.length; o += 65536) yield bytes.subarray(o, o + 65536);
  })());

  test('a long ciphertext becomes full segments of N parts, completed only after the gate, with a fixed buffer pool', async () => {
    const { s3, bucket, get, keys } = await setup();
    const bytes = randomBytes(23 * MIB + 12345);
    const plan = planUpload({ partSizeMiB: 5, queueSize: 2, segmentParts: 2 });
    let gateOpened = false;
    const writer = new MultipartWriter({
      target: { s3, bucket, key, objectParams: { ContentType: 'application/pgp-encrypted' } },
      plan,
      beforeComplete: async () => {
        assert.deepEqual(await keys(), [], 'nothing is an object before the gate opens');
        gateOpened = true;
      },
    });
    await pipeline(chunks(bytes), writer);
    assert.ok(gateOpened);
    assert.ok(writer.buffersAllocated <= plan.buffers, `${writer.buffersAllocated} buffers`);
    const { digest, segments } = writer.outcome;
    assert.equal(digest.sha256, sha(bytes));
    assert.equal(digest.partSha256.length, 5);
    assert.deepEqual(segments.map((s) => [s.key, s.parts, s.bytes]), [[key, 2, 10 * MIB], [segmentKey(key, 2), 2, 10 * MIB], [segmentKey(key, 3), 1, 3 * MIB + 12345]]);
    assert.deepEqual(await keys(), segments.map((s) => s.key).sort());
    const stored = await Promise.all(segments.map((s) => get(s.key)));
    stored.forEach((body, i) => assert.equal(sha(body), segments[i].sha256, `segment ${i + 1} hash`));
    assert.ok(Buffer.concat(stored).equals(bytes), 'the segments, concatenated, are the ciphertext');
  });

  test('a ciphertext that fills its last segment exactly opens no extra segment', async () => {
    const { s3, bucket, keys, openUploads } = await setup();
    const bytes = randomBytes(20 * MIB);
    const writer = new MultipartWriter({ target: { s3, bucket, key, objectParams: {} }, plan: planUpload({ partSizeMiB: 5, queueSize: 1, segmentParts: 2 }), beforeComplete: async () => undefined });
    await pipeline(chunks(bytes), writer);
    assert.deepEqual(writer.outcome.segments.map((s) => s.parts), [2, 2]);
    assert.equal((await keys()).length, 2);
    assert.deepEqual(await openUploads(), []);
  });

  test('a closed gate aborts every segment: no object, no open upload', async () => {
    const { s3, bucket, keys, openUploads } = await setup();
    const writer = new MultipartWriter({
      target: { s3, bucket, key, objectParams: {} },
      plan: planUpload({ partSizeMiB: 5, queueSize: 2, segmentParts: 1 }),
      beforeComplete: async () => {
        throw new Error('pg_dump exited with status 1');
      },
    });
    await assert.rejects(pipeline(chunks(randomBytes(12 * MIB)), writer), /pg_dump exited with status 1/);
    await writer.abort();
    assert.deepEqual(await keys(), []);
    assert.deepEqual(await openUploads(), []);
  });

  test('a part that S3 keeps failing fails the stream after its retries', async () => {
    const { s3, bucket, keys, openUploads } = await setup();
    let attempts = 0;
    s3.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand' && (args.input as { PartNumber: number }).PartNumber === 2) {
          attempts++;
          throw Object.assign(new Error('connection reset'), { $metadata: {} });
        }
        return next(args);
      },
      { step: 'initialize', name: 'failPart2' },
    );
    const writer = new MultipartWriter({ target: { s3, bucket, key, objectParams: {} }, plan: planUpload({ partSizeMiB: 5, queueSize: 2 }), beforeComplete: async () => undefined, attempts: 3, backoffMs: () => 10 });
    await assert.rejects(pipeline(chunks(randomBytes(12 * MIB)), writer), /connection reset/);
    await writer.abort();
    assert.equal(attempts, 3);
    assert.deepEqual(await keys(), []);
    assert.deepEqual(await openUploads(), []);
  });

  test('a ciphertext of one part is one conditional PutObject', async () => {
    const { s3, bucket, get, openUploads } = await setup();
    const bytes = randomBytes(3 * MIB);
    const writer = new MultipartWriter({ target: { s3, bucket, key, objectParams: {} }, plan: planUpload({ queueSize: 2 }), beforeComplete: async () => undefined });
    await pipeline(chunks(bytes), writer);
    assert.deepEqual(writer.outcome.segments, [{ key, bytes: bytes.length, sha256: sha(bytes), parts: 1 }]);
    assert.ok((await get(key)).equals(bytes));
    assert.deepEqual(await openUploads(), []);
    assert.equal(writer.buffersAllocated, 1);
  });
});
