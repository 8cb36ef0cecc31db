import { DigestStream, STATE_PREFIX, type Artifact } from '../../../format';
import type { BucketStore } from '../../shared/ports';

/**
 * Read-verification of a ciphertext against its signed manifest, by streaming it from S3.
 *
 * One pass computes the whole-object SHA-256 and the per-part SHA-256 the manifest lists. When an
 * invocation's budget (time left, or a byte cap) runs out mid-object, the parts completed so far
 * are checked and recorded; the next invocation resumes at the next part boundary with a ranged
 * GET. Matching every signed part hash and the signed size proves the same bytes as the whole
 * hash, so an object of any size is verified across as many invocations as it takes.
 */
export const VERIFIED_PREFIX = `${STATE_PREFIX}verified/`;

export interface VerificationRecord {
  readonly key: string;
  /** ETag and version of the object that was read: a replaced object must be read again. */
  readonly etag: string;
  readonly versionId: string | undefined;
  readonly bytes: number;
  readonly partSize: number;
  readonly partsTotal: number;
  readonly partsDone: number;
  readonly complete: boolean;
  /** null while incomplete and nothing is wrong so far. */
  readonly ok: boolean | null;
  readonly mismatch?: string;
  readonly firstReadAt: string;
  readonly verifiedAt?: string;
}

export function verificationRecordKey(artifactKey: string): string {
  return `${VERIFIED_PREFIX}${artifactKey}.json`;
}

export class Budget {
  hashedBytes = 0;
  hashedObjects = 0;
  private readonly startedMs = Date.now();

  constructor(
    private remainingBytes: number,
    /** Milliseconds left before the run must stop hashing (Lambda time left minus a margin). */
    private readonly remainingMs: () => number,
  ) {}

  /** Bytes still allowed by the byte cap (Infinity without one). */
  get bytesLeft(): number {
    return Math.max(0, this.remainingBytes);
  }

  get exhausted(): boolean {
    return this.remainingBytes <= 0 || this.remainingMs() <= 0;
  }

  consume(bytes: number): void {
    this.remainingBytes -= bytes;
    this.hashedBytes += bytes;
  }

  get seconds(): number {
    return (Date.now() - this.startedMs) / 1000;
  }
}

function short(hex: string): string {
  return `${hex.slice(0, 12)}...`;
}

export async function readVerify(options: {
  store: BucketStore;
  artifact: Artifact;
  etag: string;
  versionId: string | undefined;
  previous: VerificationRecord | undefined;
  budget: Budget;
  now: Date;
}): Promise<VerificationRecord> {
  const { store, artifact, budget, now } = options;
  const partSize = artifact.parts.size;
  const partsTotal = artifact.parts.sha256.length;
  const resume = options.previous && !options.previous.complete && options.previous.etag === options.etag && options.previous.partSize === partSize ? options.previous : undefined;
  const startPart = resume?.partsDone ?? 0;
  const start = startPart * partSize;
  const digest = new DigestStream(partSize);
  let read = 0;
  let stoppedEarly = false;
  // A byte cap ends the read on a part boundary (at least one part, so every run makes progress).
  const capParts = Number.isFinite(budget.bytesLeft) ? Math.max(1, Math.floor(budget.bytesLeft / partSize)) : Number.POSITIVE_INFINITY;
  const end = start + capParts * partSize < artifact.ciphertextBytes ? start + capParts * partSize : undefined;
  const body = await store.getRange(artifact.key, start, end);
  try {
    for await (const chunk of body) {
      digest.update(chunk);
      read += chunk.length;
      budget.consume(chunk.length);
      if (budget.exhausted && start + read < artifact.ciphertextBytes) {
        stoppedEarly = true;
        break;
      }
    }
  } finally {
    if (stoppedEarly) (body as { destroy?: () => void }).destroy?.();
  }
  if (end !== undefined && !stoppedEarly) stoppedEarly = true;
  const result = digest.finish();
  const fullPartsRead = stoppedEarly ? Math.floor(read / partSize) : result.partSha256.length;
  const base = { key: artifact.key, etag: options.etag, versionId: options.versionId, bytes: artifact.ciphertextBytes, partSize, partsTotal, firstReadAt: resume?.firstReadAt ?? now.toISOString() };
  for (let i = 0; i < fullPartsRead; i++) {
    const index = startPart + i;
    const expected = artifact.parts.sha256[index];
    if (expected !== result.partSha256[i]) {
      const from = index * partSize;
      const to = Math.min(from + partSize, artifact.ciphertextBytes) - 1;
      const mismatch =
        `part ${index + 1} of ${partsTotal} (bytes ${from}-${to}) has SHA-256 ${short(result.partSha256[i] ?? '(none)')}, the signed manifest says ${short(expected ?? '(no such part)')}` +
        (startPart === 0 && !stoppedEarly ? `; whole object ${short(result.sha256)} vs signed ${short(artifact.ciphertextSha256)}` : '');
      return { ...base, partsDone: index, complete: true, ok: false, mismatch, verifiedAt: now.toISOString() };
    }
  }
  if (stoppedEarly) {
    return { ...base, partsDone: startPart + fullPartsRead, complete: false, ok: null };
  }
  budget.hashedObjects += 1;
  const total = start + read;
  if (total !== artifact.ciphertextBytes || startPart + result.partSha256.length !== partsTotal) {
    return { ...base, partsDone: startPart, complete: true, ok: false, mismatch: `read ${total} bytes, the signed manifest says ${artifact.ciphertextBytes}`, verifiedAt: now.toISOString() };
  }
  if (startPart === 0 && result.sha256 !== artifact.ciphertextSha256) {
    return { ...base, partsDone: partsTotal, complete: true, ok: false, mismatch: `whole-object SHA-256 ${short(result.sha256)}, the signed manifest says ${short(artifact.ciphertextSha256)}`, verifiedAt: now.toISOString() };
  }
  return { ...base, partsDone: partsTotal, complete: true, ok: true, verifiedAt: now.toISOString() };
}
