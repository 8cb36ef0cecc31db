import { Transform, type TransformCallback } from 'node:stream';

/**
 * Where a streamed restore waited: a pass-through placed just before the loader (pg_restore,
 * mysql, tar) that tells the time the loader could not keep up (its input was full: the loader
 * was the limit) from the time it waited for plaintext (the read was the limit: ranged GETs, part
 * checks, decryption, decompression). Node asks a Transform for more (`_read`) only when the
 * reader downstream wants more, so the span from a refused push to the next `_read` is time the
 * loader was busy with what it already had.
 */
export class StageClock extends Transform {
  private blockedSince: number | undefined;
  private blocked = 0;
  private last: number | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.last = Date.now();
    if (!this.push(chunk) && this.blockedSince === undefined) this.blockedSince = this.last;
    callback();
  }

  override _read(size: number): void {
    if (this.blockedSince !== undefined) {
      this.blocked += Date.now() - this.blockedSince;
      this.blockedSince = undefined;
    }
    super._read(size);
  }

  /** Milliseconds the loader held the stream back. */
  get blockedMs(): number {
    return this.blocked + (this.blockedSince === undefined ? 0 : Date.now() - this.blockedSince);
  }

  /** When the last plaintext chunk passed; undefined before the first. */
  get lastChunkAt(): number | undefined {
    return this.last;
  }
}
