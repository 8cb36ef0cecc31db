import { z } from 'zod';
import { signDetached, verifyDetached, type PrivateKey, type PublicKey, fingerprintOf } from './pgp';
import { drillReceiptSchema, manifestSchema, type DrillReceipt, type Manifest } from '../format/manifest';

/**
 * A signed document is stored as one JSON object: the payload as the exact text that was signed,
 * and an armored detached signature over its UTF-8 bytes. Keeping the payload as text (not a
 * re-serialized object) means nothing has to be canonicalized to check it, and a person can check
 * it with gpg alone:  jq -rj .payload m.json > p; jq -r .signature m.json > p.asc; gpg --verify p.asc p
 */
const ENVELOPE_FORMAT = 'coldseal-signed/1';

const envelopeSchema = z.object({
  format: z.literal(ENVELOPE_FORMAT),
  kind: z.enum(['manifest', 'drill-receipt']),
  payload: z.string(),
  signature: z.string(),
});

type Kind = z.infer<typeof envelopeSchema>['kind'];

export type DocumentProblem =
  | 'malformed-envelope'
  | 'wrong-kind'
  | 'malformed-signature'
  | 'unknown-signer'
  | 'bad-signature'
  | 'invalid-payload';

export class SignedDocumentError extends Error {
  override readonly name = 'SignedDocumentError';
  constructor(readonly problem: DocumentProblem, message: string) {
    super(message);
  }
}

async function sign(kind: Kind, payloadObject: unknown, key: PrivateKey): Promise<string> {
  const payload = JSON.stringify(payloadObject, null, 2);
  const signature = await signDetached(Buffer.from(payload, 'utf8'), key);
  return `${JSON.stringify({ format: ENVELOPE_FORMAT, kind, payload, signature }, null, 2)}\n`;
}

async function open<T>(kind: Kind, text: string, trusted: readonly PublicKey[], schema: z.ZodType<T>): Promise<{ document: T; signerFingerprint: string }> {
  let envelope: z.infer<typeof envelopeSchema>;
  try {
    envelope = envelopeSchema.parse(JSON.parse(text));
  } catch (error) {
    throw new SignedDocumentError('malformed-envelope', `not a coldseal signed document (${(error as Error).message.split('\n')[0]})`);
  }
  if (envelope.kind !== kind) throw new SignedDocumentError('wrong-kind', `expected a ${kind}, found a ${envelope.kind}`);
  const check = await verifyDetached(Buffer.from(envelope.payload, 'utf8'), envelope.signature, trusted);
  if (!check.ok) {
    const what = check.reason === 'bad-signature' ? 'signature does not match the content (edited after signing?)' : check.detail;
    throw new SignedDocumentError(check.reason, `${kind} signature check failed: ${what}`);
  }
  const parsed = schema.safeParse(JSON.parse(envelope.payload));
  if (!parsed.success) {
    throw new SignedDocumentError('invalid-payload', `${kind} is signed but does not match the schema: ${z.prettifyError(parsed.error)}`);
  }
  return { document: parsed.data, signerFingerprint: check.signerFingerprint };
}

/** Parses without checking the signature: for listings only, never for trust decisions. */
function peek<T>(kind: Kind, text: string, schema: z.ZodType<T>): T {
  const envelope = envelopeSchema.parse(JSON.parse(text));
  if (envelope.kind !== kind) throw new SignedDocumentError('wrong-kind', `expected a ${kind}, found a ${envelope.kind}`);
  return schema.parse(JSON.parse(envelope.payload));
}

export async function signManifest(manifest: Manifest, key: PrivateKey): Promise<string> {
  const checked = manifestSchema.parse(manifest);
  if (checked.signingKeyFingerprint !== fingerprintOf(key)) {
    throw new Error('manifest.signingKeyFingerprint must be the fingerprint of the key that signs it');
  }
  return sign('manifest', checked, key);
}

export function openManifest(text: string, trusted: readonly PublicKey[]): Promise<{ document: Manifest; signerFingerprint: string }> {
  return open('manifest', text, trusted, manifestSchema);
}

export function peekManifest(text: string): Manifest {
  return peek('manifest', text, manifestSchema);
}

export async function signDrillReceipt(receipt: DrillReceipt, key: PrivateKey): Promise<string> {
  return sign('drill-receipt', drillReceiptSchema.parse(receipt), key);
}

export function openDrillReceipt(text: string, trusted: readonly PublicKey[]): Promise<{ document: DrillReceipt; signerFingerprint: string }> {
  return open('drill-receipt', text, trusted, drillReceiptSchema);
}
