import { Readable, Transform, type TransformCallback } from 'node:stream';

/** Counts bytes passing through, for the manifest and the progress line. */
export class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/**
 * Counts bytes and keeps the last few KiB, so a dump tool's completion trailer ("-- Dump completed")
 * can be checked without buffering the dump.
 */
export class TailWatcher extends Transform {
  bytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  constructor(private readonly keep = 4096) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.tail = chunk.length >= this.keep ? chunk.subarray(chunk.length - this.keep) : Buffer.concat([this.tail, chunk]).subarray(-this.keep);
    callback(null, chunk);
  }
  tailText(): string {
    return this.tail.toString('utf8');
  }
}

/**
 * Re-chunks to at least `size` bytes: openpgp.js pays a fixed cost per chunk, and pipes deliver
 * 64 KiB at a time (16 KiB chunks halve its speed).
 */
export class Rechunker extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  constructor(private readonly size = 1024 * 1024) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= this.size) this.release();
    callback();
  }
  override _flush(callback: TransformCallback): void {
    if (this.pendingBytes > 0) this.release();
    callback();
  }
  private release(): void {
    this.push(this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
  }
}

/**
 * Holds back the end of the stream until `release` settles. The upload completes only when its
 * body ends, so holding the end is what keeps a truncated dump from ever becoming an S3 object:
 * if the dump tool failed, or a sibling artifact of the same source failed, the body errors
 * instead and the multipart upload is aborted.
 */
export class EndGate extends Transform {
  constructor(private readonly release: () => Promise<void>) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, chunk);
  }
  override _flush(callback: TransformCallback): void {
    this.release().then(
      () => callback(),
      (error: Error) => callback(error),
    );
  }
}

/** Node stream → web stream with real backpressure (pull one chunk when asked). */
export function nodeToWeb(source: Readable): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await iterator.next();
          if (done) controller.close();
          else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
        } catch (error) {
          controller.error(error);
        }
      },
      cancel(reason) {
        source.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Web stream → Node stream, pulling only as fast as the consumer reads. */
export function webToNode(stream: ReadableStream<Uint8Array>): Readable {
  const reader = stream.getReader();
  return new Readable({
    highWaterMark: 1,
    objectMode: false,
    read() {
      reader.read().then(
        ({ value, done }) => {
          if (done) this.push(null);
          else this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        },
        (error: Error) => this.destroy(error),
      );
    },
    destroy(error, callback) {
      reader.cancel(error ?? undefined).then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
}
