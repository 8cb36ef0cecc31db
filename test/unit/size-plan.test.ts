import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_AUTO_BUFFERED_BYTES, MIB, planUpload, S3_MAX_OBJECT_SIZE, S3_MAX_PART_SIZE, S3_MAX_PARTS, S3_MIN_PART_SIZE } from '../../agent/src/backup/upload/size-plan';

const GB = 1e9;
const TB = 1e12;

/** How a dump of `ciphertext` bytes is cut under `plan`: parts per upload, segments, bytes per object. */
function cut(ciphertext: number, plan: ReturnType<typeof planUpload>) {
  const parts = Math.max(1, Math.ceil(ciphertext / plan.partSize));
  const segments = Math.ceil(parts / plan.partsPerSegment);
  const largestUploadParts = Math.min(parts, plan.partsPerSegment);
  return { parts, segments, largestUploadParts, largestObject: Math.min(ciphertext, plan.partsPerSegment * plan.partSize) };
}

test('for dumps from 1 MB to 50 TB no upload exceeds S3 limits and the buffers stay under the bound', () => {
  const sizes = [1e6, 100e6, GB, 36 * GB, 100 * GB, TB, 5 * TB, 10 * TB, 50 * TB];
  for (const queueSize of [1, 2, 4, 16]) {
    for (const size of sizes) {
      // The hint may be right, absent or badly wrong (a dump 4× the size on disk): none of it may break the limits.
      for (const hint of [size, undefined, size / 4]) {
        const plan = planUpload({ estimatedBytes: hint, queueSize });
        const label = `${size / GB} GB dump, hint ${hint}, queue ${queueSize}`;
        assert.ok(plan.partSize >= S3_MIN_PART_SIZE && plan.partSize <= S3_MAX_PART_SIZE, `${label}: part size ${plan.partSize}`);
        assert.ok(plan.partsPerSegment <= S3_MAX_PARTS, `${label}: ${plan.partsPerSegment} parts a segment`);
        assert.equal(plan.buffers, queueSize + 1);
        assert.equal(plan.bufferedBytes, plan.buffers * plan.partSize);
        assert.ok(plan.bufferedBytes <= MAX_AUTO_BUFFERED_BYTES, `${label}: ${plan.bufferedBytes / MIB} MiB of buffers`);
        // Incompressible data: the ciphertext is the dump plus a little.
        const c = cut(size * 1.001, plan);
        assert.ok(c.largestUploadParts <= S3_MAX_PARTS, `${label}: ${c.largestUploadParts} parts in one upload`);
        assert.ok(c.largestObject <= S3_MAX_OBJECT_SIZE, `${label}: object of ${c.largestObject} bytes`);
      }
    }
  }
  // A 50 TB database with a right hint: parts grow (fewer requests and part hashes), memory does not.
  const big = planUpload({ estimatedBytes: 50 * TB, queueSize: 2 });
  assert.equal(big.partSize, 42 * MIB);
  assert.ok(cut(50 * TB, big).segments > 100, 'about 120 segments of 10,000 parts');
  // Small and medium databases keep 8 MiB parts, one object.
  assert.deepEqual(planUpload({ estimatedBytes: GB, queueSize: 2 }), { partSize: 8 * MIB, partsPerSegment: 10_000, inFlight: 2, buffers: 3, bufferedBytes: 24 * MIB });
  assert.equal(cut(36 * GB, planUpload({ estimatedBytes: 36 * GB, queueSize: 2 })).segments, 1);
});

test('a configured part size wins, and forced segments are fewer parts a segment', () => {
  assert.equal(planUpload({ estimatedBytes: 50 * TB, partSizeMiB: 64, queueSize: 2 }).partSize, 64 * MIB);
  assert.equal(planUpload({ partSizeMiB: 5120, queueSize: 1 }).partsPerSegment, 1024, '5 GiB parts: 1,024 fill 5 TiB');
  const forced = planUpload({ partSizeMiB: 5, queueSize: 2, segmentParts: 4 });
  assert.deepEqual(forced, { partSize: 5 * MIB, partsPerSegment: 4, inFlight: 2, buffers: 3, bufferedBytes: 15 * MIB });
  assert.equal(cut(200e6, forced).segments, 10, 'a 200 MB dump in 5 MiB parts, 4 a segment');
  assert.throws(() => planUpload({ partSizeMiB: 4, queueSize: 2 }), /outside S3's 5 MiB–5 GiB/);
});
