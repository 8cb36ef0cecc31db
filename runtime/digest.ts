import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface CiphertextDigest {
  readonly bytes: number;
  readonly sha256: string;
  readonly partSize: number;
  readonly partSha256: string[];
}

/**
 * SHA-256 of the whole ciphertext and of each fixed-size part, computed in one pass. Part
 * boundaries match the multipart upload's part size, so a verifier can check one part with one
 * ranged GET, in parallel, without reading the object in order.
 */
export class DigestStream extends Transform {
  private readonly whole = createHash('sha256');
  private part: Hash = createHash('sha256');
  private partFill = 0;
  private total = 0;
  private readonly parts: string[] = [];
  private result: CiphertextDigest | undefined;

  constructor(readonly partSize: number) {
    super();
    if (!Number.isInteger(partSize) || partSize <= 0) throw new Error(`part size must be a positive integer, got ${partSize}`);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.finish();
    callback();
  }

  update(chunk: Uint8Array): void {
    this.whole.update(chunk);
    this.total += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.partSize - this.partFill, chunk.length - offset);
      this.part.update(chunk.subarray(offset, offset + take));
      this.partFill += take;
      offset += take;
      if (this.partFill === this.partSize) {
        this.parts.push(this.part.digest('hex'));
        this.part = createHash('sha256');
        this.partFill = 0;
      }
    }
  }

  finish(): CiphertextDigest {
    if (!this.result) {
      if (this.partFill > 0 || this.parts.length === 0) this.parts.push(this.part.digest('hex'));
      this.result = { bytes: this.total, sha256: this.whole.digest('hex'), partSize: this.partSize, partSha256: this.parts };
    }
    return this.result;
  }

  /** SHA-256 of part `partNumber` (1-based) once all its bytes have passed; undefined before. */
  partHash(partNumber: number): string | undefined {
    return this.parts[partNumber - 1] ?? (this.result && partNumber === this.result.partSha256.length ? this.result.partSha256[partNumber - 1] : undefined);
  }

  /** SHA-256 of every byte so far (the hash state is copied, the running hash goes on): the first segment's hash at its end. */
  sha256SoFar(): string {
    return this.result ? this.result.sha256 : this.whole.copy().digest('hex');
  }

  /** The whole stream's SHA-256 when it ended within one part (a single PutObject), else undefined. */
  completedSingleHash(): string | undefined {
    return this.result && this.result.partSha256.length === 1 ? this.result.sha256 : undefined;
  }

  get bytesSoFar(): number {
    return this.total;
  }

  get digest(): CiphertextDigest {
    if (!this.result) throw new Error('digest read before the stream ended');
    return this.result;
  }
}

/** SHA-256 and length of whatever passes through, for checking a stream against a signed record. */
export class Sha256Stream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
  digest(): { bytes: number; sha256: string } {
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }
}
