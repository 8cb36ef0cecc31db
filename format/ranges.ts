import type { Artifact } from './manifest';

/**
 * One upload part of an artifact's ciphertext, located in S3: which object holds it, where, and
 * the SHA-256 the signed manifest promises for it. Readers (restore, verify, drill, the verifier
 * Lambda) walk an artifact as this flat, ordered list, so they need not know whether the
 * ciphertext is one object or several consecutive segments: the concatenation of the parts, in
 * order, is the OpenPGP message.
 */
export interface CiphertextPart {
  /** S3 key of the object (segment) holding this part. */
  readonly key: string;
  /** 1-based part number within the whole artifact (across segments). */
  readonly index: number;
  /** Byte offset of the part within its object. */
  readonly offset: number;
  /** Byte length of the part. */
  readonly length: number;
  /** Byte offset of the part within the whole ciphertext (all segments). */
  readonly ciphertextOffset: number;
  /** Lower-case hex SHA-256 of the part's bytes, from the signed manifest. */
  readonly sha256: string;
  /** 1-based position of its object among the artifact's objects, and how many there are (1 unsegmented). */
  readonly segment: number;
  readonly segments: number;
}

/**
 * An object of an artifact as messages name it: its URL, and for a segmented artifact which
 * segment it is ("segment 2 of 3, s3://b/….seg00002.pgp"), so a failure names the object to look at.
 */
export function objectLabel(url: string, segment: number, segments: number): string {
  return segments > 1 ? `segment ${segment} of ${segments}, ${url}` : url;
}

/** One S3 object holding (part of) an artifact's ciphertext: the artifact itself, or one of its segments. */
export interface ArtifactObject {
  readonly key: string;
  /** 1-based position among the artifact's objects. */
  readonly segment: number;
  readonly bytes: number;
  /** SHA-256 of the object's bytes (the whole ciphertext's for an unsegmented artifact). */
  readonly sha256: string;
  /** 0-based index of the object's first part within the artifact's part list. */
  readonly firstPart: number;
  readonly parts: number;
  /** Byte offset of the object within the whole ciphertext. */
  readonly ciphertextOffset: number;
}

/**
 * The objects of an artifact in order: its segments (manifest format 2), or the one object at its
 * key (format 1). Throws when the segment list cannot describe the artifact's stated size and
 * part list (a segment other than the last that is not full, counts or sizes that don't add up).
 */
export function artifactObjects(artifact: Artifact): ArtifactObject[] {
  const { size, sha256 } = artifact.parts;
  const total = artifact.ciphertextBytes;
  const segments = artifact.segments ?? [{ key: artifact.key, bytes: total, sha256: artifact.ciphertextSha256, parts: sha256.length }];
  const objects: ArtifactObject[] = [];
  let firstPart = 0;
  let offset = 0;
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    const needed = Math.max(1, Math.ceil(segment.bytes / size));
    if (segment.parts !== needed || (!last && segment.bytes !== segment.parts * size)) {
      throw new Error(`artifact "${artifact.name}": segment ${i + 1} (${segment.key}) lists ${segment.parts} parts for ${segment.bytes} bytes in parts of ${size}${last ? '' : ', and every segment but the last must be full'}`);
    }
    objects.push({ key: segment.key, segment: i + 1, bytes: segment.bytes, sha256: segment.sha256, firstPart, parts: segment.parts, ciphertextOffset: offset });
    firstPart += segment.parts;
    offset += segment.bytes;
  });
  if (offset !== total) throw new Error(`artifact "${artifact.name}": its segments hold ${offset} bytes, the manifest states ${total}`);
  if (artifact.segments && firstPart !== sha256.length) {
    throw new Error(`artifact "${artifact.name}": its segments hold ${firstPart} parts, the manifest lists ${sha256.length} part checksums`);
  }
  return objects;
}

/**
 * The parts of an artifact in ciphertext order, across its segments. Throws when the manifest's
 * part list cannot describe its stated ciphertext size (too few or too many parts for the size,
 * segments that don't add up), so a reader refuses such a manifest before reading a byte.
 */
export function ciphertextParts(artifact: Artifact): CiphertextPart[] {
  const { size, sha256 } = artifact.parts;
  const total = artifact.ciphertextBytes;
  if (!artifact.segments) {
    const expectedCount = Math.max(1, Math.ceil(total / size));
    if (sha256.length !== expectedCount) {
      throw new Error(`artifact "${artifact.name}": the manifest lists ${sha256.length} part checksums, but ${total} bytes in parts of ${size} need ${expectedCount}`);
    }
  }
  const objects = artifactObjects(artifact);
  return objects.flatMap((object) =>
    Array.from({ length: object.parts }, (_, j) => {
      const offset = j * size;
      const index = object.firstPart + j;
      return { key: object.key, index: index + 1, offset, length: Math.min(size, object.bytes - offset), ciphertextOffset: object.ciphertextOffset + offset, sha256: sha256[index], segment: object.segment, segments: objects.length };
    }),
  );
}
