import { abortIncompleteUploads, type AbortOutcome, type OpenUpload } from './abort-upload';
import { createHash, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { DigestStream, type CiphertextDigest } from '../../../../runtime/digest';
import { segmentKey } from '../../../../format/layout';
import type { Segment } from '../../../../format/manifest';
import type { SizePlan } from './size-plan';

/**
 * The agent's own S3 multipart writer, on the SDK's CreateMultipartUpload / UploadPart /
 * CompleteMultipartUpload. It replaces @aws-sdk/lib-storage, which cannot do what a backup needs:
 * - each part's SHA-256 is computed once, as the bytes arrive, and serves as the part's S3
 *   checksum (x-amz-checksum-sha256, which Object Lock uploads require) and as the SigV4 payload
 *   hash (x-amz-content-sha256), so the signer does not hash every byte a second time;
 * - a fixed pool of part buffers, allocated once and reused (lib-storage allocates and
 *   concatenates per part), so memory is `plan.bufferedBytes` whatever the dump's size;
 * - a dump longer than one upload may hold (10,000 parts, 5 TiB) continues in the next segment
 *   object (see size-plan.ts);
 * - retries per part with backoff, on top of the SDK's own;
 * - nothing is completed before `beforeComplete` has resolved (the end gate: the dump tool and the
 *   compressor exited cleanly, every artifact of the source is good). Until then every segment is
 *   an open multipart upload, and any failure aborts them all, so no truncated object is ever left.
 * A ciphertext that fits in one part is written with one conditional PutObject instead.
 */
export interface MultipartTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  /** The artifact's key (its first segment). */
  readonly key: string;
  /** Headers for every object: SSE, storage class, tags, Object Lock. */
  readonly objectParams: Omit<PutObjectCommandInput, 'Bucket' | 'Key' | 'Body'>;
}

export interface MultipartResult {
  readonly digest: CiphertextDigest;
  readonly segments: Segment[];
}

export interface MultipartOptions {
  readonly target: MultipartTarget;
  readonly plan: SizePlan;
  /** The end gate: settles after the last byte; the objects are completed only if it resolves. */
  readonly beforeComplete: () => Promise<void>;
  /** Attempts per part (each also retried by the SDK's own strategy). @default 3 */
  readonly attempts?: number;
  /** Delay before retry n (1-based), in ms. @default 500 × 2^(n-1) */
  readonly backoffMs?: (retry: number) => number;
}

interface OpenSegment {
  readonly key: string;
  /** Started when the segment's first part is sent. */
  upload?: Promise<string>;
  readonly parts: (CompletedPart | undefined)[];
  partCount: number;
  bytes: number;
  /** Own hasher for segments after the first (the first one's hash is the running whole hash's). */
  readonly hash?: Hash;
  sha256?: string;
}

/** Sets the SigV4 payload hash of one request to a hash already known, so the signer skips its own pass. */
export function withPayloadHash<C extends UploadPartCommand | PutObjectCommand>(command: C, sha256Hex: string): C {
  (command.middlewareStack as unknown as UploadPartCommand['middlewareStack']).add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = sha256Hex;
      return next(args);
    },
    { step: 'build', name: 'coldsealPrecomputedPayloadHash' },
  );
  return command;
}

const base64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

export class MultipartWriter extends Writable {
  private readonly digest: DigestStream;
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private current: Buffer | undefined;
  private fill = 0;
  /** Parts handed to S3 so far, over all segments. */
  private dispatched = 0;
  private readonly segments: OpenSegment[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private result: MultipartResult | undefined;
  private aborting: Promise<AbortOutcome> | undefined;

  constructor(private readonly options: MultipartOptions) {
    super({ highWaterMark: 256 * 1024 });
    this.digest = new DigestStream(options.plan.partSize);
  }

  /** Ciphertext bytes taken so far. */
  get bytes(): number {
    return this.digest.bytesSoFar;
  }

  /** Part buffers allocated (never more than plan.buffers). */
  get buffersAllocated(): number {
    return this.allocated;
  }

  /** The digests and segments, once the objects are complete. */
  get outcome(): MultipartResult {
    if (!this.result) throw new Error('multipart outcome read before the upload completed');
    return this.result;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.result) {
      this.failure ??= error ?? new Error('upload stopped');
      this.abort().then(
        () => callback(error),
        () => callback(error),
      );
    } else {
      callback(error);
    }
  }

  private async take(chunk: Buffer): Promise<void> {
    const size = this.options.plan.partSize;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.failure) throw this.failure;
      // A full buffer is sent only once more bytes arrive: a ciphertext of one part becomes a PutObject.
      if (this.current && this.fill === size) this.dispatch();
      if (!this.current) {
        this.current = await this.nextBuffer();
        this.fill = 0;
      }
      const take = Math.min(size - this.fill, chunk.length - offset);
      const piece = chunk.subarray(offset, offset + take);
      this.digest.update(piece);
      this.segments[Math.floor(this.dispatched / this.options.plan.partsPerSegment)]?.hash?.update(piece);
      piece.copy(this.current, this.fill);
      this.fill += take;
      offset += take;
    }
  }

  private async nextBuffer(): Promise<Buffer> {
    for (;;) {
      if (this.failure) throw this.failure;
      const reused = this.free.pop();
      if (reused) return reused;
      if (this.allocated < this.options.plan.buffers) {
        this.allocated++;
        return Buffer.allocUnsafeSlow(this.options.plan.partSize);
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private release(buffer: Buffer): void {
    this.free.push(buffer);
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.();
  }

  /** Segment `n` (0-based); segments after the first hash their own bytes from their first byte. */
  private openSegment(n: number): OpenSegment {
    const segment: OpenSegment = { key: segmentKey(this.options.target.key, n + 1), parts: [], partCount: 0, bytes: 0, hash: n === 0 ? undefined : createHash('sha256') };
    this.segments[n] = segment;
    return segment;
  }

  private startUpload(segment: OpenSegment): Promise<string> {
    const { s3, bucket, objectParams } = this.options.target;
    if (!segment.upload) {
      segment.upload = s3
        .send(new CreateMultipartUploadCommand({ ...objectParams, Bucket: bucket, Key: segment.key, ChecksumAlgorithm: 'SHA256' }))
        .then((created) => {
          if (!created.UploadId) throw new Error(`S3 returned no upload id for ${segment.key}`);
          return created.UploadId;
        });
      segment.upload.catch((error: Error) => this.fail(error));
    }
    return segment.upload;
  }

  /** Sends the current buffer as the next part. */
  private dispatch(last = false): void {
    const buffer = this.current!;
    const length = this.fill;
    const index = this.dispatched++;
    const plan = this.options.plan;
    const n = Math.floor(index / plan.partsPerSegment);
    const segment = this.segments[n] ?? this.openSegment(n);
    const partNumber = (index % plan.partsPerSegment) + 1;
    segment.partCount++;
    segment.bytes += length;
    const hash = this.digest.partHash(index + 1)!;
    if (partNumber === plan.partsPerSegment) {
      // The segment is full: its hash is final now (the first segment's is the running whole hash's).
      segment.sha256 = segment.hash ? segment.hash.digest('hex') : this.digest.sha256SoFar();
      // The next byte belongs to the next segment, which hashes its own bytes from the first.
      if (!last) this.openSegment(n + 1);
    }
    this.current = undefined;
    this.fill = 0;
    const sent = this.sendPart(segment, partNumber, buffer.subarray(0, length), hash).then(
      (part) => {
        segment.parts[partNumber - 1] = part;
      },
      (error: Error) => this.fail(error),
    );
    const tracked = sent.finally(() => {
      this.inFlight.delete(tracked);
      this.release(buffer);
    });
    this.inFlight.add(tracked);
  }

  private async sendPart(segment: OpenSegment, partNumber: number, body: Buffer, sha256Hex: string): Promise<CompletedPart> {
    const { s3, bucket } = this.options.target;
    const uploadId = await this.startUpload(segment);
    const attempts = this.options.attempts ?? 3;
    const backoff = this.options.backoffMs ?? ((n: number) => 500 * 2 ** (n - 1));
    for (let attempt = 1; ; attempt++) {
      if (this.failure) throw this.failure;
      try {
        const command = new UploadPartCommand({ Bucket: bucket, Key: segment.key, UploadId: uploadId, PartNumber: partNumber, Body: body, ChecksumSHA256: base64(sha256Hex) });
        const answer = await s3.send(withPayloadHash(command, sha256Hex));
        return { PartNumber: partNumber, ETag: answer.ETag, ChecksumSHA256: answer.ChecksumSHA256 ?? base64(sha256Hex) };
      } catch (error) {
        const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        // A 4xx (other than throttling) will not change by asking again.
        if (attempt >= attempts || (status !== undefined && status >= 400 && status < 500 && status !== 429)) throw error;
        await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
      }
    }
  }

  private async finish(): Promise<void> {
    if (this.failure) throw this.failure;
    const { s3, bucket, key, objectParams } = this.options.target;
    const digest = this.digest.finish();
    if (this.dispatched === 0) {
      // One part or less: a single conditional PutObject, after the gate.
      await this.options.beforeComplete();
      if (this.failure) throw this.failure;
      const body = this.current ? this.current.subarray(0, this.fill) : Buffer.alloc(0);
      const command = new PutObjectCommand({ ...objectParams, Bucket: bucket, Key: key, Body: body, IfNoneMatch: '*', ChecksumAlgorithm: 'SHA256', ChecksumSHA256: base64(digest.sha256) });
      await s3.send(withPayloadHash(command, digest.sha256));
      this.result = { digest, segments: [{ key, bytes: digest.bytes, sha256: digest.sha256, parts: 1 }] };
      return;
    }
    if (this.current && this.fill > 0) this.dispatch(true);
    // A part that filled its segment exactly opened a next segment that no byte came for.
    if (this.segments[this.segments.length - 1].partCount === 0) this.segments.pop();
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    if (this.failure) throw this.failure;
    await this.options.beforeComplete();
    if (this.failure) throw this.failure;
    const segments: Segment[] = [];
    for (const segment of this.segments) {
      const sha256 = segment.sha256 ?? (segment.hash ? segment.hash.digest('hex') : digest.sha256);
      segment.sha256 = sha256;
      const uploadId = await this.startUpload(segment);
      await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: segment.key,
          UploadId: uploadId,
          IfNoneMatch: '*',
          MultipartUpload: { Parts: segment.parts as CompletedPart[] },
        }),
      );
      segments.push({ key: segment.key, bytes: segment.bytes, sha256, parts: segment.partCount });
    }
    this.result = { digest, segments };
  }

  /**
   * Aborts every upload this writer opened, and any upload left under its keys whose creation
   * answer was lost. Completed segments (a failure while completing) cannot be removed by a host
   * that may not delete; they stay as orphans that the verifier reports. The outcome says which
   * uploads S3 still lists (the abort failed too, e.g. during an outage).
   */
  abort(): Promise<AbortOutcome> {
    this.aborting ??= (async () => {
      this.fail(new Error('upload aborted'));
      await Promise.allSettled([...this.inFlight]);
      const { s3, bucket } = this.options.target;
      const uploads: OpenUpload[] = [];
      for (const segment of this.segments) uploads.push({ key: segment.key, uploadId: await segment.upload?.catch(() => undefined) });
      return abortIncompleteUploads(s3, bucket, uploads);
    })();
    return this.aborting;
  }
}
