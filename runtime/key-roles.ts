import * as openpgp from 'openpgp';
import { fingerprintOf } from './pgp';

/**
 * Which key may play which role. A recipient key decrypts every backup, so its private half never
 * enters AWS; a group's signing key has its private half in SSM, so it must be sign-only and must
 * never be a recipient. Checked by the stack at synth, by the agent before a backup and by
 * `coldseal keys publish` before anything reaches SSM.
 */

/**
 * The recipient key committed in infra/example-keys/escrow.pub.asc so that the example cdk.json
 * synthesizes. Nobody holds its private half: a deployment left on it writes backups that nobody
 * can decrypt, while every check that needs no private key still passes.
 */
export const EXAMPLE_RECIPIENT_FINGERPRINTS: readonly string[] = ['691eff5cdcd8a515c5a1491bc2d6cbcb1b3d60f8'];

export const REAL_KEYS_COMMAND = 'coldseal keys generate --out DIR --group GROUP';

/** Every key id of the key: primary and subkeys, lower-case hex. */
export function keyIdsOf(key: openpgp.Key): string[] {
  return key.getKeyIDs().map((id) => id.toHex().toLowerCase());
}

const ENCRYPT_ONLY_ALGORITHMS: ReadonlySet<number> = new Set([openpgp.enums.publicKey.ecdh, openpgp.enums.publicKey.x25519, openpgp.enums.publicKey.x448, openpgp.enums.publicKey.elgamal, openpgp.enums.publicKey.rsaEncrypt]);
const ENCRYPT_FLAGS = openpgp.enums.keyFlags.encryptCommunication | openpgp.enums.keyFlags.encryptStorage;

function packetCanEncrypt(algorithm: number, signatures: readonly openpgp.SignaturePacket[]): boolean {
  if (ENCRYPT_ONLY_ALGORITHMS.has(algorithm)) return true;
  if (algorithm !== openpgp.enums.publicKey.rsaEncryptSign) return false;
  // An RSA key may do both: only its flags (when any signature states them) say it may not encrypt.
  const flagged = signatures.filter((s) => s.keyFlags && s.keyFlags.length > 0);
  return flagged.length === 0 || flagged.some((s) => (s.keyFlags![0] & ENCRYPT_FLAGS) !== 0);
}

/**
 * Whether anything can be encrypted to this key, or (for a private key) decrypted with it: its
 * primary key or any subkey, whatever its expiry or revocation (an expired subkey still decrypts
 * what was encrypted to it before, and expiry is a date anyone can extend who holds the key).
 */
export function canEncrypt(key: openpgp.Key): boolean {
  const primarySignatures = [...key.users.flatMap((u) => u.selfCertifications)];
  if (packetCanEncrypt(key.keyPacket.algorithm, primarySignatures)) return true;
  return key.subkeys.some((subkey) => packetCanEncrypt(subkey.keyPacket.algorithm, subkey.bindingSignatures));
}

/** Key ids the two sets of keys have in common. */
export function sharedKeyIds(a: readonly openpgp.Key[], b: readonly openpgp.Key[]): string[] {
  const ids = new Set(b.flatMap(keyIdsOf));
  return [...new Set(a.flatMap(keyIdsOf).filter((id) => ids.has(id)))];
}

export function isExampleRecipient(key: openpgp.Key): boolean {
  return EXAMPLE_RECIPIENT_FINGERPRINTS.includes(fingerprintOf(key));
}

export interface SigningKeysOf {
  /** Whose signing keys these are, for the message: "group db". */
  readonly owner: string;
  readonly keys: readonly openpgp.Key[];
}

/**
 * Why these recipients must not be used (empty when they may): a signing key of any group, or the
 * committed example key. Each message names the key by fingerprint and says why.
 */
export function recipientProblems(recipients: readonly openpgp.Key[], signing: readonly SigningKeysOf[]): string[] {
  const problems: string[] = [];
  for (const recipient of recipients) {
    const fingerprint = fingerprintOf(recipient);
    if (isExampleRecipient(recipient)) {
      problems.push(`key ${fingerprint} is the example key committed in infra/example-keys/escrow.pub.asc: nobody holds its private half, so no backup encrypted to it could ever be restored. Make your own with ${REAL_KEYS_COMMAND} and give recipient.pub.asc`);
    }
    for (const { owner, keys } of signing) {
      const shared = sharedKeyIds([recipient], keys);
      if (shared.length > 0) {
        problems.push(`key ${fingerprint} is the signing key of ${owner} (key id ${shared.join(', ')}): its private half is stored in AWS (SSM), so backups encrypted to it could be read with a key kept in AWS. Give the recipient's public key (recipient.pub.asc), never a signing key`);
      }
    }
  }
  return problems;
}
