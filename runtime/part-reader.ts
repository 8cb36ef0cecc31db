import { createHash } from 'node:crypto';
import type { Artifact } from '../format/manifest';
import { ciphertextParts, type CiphertextPart } from '../format/ranges';
import { youngGarbage } from './young-garbage';

/**
 * The one way every reader (restore, verify, drill, the verifier Lambda) reads an artifact's
 * ciphertext: ranged GETs of its parts, several in flight at once (a single GET stream to S3 is
 * far slower than the network; the AWS CLI fetches in parallel ranges too), handed on strictly in
 * order, each part's SHA-256 checked against the signed manifest BEFORE any of its bytes are
 * handed on. So a changed byte is refused before it can reach decryption or a target, and memory
 * is bounded by the window: (parts in flight + the one handed on) × part size, whatever the
 * object's size.
 *
 * Each part is read into one of those window + 1 buffers, allocated once and reused: a socket's
 * 64 KiB chunks are copied in as they arrive and die young. Holding the chunks themselves until
 * a part's turn came kept them alive past two scavenges, so every byte read became old-generation
 * garbage that only a full mark-compact frees (the measurements are in docs/benchmarks.md).
 * Node 24's V8 no longer scavenges for such chunks by itself: the reader asks for a scavenge every
 * few MiB of them (young-garbage.ts).
 *
 * Every object is pinned to the version the first read of it saw (IfMatch on its ETag, and its
 * VersionId when the bucket is versioned): an object replaced while it is being read fails loudly
 * instead of splicing two versions together.
 *
 * Transport-neutral: the caller supplies `fetch` (the agent's S3 client, the Lambda's store).
 */

/** The version of an object a read is tied to. */
export interface ObjectPin {
  readonly etag?: string;
  readonly versionId?: string;
}

export interface RangeRequest {
  readonly key: string;
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive (HTTP Range semantics). */
  readonly end: number;
  /** Read exactly this version; a fetcher must fail with PartReadError 'changed' when it is gone. */
  readonly pin?: ObjectPin;
  readonly signal: AbortSignal;
}

export interface RangeResponse {
  readonly body: AsyncIterable<Uint8Array>;
  readonly etag?: string;
  readonly versionId?: string;
  /** The whole object's size (from Content-Range), when the transport reports it. */
  readonly objectSize?: number;
}

/** Fetches one byte range. Throw PartReadError for answers that retrying cannot change. */
export type RangeFetcher = (request: RangeRequest) => Promise<RangeResponse>;

export type PartReadFailure =
  /** The object is not there although the signed manifest lists it. */
  | 'missing'
  /** The object is in an archive class without a restored copy. */
  | 'archived'
  /** The object was replaced or deleted while it was being read (its pinned version is gone). */
  | 'changed'
  /** The object's size differs from what the manifest's parts add up to. */
  | 'size'
  /** A part's bytes do not match the SHA-256 the signed manifest lists for it. */
  | 'part-checksum'
  /** The whole ciphertext's SHA-256 differs from the signed manifest's. */
  | 'checksum'
  /** Reading failed after every retry (network, throttling, server errors). */
  | 'storage';

/** Integrity failures: the bytes are not the ones that were backed up. */
export const INTEGRITY_FAILURES: ReadonlySet<PartReadFailure> = new Set(['missing', 'changed', 'size', 'part-checksum', 'checksum']);

export class PartReadError extends Error {
  /** The SHA-256 actually read, for 'part-checksum' and 'checksum'. */
  readonly actual?: string;

  constructor(
    readonly failure: PartReadFailure,
    message: string,
    readonly part?: CiphertextPart,
    options?: { cause?: unknown; actual?: string },
  ) {
    super(message, options);
    this.name = 'PartReadError';
    this.actual = options?.actual;
  }
}

/** One part, its bytes checked against the signed manifest. */
export interface VerifiedPart {
  readonly part: CiphertextPart;
  /**
   * The part's bytes: a view into a buffer the reader reuses once the next part is asked for.
   * Finish with them (a write completed, a copy taken) before calling `next()` again.
   */
  readonly bytes: Uint8Array;
}

export interface PartReaderOptions {
  readonly artifact: Artifact;
  readonly fetch: RangeFetcher;
  /** Parts in flight at once. @default 4 (fewer when parts are large: see maxBufferedBytes) */
  readonly window?: number;
  /** Upper bound on bytes held by the parts in flight. @default 64 MiB (at least one part) */
  readonly maxBufferedBytes?: number;
  /** 0-based index of the first part to read (a resumed read); the whole-object SHA-256 is only checked from 0. @default 0 */
  readonly fromPart?: number;
  /** Stop after this many parts (a budgeted read). @default all */
  readonly maxParts?: number;
  /** Versions already established (by an earlier pass or invocation), per object key. */
  readonly pins?: ReadonlyMap<string, ObjectPin>;
  /** Attempts per part for errors that are not PartReadErrors. @default 4 */
  readonly attempts?: number;
  /** Delay before retry n (1-based), in ms. @default 200 × 2^(n-1) */
  readonly backoffMs?: (retry: number) => number;
  /** Aborts the whole read (in-flight requests are aborted too). */
  readonly signal?: AbortSignal;
  /** Called with ciphertext bytes handed on so far. */
  readonly onProgress?: (bytes: number) => void;
  /** Part buffers shared with other reads of the same run (see PartBufferPool). @default a pool of this read's own */
  readonly buffers?: PartBufferPool;
}

/**
 * Part buffers that consecutive reads of one run share: a restore into a new database first reads
 * the archive's head (two parts), then the whole object; with a pool of its own each, the head's
 * buffers stayed allocated, as garbage only a full collection frees, beside the main read's
 * window + 1: two parts more at the start of the restore, when its memory peaks.
 *
 * Every buffer is of the largest size asked for so far: a smaller part uses a larger buffer, and
 * once a larger part is asked for, the smaller buffers are let go instead of kept. So the pool
 * holds no more than one read of the largest part size would (a sweep of artifacts of growing
 * part sizes does not keep a set of each). A buffer comes back only when nothing can write into
 * it any more: the consumer asked for the next part, or its request settled after the read stopped.
 */
export class PartBufferPool {
  private readonly free: Buffer[] = [];
  private size = 0;
  private allocations = 0;

  /** Buffers allocated so far (a measure of what the pool saved). */
  get allocated(): number {
    return this.allocations;
  }

  /** Bytes of the buffers waiting to be reused. */
  get retainedBytes(): number {
    return this.free.length * this.size;
  }

  /** A buffer of at least `size` bytes. */
  take(size: number): Buffer {
    if (size > this.size) {
      this.size = size;
      this.free.length = 0;
    }
    const reused = this.free.pop();
    if (reused) return reused;
    this.allocations++;
    return Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    if (buffer.length === this.size) this.free.push(buffer);
  }
}

const MIB = 1024 * 1024;

function where(part: CiphertextPart): string {
  return `part ${part.index} (bytes ${part.offset}-${part.offset + part.length - 1} of ${part.key})`;
}

/** What the manifest says each object's size is: the end of its last part. */
function objectSizes(parts: readonly CiphertextPart[]): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const p of parts) sizes.set(p.key, Math.max(sizes.get(p.key) ?? 0, p.offset + p.length));
  return sizes;
}

/**
 * Reads an artifact's ciphertext part by part. The part list is checked against the manifest's
 * stated size before the first request (ciphertextParts throws). After the last part of a read
 * that started at part 0 and covered every part, the whole ciphertext's SHA-256 is compared with
 * the manifest too. Breaking out of the loop aborts the requests still in flight.
 */
export class PartReader {
  readonly parts: readonly CiphertextPart[];
  readonly window: number;
  private readonly pins = new Map<string, ObjectPin>();
  /** Objects whose first request is on its way: the others wait for its headers to learn the pin. */
  private readonly pinning = new Map<string, Promise<void>>();
  private readonly sizes: Map<string, number>;
  private readonly selected: readonly CiphertextPart[];
  private bytes = 0;

  constructor(private readonly options: PartReaderOptions) {
    const all = ciphertextParts(options.artifact);
    this.parts = all;
    this.sizes = objectSizes(all);
    const from = options.fromPart ?? 0;
    this.selected = all.slice(from, options.maxParts === undefined ? undefined : from + options.maxParts);
    const partSize = options.artifact.parts.size;
    const byBytes = Math.max(1, Math.floor((options.maxBufferedBytes ?? 64 * MIB) / partSize));
    this.window = Math.max(1, Math.min(options.window ?? 4, byBytes));
    for (const [key, pin] of options.pins ?? []) this.pins.set(key, pin);
  }

  /** The version read of each object (filled as objects are first read). */
  get objectPins(): ReadonlyMap<string, ObjectPin> {
    return this.pins;
  }

  /** Ciphertext bytes handed on so far. */
  get bytesRead(): number {
    return this.bytes;
  }

  /** Whether this read covers the whole ciphertext (so its SHA-256 is checked at the end). */
  get whole(): boolean {
    return this.selected.length === this.parts.length;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<VerifiedPart> {
    const controller = new AbortController();
    const outer = this.options.signal;
    const onOuterAbort = () => controller.abort(outer?.reason);
    outer?.addEventListener('abort', onOuterAbort, { once: true });
    const whole = this.whole ? createHash('sha256') : undefined;
    // window + 1 buffers: the window in flight and the part the consumer holds. Sized to the
    // largest part read, so a small object does not cost a whole part size.
    const bufferSize = this.selected.reduce((max, p) => Math.max(max, p.length), 0);
    const pool = this.options.buffers ?? new PartBufferPool();
    const inFlight: { buffer: Buffer; read: Promise<VerifiedPart> }[] = [];
    let held: Buffer | undefined;
    let next = 0;
    const launch = () => {
      while (inFlight.length < this.window && next < this.selected.length) {
        const buffer = pool.take(bufferSize);
        const read = this.readPart(this.selected[next++], controller.signal, buffer);
        // Rejections are handled when the promise's turn comes; don't let an early one go unhandled.
        read.catch(() => undefined);
        inFlight.push({ buffer, read });
      }
    };
    try {
      launch();
      while (inFlight.length) {
        const { buffer, read } = inFlight.shift()!;
        // The loop can only be left from this await by the read failing, that is once it settled:
        // from here on nothing but the consumer touches this buffer.
        held = buffer;
        const verified = await read;
        launch();
        whole?.update(verified.bytes);
        this.bytes += verified.part.length;
        this.options.onProgress?.(this.bytes);
        yield verified;
        // The consumer asked for the next part: it is done with this one's bytes.
        pool.give(buffer);
        held = undefined;
      }
      if (whole) {
        const sha256 = whole.digest('hex');
        const { artifact } = this.options;
        if (sha256 !== artifact.ciphertextSha256) {
          throw new PartReadError('checksum', `the SHA-256 of the ciphertext of "${artifact.name}" is ${sha256}, the signed manifest says ${artifact.ciphertextSha256}: the ciphertext was altered or damaged`, undefined, { actual: sha256 });
        }
      }
    } finally {
      outer?.removeEventListener('abort', onOuterAbort);
      controller.abort(new Error('part reader stopped'));
      // The consumer stopped (or a part failed): its part is free now, the others once their requests settle.
      if (held) pool.give(held);
      for (const { buffer, read } of inFlight) {
        read.then(
          () => pool.give(buffer),
          () => pool.give(buffer),
        );
      }
    }
  }

  private async readPart(part: CiphertextPart, signal: AbortSignal, buffer: Buffer): Promise<VerifiedPart> {
    const attempts = this.options.attempts ?? 4;
    const backoff = this.options.backoffMs ?? ((n: number) => 200 * 2 ** (n - 1));
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.readPartOnce(part, signal, buffer);
      } catch (error) {
        // The fetcher knows the object, the reader the part: a failure names both.
        if (error instanceof PartReadError) throw error.part ? error : new PartReadError(error.failure, error.message, part, { cause: error.cause, actual: error.actual });
        if (signal.aborted) throw error;
        if (attempt >= attempts) {
          throw new PartReadError('storage', `reading ${where(part)} failed ${attempts} times: ${(error as Error).message}`, part, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
        if (signal.aborted) throw error;
      }
    }
  }

  private async readPartOnce(part: CiphertextPart, signal: AbortSignal, buffer: Buffer): Promise<VerifiedPart> {
    if (part.length === 0) {
      // An empty ciphertext: S3 refuses a range on an empty object, and no byte is needed anyway.
      if (createHash('sha256').digest('hex') !== part.sha256) throw new PartReadError('part-checksum', `${part.key} is empty, but the signed manifest lists a part hash of non-empty bytes`, part);
      return { part, bytes: new Uint8Array() };
    }
    while (!this.pins.has(part.key) && this.pinning.has(part.key)) await this.pinning.get(part.key);
    const pin = this.pins.get(part.key);
    let pinned: (() => void) | undefined;
    if (!pin) this.pinning.set(part.key, new Promise<void>((resolve) => (pinned = resolve)));
    let response: RangeResponse;
    try {
      response = await this.options.fetch({ key: part.key, start: part.offset, end: part.offset + part.length - 1, pin, signal });
      if (!pin) this.pins.set(part.key, { etag: response.etag, versionId: response.versionId });
    } finally {
      if (pinned) {
        this.pinning.delete(part.key);
        pinned();
      }
    }
    const expectedSize = this.sizes.get(part.key)!;
    let refusal: PartReadError | undefined;
    if (pin?.etag && response.etag && pin.etag !== response.etag) {
      refusal = new PartReadError('changed', `${part.key} changed while it was being read (ETag ${response.etag}, first read ${pin.etag})`, part);
    } else if (response.objectSize !== undefined && response.objectSize !== expectedSize) {
      refusal = new PartReadError('size', `${part.key} is ${response.objectSize} bytes but the signed manifest says ${expectedSize}: the object is ${response.objectSize < expectedSize ? 'truncated' : 'not the one that was backed up'}`, part);
    }
    if (refusal) {
      // An unread body would error later (connection reset) with nobody listening.
      const body = response.body as { destroy?: () => void; on?: (event: string, listener: () => void) => void };
      body.on?.('error', () => undefined);
      body.destroy?.();
      throw refusal;
    }
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of response.body) {
      if (received + chunk.length > part.length) {
        received += chunk.length;
        break;
      }
      // Hashed while the chunk is still in the CPU's cache, then copied into the part's buffer.
      hash.update(chunk);
      buffer.set(chunk, received);
      received += chunk.length;
      // The chunk is garbage now: scavenges free such chunks young (young-garbage.ts).
      youngGarbage(chunk.length);
    }
    if (received !== part.length) {
      // A short body is a broken connection (retryable); a long one is the object's fault.
      if (received > part.length) throw new PartReadError('size', `${where(part)}: the server sent more than ${part.length} bytes`, part);
      throw new Error(`${where(part)}: the body ended after ${received} of ${part.length} bytes`);
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== part.sha256) {
      throw new PartReadError('part-checksum', `${where(part)} has SHA-256 ${sha256}, the signed manifest says ${part.sha256}: the ciphertext was altered or damaged`, part, { actual: sha256 });
    }
    return { part, bytes: buffer.subarray(0, part.length) };
  }
}
