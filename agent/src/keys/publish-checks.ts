import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { canEncrypt, keyIdsOf, sharedKeyIds } from '../../../runtime/key-roles';
import { fingerprintOf, KeyError, readPublicKeys, type PrivateKey, type PublicKey } from '../../../runtime/pgp';
import { ColdsealError, EXIT } from '../errors';

/**
 * What `keys publish` refuses before anything reaches SSM. SSM keeps every earlier value of a
 * parameter in its history (GetParameterHistory), so a key published by mistake stays readable in
 * AWS after a corrected re-publish: the only safe mistake is the one refused here.
 */

/** The group's recipients as the stack wrote them (none when the parameter does not exist yet). */
export async function configuredRecipients(ssm: SSMClient, parameter: string): Promise<PublicKey[]> {
  let value: string | undefined;
  try {
    value = (await ssm.send(new GetParameterCommand({ Name: parameter }))).Parameter?.Value;
  } catch (error) {
    if ((error as { name?: string }).name === 'ParameterNotFound') return [];
    throw new ColdsealError(EXIT.STORAGE, `cannot read the group's recipients (${parameter}) to check that the key to publish is not one of them: ${(error as Error).message}`, 'Check your AWS credentials and region; nothing was published');
  }
  if (!value) return [];
  try {
    return await readPublicKeys(value, `parameter ${parameter}`);
  } catch (error) {
    if (error instanceof KeyError) return [];
    throw error;
  }
}

export function refuseUnpublishable(key: PrivateKey, file: string, recipients: readonly PublicKey[], recipientsParameter: string): void {
  const fingerprint = fingerprintOf(key);
  if (canEncrypt(key)) {
    const encrypting = key.subkeys.map((s) => s.getKeyID().toHex().toLowerCase());
    throw new ColdsealError(
      EXIT.KEYS,
      `${file} (key ${fingerprint}) can decrypt: it has an encryption key${encrypting.length ? ` (subkey ${encrypting.join(', ')})` : ''}. A key that can decrypt never goes to AWS, and SSM would keep it in the parameter's history even after a re-publish`,
      "Nothing was published. If this is the recipient key, keep it offline. If it is a signing key made by an older coldseal, make a sign-only one (coldseal keys generate --out DIR --group GROUP --only signing), add its public half to the group's signingPublicKeys, and publish that",
    );
  }
  const shared = sharedKeyIds([key], recipients);
  if (shared.length > 0) {
    const owner = recipients.find((r) => keyIdsOf(r).some((id) => shared.includes(id)))!;
    throw new ColdsealError(
      EXIT.KEYS,
      `${file} (key ${fingerprint}) shares key id ${shared.join(', ')} with recipient ${fingerprintOf(owner)} in ${recipientsParameter}: it is (part of) the key that decrypts the group's backups`,
      "Nothing was published. Publish the group's own signing key (GROUP-signing.key.asc from coldseal keys generate); the recipient's private key stays offline",
    );
  }
}
