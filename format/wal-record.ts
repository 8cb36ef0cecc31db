import { z } from 'zod';
import { NAME_PATTERN, walObjectKey } from './layout';
import { parseWalFileName } from './wal';

/**
 * The signed record of one archived WAL file (segment, .history, .backup or .partial). It travels
 * in the object's own user metadata, so an object and its record are written by one conditional
 * PutObject (If-None-Match: *) and can never be separated: there is no orphan ciphertext and no
 * record without its object. HeadObject reads it without the object's bytes (also in an archive
 * class). User metadata is at most 2 KB per object
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html, "User-defined object
 * metadata"), so the payload is compact JSON and the signature binary, both base64 (header values
 * must be US-ASCII).
 *
 * OpenPGP ciphertext differs on every run, so "the same WAL file pushed again" is judged on
 * `plaintextSha256`; the object's integrity on `ciphertextSha256`. The record names the key it sits
 * under (group, host, source, walFile): an object copied or swapped to another name fails.
 */
export const WAL_RECORD_FORMAT_VERSION = 1;

/** User-metadata keys (without the x-amz-meta- prefix; the SDK's Metadata map uses them as is, lower case). */
export const WAL_RECORD_METADATA = {
  /** base64 of the UTF-8 JSON payload, exactly the bytes signed. */
  payload: 'coldseal-wal-record',
  /** base64 of the binary OpenPGP detached signature over those bytes. */
  signature: 'coldseal-wal-signature',
} as const;

const name = z.string().regex(NAME_PATTERN);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const fingerprint = z.string().regex(/^[0-9a-f]{40}$|^[0-9a-f]{64}$/);
const bytes = z.number().int().nonnegative();

export const walRecordSchema = z
  .object({
    formatVersion: z.literal(WAL_RECORD_FORMAT_VERSION),
    group: name,
    host: name,
    source: name,
    /** The WAL file name as PostgreSQL gave it (%f). */
    walFile: z.string().refine((f) => {
      try {
        parseWalFileName(f);
        return true;
      } catch {
        return false;
      }
    }, 'must be a WAL file name (segment, .history, .backup or .partial)'),
    /** pg_control's database system identifier (decimal): WAL of another cluster never mixes in. */
    systemIdentifier: z.string().regex(/^\d{1,20}$/),
    walSegmentSize: z.number().int().positive(),
    plaintextBytes: bytes,
    plaintextSha256: sha256Hex,
    ciphertextBytes: bytes,
    ciphertextSha256: sha256Hex,
    compression: z.enum(['zstd', 'gzip', 'none']),
    /** Key ids as they appear in the PKESK packets, to check the message's addressees without a key. */
    recipientKeyIds: z.array(z.string().regex(/^[0-9a-f]{16}$/)).min(1),
    signingKeyFingerprint: fingerprint,
    archivedAt: z.iso.datetime(),
    agentVersion: z.string().min(1).max(40),
  })
  .strict();
export type WalRecord = z.infer<typeof walRecordSchema>;

/** Why a (signature-checked) record does not belong under `key`; null when it does. */
export function walRecordMismatch(record: WalRecord, key: string): string | null {
  const expected = walObjectKey(record.group, record.host, record.source, record.walFile);
  return expected === key ? null : `the record is for ${expected}, not ${key} (object copied or swapped)`;
}
