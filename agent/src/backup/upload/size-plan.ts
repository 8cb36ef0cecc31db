/**
 * How an artifact is cut for S3: the part size, how many parts go into one segment object, and how
 * many part buffers the writer holds. S3 allows at most 10,000 parts of at most 5 GiB in one
 * multipart upload and at most 5 TiB in one object
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html), so a dump longer than one
 * upload can hold continues in the next segment: memory depends on the part size and the number of
 * parts in flight, never on the dump's size, and a wrong size hint costs segments, not the backup.
 */
export const MIB = 1024 * 1024;
export const S3_MAX_PARTS = 10_000;
export const S3_MIN_PART_SIZE = 5 * MIB;
export const S3_MAX_PART_SIZE = 5 * 1024 * MIB;
export const S3_MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MIB;

/** Parts of this size unless the size hint says a dump would need more than TARGET_PARTS of them. */
export const DEFAULT_PART_SIZE = 8 * MIB;
/**
 * Part buffers of the automatic plan stay under this many bytes in total. Bigger parts only save
 * requests (and part hashes in the manifest), so they grow with the size hint up to this bound.
 */
export const MAX_AUTO_BUFFERED_BYTES = 128 * MIB;
/** The automatic plan grows parts until the hinted dump fits in this many (a manifest of ≤ ~7 MB of part hashes). */
const TARGET_PARTS = 100_000;

export interface SizePlan {
  readonly partSize: number;
  /** Parts per segment object (the last segment may hold fewer). */
  readonly partsPerSegment: number;
  /** Parts uploading at once. */
  readonly inFlight: number;
  /** Part buffers the writer allocates once and reuses: the ones in flight plus the one being filled. */
  readonly buffers: number;
  /** Bytes held by the buffer pool: the writer's whole memory for ciphertext. */
  readonly bufferedBytes: number;
}

export interface SizePlanInput {
  /** Size hint of the source on disk (bytes), when the source can tell. */
  readonly estimatedBytes?: number;
  /** upload.partSizeMiB: a fixed part size, which wins over the hint. */
  readonly partSizeMiB?: number;
  /** upload.queueSize: parts in flight. */
  readonly queueSize: number;
  /** upload.segmentParts: fewer parts per segment than S3 allows (forces segments, for tests and the bench). */
  readonly segmentParts?: number;
}

export function planUpload(input: SizePlanInput): SizePlan {
  const inFlight = input.queueSize;
  const buffers = inFlight + 1;
  let partSize: number;
  if (input.partSizeMiB) {
    partSize = input.partSizeMiB * MIB;
  } else {
    const ceiling = Math.max(S3_MIN_PART_SIZE, Math.floor(MAX_AUTO_BUFFERED_BYTES / buffers / MIB) * MIB);
    // SQL text (hex blobs) can be twice the on-disk size before compression.
    const wanted = input.estimatedBytes ? Math.ceil((input.estimatedBytes * 2) / TARGET_PARTS / MIB) * MIB : 0;
    partSize = Math.min(Math.max(DEFAULT_PART_SIZE, wanted), ceiling);
  }
  if (partSize < S3_MIN_PART_SIZE || partSize > S3_MAX_PART_SIZE) {
    throw new Error(`part size ${partSize / MIB} MiB is outside S3's 5 MiB–5 GiB`);
  }
  const byObjectSize = Math.floor(S3_MAX_OBJECT_SIZE / partSize);
  const partsPerSegment = Math.min(S3_MAX_PARTS, byObjectSize, input.segmentParts ?? S3_MAX_PARTS);
  return { partSize, partsPerSegment, inFlight, buffers, bufferedBytes: buffers * partSize };
}
