import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PartBufferPool, PartReader, PartReadError, type RangeFetcher, type RangeRequest, type VerifiedPart } from '../../runtime/part-reader';
import type { Artifact } from '../../format/manifest';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function artifactOf(bytes: Buffer, partSize: number, key = 'backups/daily/g/h/s/20261122T010203Z.db.pgdump.zst.pgp'): Artifact {
  const hashes: string[] = [];
  for (let o = 0; o < Math.max(1, bytes.length); o += partSize) hashes.push(sha(bytes.subarray(o, o + partSize)));
  return { name: 'db', key, ciphertextBytes: bytes.length, ciphertextSha256: sha(bytes), parts: { size: partSize, sha256: hashes } } as unknown as Artifact;
}

/** An in-memory bucket object that answers ranged GETs like S3 does (ETag, IfMatch, Content-Range), with latency. */
class FakeObject {
  inFlight = 0;
  maxInFlight = 0;
  requests: RangeRequest[] = [];
  aborted = 0;
  etag = '"v1"';
  failures = new Map<number, number>();
  constructor(
    public bytes: Buffer,
    private readonly latencyMs = 5,
  ) {}

  fetch: RangeFetcher = async (request) => {
    this.requests.push(request);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.latencyMs));
      if (request.signal.aborted) {
        this.aborted++;
        throw new Error('aborted');
      }
      const left = this.failures.get(request.start) ?? 0;
      if (left > 0) {
        this.failures.set(request.start, left - 1);
        throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
      }
      if (request.pin?.etag && request.pin.etag !== this.etag) throw new PartReadError('changed', `precondition failed for ${request.key}`);
      const slice = this.bytes.subarray(request.start, request.end + 1);
      const etag = this.etag;
      const body = (async function* () {
        // Several chunks per part, like a socket delivers them.
        for (let o = 0; o < slice.length; o += 1000) yield slice.subarray(o, o + 1000);
      })();
      return { body, etag, versionId: undefined, objectSize: this.bytes.length };
    } finally {
      this.inFlight--;
    }
  };
}

async function collect(reader: PartReader, each?: (p: VerifiedPart) => void): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const p of reader) {
    each?.(p);
    // The reader reuses a part's buffer once the next part is asked for: keep a copy.
    out.push(Buffer.from(p.bytes));
  }
  return Buffer.concat(out);
}

describe('PartReader', () => {
  test('reads every part in order, several at once but never more than the window', async () => {
    const bytes = randomBytes(10 * 4096 + 123);
    const object = new FakeObject(bytes);
    const reader = new PartReader({ artifact: artifactOf(bytes, 4096), fetch: object.fetch, window: 3 });
    const seen: number[] = [];
    const read = await collect(reader, (p) => seen.push(p.part.index));
    assert.ok(read.equals(bytes));
    assert.deepEqual(seen, Array.from({ length: 11 }, (_, i) => i + 1));
    assert.equal(object.maxInFlight, 3, 'parts are fetched in parallel, up to the window');
    assert.equal(reader.bytesRead, bytes.length);
    assert.equal(reader.objectPins.get(artifactOf(bytes, 4096).key)?.etag, '"v1"');
  });

  test('a held part keeps its bytes while later parts arrive; part buffers are reused, window + 1 of them', async () => {
    const bytes = randomBytes(12 * 4096 + 5);
    const object = new FakeObject(bytes, 1);
    const reader = new PartReader({ artifact: artifactOf(bytes, 4096), fetch: object.fetch, window: 3 });
    const buffers = new Set<ArrayBufferLike>();
    for await (const p of reader) {
      buffers.add(p.bytes.buffer);
      // The window refills while this part is held: those reads must land in other buffers.
      await new Promise((r) => setTimeout(r, 15));
      const expected = bytes.subarray(p.part.offset, p.part.offset + p.part.length);
      assert.ok(Buffer.from(p.bytes).equals(expected), `part ${p.part.index} was overwritten while it was held`);
    }
    assert.equal(buffers.size, 4, 'three parts in flight and the one held, each buffer reused');
  });

  test('a small object costs buffers of its own size, not the part size', async () => {
    const bytes = randomBytes(300);
    for await (const p of new PartReader({ artifact: artifactOf(bytes, 8 * 1024 * 1024), fetch: new FakeObject(bytes).fetch })) {
      assert.equal(p.bytes.buffer.byteLength, 300, 'one buffer sized to the largest part read');
    }
  });

  test('reads that share a pool reuse each other\'s buffers: a head read then the whole read cost window + 1 in all', async () => {
    const bytes = randomBytes(10 * 4096);
    const artifact = artifactOf(bytes, 4096);
    const buffers = new PartBufferPool();
    const head = await collect(new PartReader({ artifact, fetch: new FakeObject(bytes).fetch, window: 3, maxParts: 2, buffers }));
    assert.ok(head.equals(bytes.subarray(0, 2 * 4096)), 'the head read gets the first two parts');
    assert.equal(buffers.allocated, 2, 'the head read holds two parts at most');
    assert.ok((await collect(new PartReader({ artifact, fetch: new FakeObject(bytes).fetch, window: 3, buffers }))).equals(bytes), 'the whole read is intact');
    assert.equal(buffers.allocated, 4, 'the whole read took the head read\'s two buffers and allocated only the other two');
  });

  test('a shared pool keeps only buffers of the largest part size: smaller ones are let go, and smaller parts reuse the larger buffers', async () => {
    const buffers = new PartBufferPool();
    const small = randomBytes(8 * 1024);
    const large = randomBytes(8 * 4096);
    assert.ok((await collect(new PartReader({ artifact: artifactOf(small, 1024), fetch: new FakeObject(small).fetch, window: 3, buffers }))).equals(small));
    assert.equal(buffers.retainedBytes, 4 * 1024, 'window + 1 small buffers wait for reuse');
    assert.ok((await collect(new PartReader({ artifact: artifactOf(large, 4096), fetch: new FakeObject(large).fetch, window: 3, buffers }))).equals(large));
    assert.equal(buffers.retainedBytes, 4 * 4096, 'the small buffers were let go, not kept beside the large ones');
    const allocated = buffers.allocated;
    assert.ok((await collect(new PartReader({ artifact: artifactOf(small, 1024), fetch: new FakeObject(small).fetch, window: 3, buffers }))).equals(small), 'small parts read intact from large buffers');
    assert.equal(buffers.allocated, allocated, 'the small read allocated nothing');
    assert.equal(buffers.retainedBytes, 4 * 4096);
  });

  test('a read stopped early gives its in-flight buffers back only once their requests settled, so a later read never shares one with a dying request', async () => {
    const first = randomBytes(6 * 4096);
    const second = randomBytes(6 * 4096);
    // A body that keeps delivering after the abort, slowly, as a socket that has not noticed yet.
    const slowFetch = (bytes: Buffer): RangeFetcher => async (request) => ({
      etag: '"v1"',
      objectSize: bytes.length,
      body: (async function* () {
        const slice = bytes.subarray(request.start, request.end + 1);
        for (let o = 0; o < slice.length; o += 512) {
          await new Promise((r) => setTimeout(r, 2));
          yield slice.subarray(o, o + 512);
        }
      })(),
    });
    const buffers = new PartBufferPool();
    for await (const part of new PartReader({ artifact: artifactOf(first, 4096), fetch: slowFetch(first), window: 3, buffers })) {
      assert.equal(part.part.index, 1, 'stopped after the first part');
      break;
    }
    // Started at once: the stopped read's two other requests are still writing into their buffers.
    const read = await collect(new PartReader({ artifact: artifactOf(second, 4096), fetch: slowFetch(second), window: 3, buffers }));
    assert.ok(read.equals(second), 'no byte of the stopped read landed in the later read\'s parts');
    assert.ok(buffers.allocated >= 5 && buffers.allocated <= 6, `the held part's buffer was reused at once, the in-flight ones not (allocated ${buffers.allocated})`);
  });

  test('the window shrinks so that buffered parts stay under maxBufferedBytes', async () => {
    const bytes = randomBytes(8 * 4096);
    const object = new FakeObject(bytes);
    const reader = new PartReader({ artifact: artifactOf(bytes, 4096), fetch: object.fetch, window: 4, maxBufferedBytes: 2 * 4096 });
    assert.equal(reader.window, 2);
    assert.ok((await collect(reader)).equals(bytes));
    assert.ok(object.maxInFlight <= 2);
    assert.equal(new PartReader({ artifact: artifactOf(bytes, 4096), fetch: object.fetch, maxBufferedBytes: 1 }).window, 1, 'at least one part');
  });

  test('a flipped byte in part k of n is refused before any byte of part k is handed on', async () => {
    const bytes = randomBytes(6 * 4096);
    const artifact = artifactOf(bytes, 4096);
    const tampered = Buffer.from(bytes);
    tampered[3 * 4096 + 17] ^= 0x01; // part 4
    const handed: number[] = [];
    await assert.rejects(
      collect(new PartReader({ artifact, fetch: new FakeObject(tampered).fetch }), (p) => handed.push(p.part.index)),
      (error: PartReadError) => {
        assert.equal(error.failure, 'part-checksum');
        assert.equal(error.part?.index, 4);
        assert.match(error.message, /part 4 \(bytes 12288-16383/);
        return true;
      },
    );
    assert.deepEqual(handed, [1, 2, 3]);
  });

  test('an object replaced during the read fails loudly (pinned ETag), and so does one answered without honouring the pin', async () => {
    const bytes = randomBytes(6 * 4096);
    const artifact = artifactOf(bytes, 4096);
    const object = new FakeObject(bytes);
    let count = 0;
    await assert.rejects(
      collect(new PartReader({ artifact, fetch: object.fetch, window: 2 }), () => {
        if (++count === 2) object.etag = '"v2"';
      }),
      (error: PartReadError) => error.failure === 'changed',
    );
    assert.ok(object.requests.slice(1).every((r) => r.pin?.etag === '"v1"'), 'every request after the first is pinned to the first version');

    const careless = new FakeObject(bytes);
    const fetch: RangeFetcher = async (request) => {
      const response = await careless.fetch({ ...request, pin: undefined });
      return { ...response, etag: request.start >= 2 * 4096 ? '"other"' : response.etag };
    };
    await assert.rejects(collect(new PartReader({ artifact, fetch, window: 1 })), (error: PartReadError) => error.failure === 'changed' && /changed while it was being read/.test(error.message));
  });

  test('a given pin is used from the first request on', async () => {
    const bytes = randomBytes(3 * 4096);
    const object = new FakeObject(bytes);
    const artifact = artifactOf(bytes, 4096);
    await assert.rejects(collect(new PartReader({ artifact, fetch: object.fetch, pins: new Map([[artifact.key, { etag: '"v0"' }]]) })), (error: PartReadError) => error.failure === 'changed');
    assert.equal(object.requests[0].pin?.etag, '"v0"');
  });

  test('transient errors are retried; a part that keeps failing is a storage error naming it', async () => {
    const bytes = randomBytes(4 * 4096);
    const artifact = artifactOf(bytes, 4096);
    const flaky = new FakeObject(bytes);
    flaky.failures.set(4096, 2);
    assert.ok((await collect(new PartReader({ artifact, fetch: flaky.fetch, backoffMs: () => 1 }))).equals(bytes));
    assert.equal(flaky.requests.filter((r) => r.start === 4096).length, 3);

    const broken = new FakeObject(bytes);
    broken.failures.set(2 * 4096, 99);
    await assert.rejects(collect(new PartReader({ artifact, fetch: broken.fetch, attempts: 3, backoffMs: () => 1 })), (error: PartReadError) => {
      assert.equal(error.failure, 'storage');
      assert.equal(error.part?.index, 3);
      assert.match(error.message, /failed 3 times: socket hang up/);
      return true;
    });
  });

  test('a body that ends early is retried, not handed on', async () => {
    const bytes = randomBytes(2 * 4096);
    const object = new FakeObject(bytes);
    let cut = true;
    const fetch: RangeFetcher = async (request) => {
      const response = await object.fetch(request);
      if (request.start === 0 && cut) {
        cut = false;
        const body = (async function* () {
          for await (const c of response.body) {
            yield c;
            return;
          }
        })();
        return { ...response, body };
      }
      return response;
    };
    assert.ok((await collect(new PartReader({ artifact: artifactOf(bytes, 4096), fetch, backoffMs: () => 1 }))).equals(bytes));
  });

  test('a part list that cannot describe the stated size is refused before anything is read', () => {
    const bytes = randomBytes(3 * 4096);
    const artifact = artifactOf(bytes, 4096);
    const object = new FakeObject(bytes);
    const short = { ...artifact, parts: { ...artifact.parts, sha256: artifact.parts.sha256.slice(0, 2) } } as Artifact;
    assert.throws(() => new PartReader({ artifact: short, fetch: object.fetch }), /lists 2 part checksums, but 12288 bytes in parts of 4096 need 3/);
    assert.equal(object.requests.length, 0);
  });

  test('an object of another size than the parts add up to is refused', async () => {
    const bytes = randomBytes(3 * 4096);
    const longer = Buffer.concat([bytes, Buffer.from('appended')]);
    await assert.rejects(collect(new PartReader({ artifact: artifactOf(bytes, 4096), fetch: new FakeObject(longer).fetch })), (error: PartReadError) => error.failure === 'size' && /12296 bytes but the signed manifest says 12288: the object is not the one that was backed up/.test(error.message));
  });

  test('the whole SHA-256 is checked at the end of a whole read', async () => {
    const bytes = randomBytes(2 * 4096);
    const artifact = { ...artifactOf(bytes, 4096), ciphertextSha256: '0'.repeat(64) } as Artifact;
    let parts = 0;
    await assert.rejects(collect(new PartReader({ artifact, fetch: new FakeObject(bytes).fetch }), () => parts++), (error: PartReadError) => error.failure === 'checksum');
    assert.equal(parts, 2);
    // A partial (resumed or budgeted) read checks parts only.
    const reader = new PartReader({ artifact, fetch: new FakeObject(bytes).fetch, fromPart: 1 });
    assert.equal(reader.whole, false);
    assert.ok((await collect(reader)).equals(bytes.subarray(4096)));
    assert.ok((await collect(new PartReader({ artifact, fetch: new FakeObject(bytes).fetch, maxParts: 1 }))).equals(bytes.subarray(0, 4096)));
  });

  test('stopping early aborts the requests in flight', async () => {
    const bytes = randomBytes(20 * 4096);
    const object = new FakeObject(bytes, 20);
    for await (const p of new PartReader({ artifact: artifactOf(bytes, 4096), fetch: object.fetch, window: 4 })) {
      if (p.part.index === 2) break;
    }
    assert.ok(object.requests.length <= 6, `at most the window ahead was requested (${object.requests.length})`);
    assert.ok(object.requests.slice(2).every((r) => r.signal.aborted));
  });

  test('a failure the fetcher reports for an object (a segment gone) carries the part, with its segment', async () => {
    const bytes = randomBytes(4000);
    const base = artifactOf(bytes, 1000);
    const second = base.key.replace(/\.pgp$/, '.seg00002.pgp');
    const artifact = { ...base, segments: [{ key: base.key, bytes: 2000, sha256: sha(bytes.subarray(0, 2000)), parts: 2 }, { key: second, bytes: 2000, sha256: sha(bytes.subarray(2000)), parts: 2 }] } as Artifact;
    const first = new FakeObject(bytes.subarray(0, 2000), 1);
    const fetch: RangeFetcher = async (request) => {
      if (request.key === second) throw new PartReadError('missing', `s3://b/${second} is missing although the signed manifest lists it`);
      return first.fetch(request);
    };
    await assert.rejects(collect(new PartReader({ artifact, fetch })), (error: unknown) => {
      assert.ok(error instanceof PartReadError && error.failure === 'missing');
      assert.deepEqual([error.part?.key, error.part?.index, error.part?.segment, error.part?.segments], [second, 3, 2, 2]);
      return true;
    });
  });

  test('an empty ciphertext is one empty part', async () => {
    const bytes = Buffer.alloc(0);
    const object = new FakeObject(bytes);
    // S3 refuses a range on an empty object; readers never ask for one because no byte is needed.
    const artifact = artifactOf(bytes, 4096);
    assert.equal(artifact.parts.sha256.length, 1);
    const reader = new PartReader({ artifact, fetch: object.fetch });
    assert.equal((await collect(reader)).length, 0);
  });
});
