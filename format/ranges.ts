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
}

/**
 * The parts of an artifact in ciphertext order. Throws when the manifest's part list cannot
 * describe its stated ciphertext size (too few or too many parts for the size), so a reader
 * refuses such a manifest before reading a byte.
 */
export function ciphertextParts(artifact: Artifact): CiphertextPart[] {
  const { size, sha256 } = artifact.parts;
  const total = artifact.ciphertextBytes;
  const expectedCount = Math.max(1, Math.ceil(total / size));
  if (sha256.length !== expectedCount) {
    throw new Error(`artifact "${artifact.name}": the manifest lists ${sha256.length} part checksums, but ${total} bytes in parts of ${size} need ${expectedCount}`);
  }
  return sha256.map((hash, i) => {
    const offset = i * size;
    return { key: artifact.key, index: i + 1, offset, length: Math.min(size, total - offset), ciphertextOffset: offset, sha256: hash };
  });
}
