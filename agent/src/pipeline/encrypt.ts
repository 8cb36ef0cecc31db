import * as openpgp from 'openpgp';
import type { Readable } from 'node:stream';
import { PGP_CONFIG, type PublicKey } from '../../../format/pgp';
import { nodeToWeb, webToNode } from './streams';

/**
 * Streams plaintext into one OpenPGP message addressed to every recipient (SEIPDv1, AES-256,
 * binary, no OpenPGP compression: see PGP_CONFIG). Memory stays at a few chunks whatever the size.
 */
export async function encryptStream(plain: Readable, recipients: readonly PublicKey[]): Promise<Readable> {
  const message = await openpgp.createMessage({ binary: nodeToWeb(plain), format: 'binary' });
  const encrypted = await openpgp.encrypt({ message, encryptionKeys: [...recipients], format: 'binary', config: PGP_CONFIG });
  return webToNode(encrypted as unknown as ReadableStream<Uint8Array>);
}
