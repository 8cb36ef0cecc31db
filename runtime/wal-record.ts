import * as openpgp from 'openpgp';
import { z } from 'zod';
import { fingerprintOf, signDetached, verifyDetached, type PrivateKey, type PublicKey } from './pgp';
import { WAL_RECORD_METADATA, walRecordMismatch, walRecordSchema, type WalRecord } from '../format/wal-record';

/**
 * Signs and opens the record that rides in a WAL object's user metadata (format/wal-record.ts).
 * The signed bytes are the payload exactly as stored (compact JSON, base64 in the header), so
 * nothing is canonicalized; a person checks one by hand with:
 *   aws s3api head-object … | jq -r '.Metadata["coldseal-wal-record"]' | base64 -d > p
 *   … '.Metadata["coldseal-wal-signature"]' | base64 -d > p.sig; gpg --verify p.sig p
 */

/** User metadata is limited to 2 KB (keys and values, UTF-8): a record that does not fit is a bug, not a runtime surprise. */
export const USER_METADATA_LIMIT_BYTES = 2048;

export type WalRecordProblem = 'missing' | 'malformed' | 'unknown-signer' | 'bad-signature' | 'invalid-payload' | 'wrong-key';

export class WalRecordError extends Error {
  override readonly name = 'WalRecordError';
  constructor(
    readonly problem: WalRecordProblem,
    message: string,
  ) {
    super(message);
  }
}

export async function signWalRecord(record: WalRecord, key: PrivateKey): Promise<Record<string, string>> {
  return signLogRecord(walRecordSchema, record, key, 'WAL record');
}

/** Signs any record that rides in a log object's metadata (a WAL record, a binary log record: runtime/binlog-record.ts). */
export async function signLogRecord<T extends { signingKeyFingerprint: string }>(schema: z.ZodType<T>, record: T, key: PrivateKey, what: string): Promise<Record<string, string>> {
  const checked = schema.parse(record);
  if (checked.signingKeyFingerprint !== fingerprintOf(key)) throw new Error('record.signingKeyFingerprint must be the fingerprint of the key that signs it');
  const payload = Buffer.from(JSON.stringify(checked), 'utf8');
  const armored = await signDetached(payload, key);
  const binary = (await openpgp.readSignature({ armoredSignature: armored })).write();
  const metadata = {
    [WAL_RECORD_METADATA.payload]: payload.toString('base64'),
    [WAL_RECORD_METADATA.signature]: Buffer.from(binary).toString('base64'),
  };
  const size = Object.entries(metadata).reduce((sum, [k, v]) => sum + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (size > USER_METADATA_LIMIT_BYTES) throw new Error(`the ${what} takes ${size} bytes of user metadata, over S3's ${USER_METADATA_LIMIT_BYTES}`);
  return metadata;
}

/**
 * Opens the record of the object at `key` from its user metadata (HeadObject/GetObject's
 * Metadata, whose keys the SDK gives in lower case): checks the signature against the group's
 * trusted signing keys, the schema, and that the record names this very key.
 */
export async function openWalRecord(
  metadata: Record<string, string> | undefined,
  trusted: readonly PublicKey[],
  key: string,
): Promise<{ record: WalRecord; signerFingerprint: string }> {
  return openLogRecord(walRecordSchema, walRecordMismatch, metadata, trusted, key, { what: 'WAL record', writer: 'coldseal pitr archive-push' });
}

/** Opens any record that rides in a log object's metadata: signature, schema, and that it names this very key. */
export async function openLogRecord<T>(
  schema: z.ZodType<T>,
  mismatchOf: (record: T, key: string) => string | null,
  metadata: Record<string, string> | undefined,
  trusted: readonly PublicKey[],
  key: string,
  names: { readonly what: string; readonly writer: string },
): Promise<{ record: T; signerFingerprint: string }> {
  const payloadText = metadata?.[WAL_RECORD_METADATA.payload];
  const signatureText = metadata?.[WAL_RECORD_METADATA.signature];
  if (!payloadText || !signatureText) {
    throw new WalRecordError('missing', `${key} has no signed ${names.what} in its metadata (not written by ${names.writer}, or its metadata was replaced)`);
  }
  const payload = Buffer.from(payloadText, 'base64');
  let armoredSignature: string;
  try {
    const signature = await openpgp.readSignature({ binarySignature: Buffer.from(signatureText, 'base64') });
    armoredSignature = signature.armor();
  } catch (error) {
    throw new WalRecordError('malformed', `${key}: the record's signature is not an OpenPGP signature (${(error as Error).message})`);
  }
  const check = await verifyDetached(payload, armoredSignature, trusted);
  if (!check.ok) {
    const what = check.reason === 'bad-signature' ? 'the signature does not match the record (edited after signing?)' : check.detail;
    throw new WalRecordError(check.reason === 'malformed-signature' ? 'malformed' : check.reason, `${key}: ${names.what} signature check failed: ${what}`);
  }
  let parsed: z.ZodSafeParseResult<T>;
  try {
    parsed = schema.safeParse(JSON.parse(payload.toString('utf8')));
  } catch (error) {
    throw new WalRecordError('invalid-payload', `${key}: the signed ${names.what} is not JSON (${(error as Error).message})`);
  }
  if (!parsed.success) throw new WalRecordError('invalid-payload', `${key}: the ${names.what} is signed but does not match the schema: ${z.prettifyError(parsed.error)}`);
  const mismatch = mismatchOf(parsed.data, key);
  if (mismatch) throw new WalRecordError('wrong-key', `${key}: ${mismatch}`);
  return { record: parsed.data, signerFingerprint: check.signerFingerprint };
}
