import { assertName } from './layout';

/**
 * SSM Parameter Store names, shared by the stack (which writes the public ones), the agent (which
 * reads them at run time) and the Lambdas. The signing key's private half is the only SecureString,
 * and coldseal keys generate --publish writes it, never the stack, so it never enters a template.
 */
export const DEFAULT_PARAMETER_PREFIX = '/coldseal';

export interface GroupParameters {
  /** String: the group's agent configuration (JSON, no secrets). */
  readonly config: string;
  /** String: armored public keys that every dump is encrypted to. */
  readonly recipients: string;
  /** SecureString: the group's armored signing private key. */
  readonly signingKey: string;
  /** String: armored signing public key(s); several during a rotation. */
  readonly signingPublicKeys: string;
}

export function groupParameters(group: string, prefix = DEFAULT_PARAMETER_PREFIX): GroupParameters {
  assertName('group', group);
  const base = `${normalizePrefix(prefix)}/groups/${group}`;
  return {
    config: `${base}/config`,
    recipients: `${base}/recipients`,
    signingKey: `${base}/signing-key`,
    signingPublicKeys: `${base}/signing-public-keys`,
  };
}

export function normalizePrefix(prefix: string): string {
  if (!/^\/[A-Za-z0-9_.\-/]*$/.test(prefix)) throw new Error(`parameter prefix "${prefix}" must start with "/" and hold only letters, digits, "_", ".", "-" and "/"`);
  return prefix.replace(/\/+$/, '');
}
