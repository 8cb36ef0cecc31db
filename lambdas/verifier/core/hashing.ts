import { VERIFIED_PREFIX } from '../../../format/layout';
import type { Artifact } from '../../../format/manifest';
import { INTEGRITY_FAILURES, PartReader, PartReadError, type PartBufferPool } from '../../../runtime/part-reader';
import type { BucketStore } from '../../shared/ports';

/**
 * Read-verification of a ciphertext against its signed manifest, through the same PartReader as
 * the agent's restore and verify (parallel ranged GETs, each part checked against the manifest).
 *
 * A read from part 1 to the end checks the whole-object SHA-256 as well. When an invocation's
 * budget (time left, or a byte cap) runs out mid-object, the parts completed so far are recorded;
 * the next invocation resumes at the next part boundary. Matching every signed part hash and the signed size proves the same bytes as the whole
 * hash, so an object of any size is verified across as many invocations as it takes.
 */
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
  /** Part buffers shared with the sweep's other reads (one set for every artifact, not one each). */
  buffers?: PartBufferPool;
}): Promise<VerificationRecord> {
  const { store, artifact, budget, now } = options;
  const partSize = artifact.parts.size;
  const partsTotal = artifact.parts.sha256.length;
  const resume = options.previous && !options.previous.complete && options.previous.etag === options.etag && options.previous.partSize === partSize ? options.previous : undefined;
  const startPart = resume?.partsDone ?? 0;
  const base = { key: artifact.key, etag: options.etag, versionId: options.versionId, bytes: artifact.ciphertextBytes, partSize, partsTotal, firstReadAt: resume?.firstReadAt ?? now.toISOString() };
  const failed = (partsDone: number, mismatch: string): VerificationRecord => ({ ...base, partsDone, complete: true, ok: false, mismatch, verifiedAt: now.toISOString() });
  // A byte cap ends the read on a part boundary (at least one part, so every run makes progress).
  const capParts = Number.isFinite(budget.bytesLeft) ? Math.max(1, Math.floor(budget.bytesLeft / partSize)) : undefined;
  // Pinned to the version the listing saw: the record says which bytes it vouches for.
  const reader = new PartReader({ artifact, fetch: (request) => store.fetchRange(request), fromPart: startPart, maxParts: capParts, pins: new Map([[artifact.key, { etag: options.etag, versionId: options.versionId }]]), buffers: options.buffers });
  let partsDone = startPart;
  try {
    for await (const { part } of reader) {
      partsDone = part.index;
      budget.consume(part.length);
      if (budget.exhausted && partsDone < partsTotal) break;
    }
  } catch (error) {
    if (!(error instanceof PartReadError) || !INTEGRITY_FAILURES.has(error.failure)) throw error;
    const part = error.part;
    if (error.failure === 'part-checksum' && part) {
      return failed(part.index - 1, `part ${part.index} of ${partsTotal} (bytes ${part.ciphertextOffset}-${part.ciphertextOffset + part.length - 1}) has SHA-256 ${short(error.actual ?? '(none)')}, the signed manifest says ${short(part.sha256)}`);
    }
    if (error.failure === 'checksum') return failed(partsTotal, `whole-object SHA-256 ${short(error.actual ?? '(none)')}, the signed manifest says ${short(artifact.ciphertextSha256)}`);
    return failed(partsDone, error.message);
  }
  if (partsDone < partsTotal) return { ...base, partsDone, complete: false, ok: null };
  budget.hashedObjects += 1;
  return { ...base, partsDone: partsTotal, complete: true, ok: true, verifiedAt: now.toISOString() };
}
