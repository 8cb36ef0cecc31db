import * as openpgp from 'openpgp';

/**
 * OpenPGP choices shared by everything that encrypts, signs or checks.
 * v4 keys and SEIPDv1 (AES-256 + MDC), no OpenPGP-level compression (we compress before), because
 * GnuPG 2.2 rejects v6 keys and AEAD packets: a user must be able to decrypt with plain gpg.
 */
export const PGP_CONFIG: Partial<openpgp.Config> = {
  v6Keys: false,
  aeadProtect: false,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
};

export type PublicKey = openpgp.PublicKey;
export type PrivateKey = openpgp.PrivateKey;

export class KeyError extends Error {
  override readonly name = 'KeyError';
}

export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toLowerCase();
}

/**
 * Reads one or more armored public keys. A private key here is refused: whoever configured it was
 * about to spread a secret to every host.
 */
export async function readPublicKeys(armored: string, what: string): Promise<openpgp.PublicKey[]> {
  if (/-----BEGIN PGP PRIVATE KEY BLOCK-----/.test(armored)) {
    throw new KeyError(`${what} holds a PRIVATE key; give only the public half (gpg --export --armor, or the .pub.asc file coldseal keys generate wrote)`);
  }
  // openpgp.readKeys reads only the first armor block: files and parameters often hold several
  // blocks one after the other (an escrow key and a team key), and each must count.
  const blocks = armored.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g) ?? [armored];
  const keys: openpgp.Key[] = [];
  try {
    for (const block of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys: block })));
  } catch (error) {
    throw new KeyError(`${what} is not an armored OpenPGP public key (${(error as Error).message})`);
  }
  if (keys.length === 0) throw new KeyError(`${what} holds no key`);
  return keys.map((key) => (key.isPrivate() ? key.toPublic() : (key as openpgp.PublicKey)));
}

export async function readPrivateKey(armored: string, what: string, passphrase?: string): Promise<openpgp.PrivateKey> {
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch (error) {
    throw new KeyError(`${what} is not an armored OpenPGP private key (${(error as Error).message})`);
  }
  if (!key.isDecrypted()) {
    if (passphrase === undefined) throw new KeyError(`${what} is protected by a passphrase; give it (COLDSEAL_KEY_PASSPHRASE or --passphrase-file)`);
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch {
      throw new KeyError(`${what}: the passphrase does not unlock this key`);
    }
  }
  return key;
}

/** Key ids of the subkeys a message to these keys is addressed to (what PKESK packets name). */
export async function encryptionKeyIds(keys: readonly openpgp.PublicKey[]): Promise<string[]> {
  const ids: string[] = [];
  for (const key of keys) {
    try {
      const subkey = await key.getEncryptionKey();
      ids.push(subkey.getKeyID().toHex().toLowerCase());
    } catch (error) {
      throw new KeyError(`recipient key ${fingerprintOf(key)} cannot encrypt (${(error as Error).message}): is it expired, revoked, or a signing-only key?`);
    }
  }
  return ids;
}

export interface GeneratedKey {
  readonly privateKey: string;
  readonly publicKey: string;
  readonly fingerprint: string;
}

export interface KeyPairOptions {
  /**
   * A signing key (a host group's): the ed25519 primary only, no encryption subkey, so that nothing
   * can ever be encrypted to it: its private half lives in AWS (SSM), unlike a recipient's.
   * @default false (a recipient pair: ed25519 primary + cv25519 encryption subkey)
   */
  readonly signOnly?: boolean;
}

/**
 * Digests GnuPG 2.2 knows. openpgp.js writes SHA3-512/SHA3-256 into every key's preferences, and
 * gpg 2.2 then warns on import ("preferences for unavailable algorithms"): the documented gpg-only
 * restore must run without warnings, so the self-certification is re-issued with these.
 */
const GPG22_HASH_PREFERENCES = [openpgp.enums.hash.sha512, openpgp.enums.hash.sha256, openpgp.enums.hash.sha384, openpgp.enums.hash.sha224];

async function withGpg22Preferences(key: openpgp.PrivateKey): Promise<void> {
  for (const user of key.users) {
    if (!user.userID) continue;
    user.selfCertifications = await Promise.all(
      user.selfCertifications.map(async (old) => {
        const signature = new openpgp.SignaturePacket();
        for (const field of ['signatureType', 'publicKeyAlgorithm', 'hashAlgorithm', 'keyFlags', 'preferredSymmetricAlgorithms', 'preferredCompressionAlgorithms', 'features', 'isPrimaryUserID', 'keyExpirationTime', 'keyNeverExpires'] as const) {
          (signature as unknown as Record<string, unknown>)[field] = old[field];
        }
        signature.preferredHashAlgorithms = GPG22_HASH_PREFERENCES;
        // SignaturePacket.sign takes the signed data as an object (declared as bytes in openpgp's types).
        const sign = signature.sign.bind(signature) as unknown as (key: openpgp.SecretKeyPacket, data: object, date: Date, detached: boolean, config: openpgp.Config) => Promise<void>;
        await sign(key.keyPacket as openpgp.SecretKeyPacket, { userID: user.userID, key: key.keyPacket }, old.created ?? new Date(), false, { ...openpgp.config, ...PGP_CONFIG });
        return signature;
      }),
    );
  }
}

/**
 * v4 ed25519 primary (+ cv25519 encryption subkey unless sign-only): what GnuPG 2.2 and openpgp.js
 * both accept, with preferences GnuPG 2.2 knows.
 */
export async function generateKeyPair(userId: { name: string; email?: string }, passphrase?: string, options: KeyPairOptions = {}): Promise<GeneratedKey> {
  const generated = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [userId],
    ...(options.signOnly ? { subkeys: [] } : {}),
    format: 'object',
    config: PGP_CONFIG,
  });
  let key = generated.privateKey;
  await withGpg22Preferences(key);
  const publicKey = key.toPublic().armor();
  if (passphrase !== undefined) key = await openpgp.encryptKey({ privateKey: key, passphrase, config: PGP_CONFIG });
  return { privateKey: key.armor(), publicKey, fingerprint: fingerprintOf(key) };
}

/** Detached, armored signature over exact bytes (binary mode, so `gpg --verify sig file` works). */
export async function signDetached(data: Uint8Array, signingKey: openpgp.PrivateKey): Promise<string> {
  const message = await openpgp.createMessage({ binary: data });
  return openpgp.sign({ message, signingKeys: signingKey, detached: true, format: 'armored', config: PGP_CONFIG });
}

export type SignatureCheck =
  | { ok: true; signerFingerprint: string }
  | { ok: false; reason: 'malformed-signature' | 'unknown-signer' | 'bad-signature'; detail: string };

export async function verifyDetached(
  data: Uint8Array,
  armoredSignature: string,
  trustedKeys: readonly openpgp.PublicKey[],
): Promise<SignatureCheck> {
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature });
  } catch (error) {
    return { ok: false, reason: 'malformed-signature', detail: (error as Error).message };
  }
  const signerIds = signature.getSigningKeyIDs().map((id) => id.toHex().toLowerCase());
  const signer = trustedKeys.find((key) => key.getKeyIDs().some((id) => signerIds.includes(id.toHex().toLowerCase())));
  if (!signer) {
    return { ok: false, reason: 'unknown-signer', detail: `signed by key id ${signerIds.join(', ') || '(none)'}, which is not a trusted signing key of this group` };
  }
  const message = await openpgp.createMessage({ binary: data });
  const result = await openpgp.verify({ message, signature, verificationKeys: [signer], config: PGP_CONFIG });
  try {
    await result.signatures[0].verified;
  } catch (error) {
    return { ok: false, reason: 'bad-signature', detail: (error as Error).message };
  }
  return { ok: true, signerFingerprint: fingerprintOf(signer) };
}

/**
 * The PKESK packets at the head of an encrypted message name its recipients' key ids. Reading them
 * needs only the first few hundred bytes, so archived (Glacier) objects' addressees can be checked
 * from a small ranged read, or from the head of a stream that is then read on.
 */
export async function messageRecipientKeyIds(head: Uint8Array): Promise<string[]> {
  const ids: string[] = [];
  let offset = 0;
  while (offset < head.length) {
    const packet = readPacketHeader(head, offset);
    if (!packet) break;
    if (packet.tag !== PKESK_TAG) break;
    const body = head.subarray(packet.bodyStart, packet.bodyStart + packet.bodyLength);
    if (body.length < 10) throw new Error('truncated public-key encrypted session key packet');
    if (body[0] !== 3) throw new Error(`unsupported PKESK version ${body[0]}`);
    ids.push(Buffer.from(body.subarray(1, 9)).toString('hex'));
    offset = packet.bodyStart + packet.bodyLength;
  }
  if (ids.length === 0) throw new Error('not an OpenPGP public-key encrypted message (no PKESK packet at its head)');
  return ids;
}

const PKESK_TAG = 1;

function readPacketHeader(buf: Uint8Array, offset: number): { tag: number; bodyStart: number; bodyLength: number } | null {
  const first = buf[offset];
  if (first === undefined || (first & 0x80) === 0) return null;
  if (first & 0x40) {
    // New format (RFC 4880 §4.2.2); partial lengths never occur for PKESK.
    const tag = first & 0x3f;
    const l0 = buf[offset + 1];
    if (l0 === undefined) return null;
    if (l0 < 192) return { tag, bodyStart: offset + 2, bodyLength: l0 };
    if (l0 < 224) return { tag, bodyStart: offset + 3, bodyLength: ((l0 - 192) << 8) + buf[offset + 2] + 192 };
    if (l0 === 255) {
      const len = (buf[offset + 2] << 24) | (buf[offset + 3] << 16) | (buf[offset + 4] << 8) | buf[offset + 5];
      return { tag, bodyStart: offset + 6, bodyLength: len >>> 0 };
    }
    return { tag, bodyStart: offset + 2, bodyLength: -1 };
  }
  // Old format (GnuPG writes these).
  const tag = (first >> 2) & 0x0f;
  const lengthType = first & 0x03;
  if (lengthType === 0) return { tag, bodyStart: offset + 2, bodyLength: buf[offset + 1] };
  if (lengthType === 1) return { tag, bodyStart: offset + 3, bodyLength: (buf[offset + 1] << 8) | buf[offset + 2] };
  if (lengthType === 2) {
    const len = (buf[offset + 1] << 24) | (buf[offset + 2] << 16) | (buf[offset + 3] << 8) | buf[offset + 4];
    return { tag, bodyStart: offset + 5, bodyLength: len >>> 0 };
  }
  return null;
}
