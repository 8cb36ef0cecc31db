import { groupParameters } from '../../../format/parameters';
import { encryptionKeyIds, readPublicKeys, type PublicKey } from '../../../runtime/pgp';
import type { ParameterStore } from '../../shared/ports';

/** What the verifier trusts for one group: public halves only, read from SSM Parameter Store. */
export interface GroupKeys {
  readonly group: string;
  readonly signing: PublicKey[];
  readonly recipientKeyIds: string[];
  /** Set when the keys could not be read: every check that needs them reports this instead. */
  readonly problem: string | undefined;
  readonly signingParameter: string;
  readonly recipientsParameter: string;
}

export async function loadGroupKeys(params: ParameterStore, prefix: string, group: string): Promise<GroupKeys> {
  const names = groupParameters(group, prefix);
  const base = { group, signingParameter: names.signingPublicKeys, recipientsParameter: names.recipients };
  const problems: string[] = [];
  let signing: PublicKey[] = [];
  let recipientKeyIds: string[] = [];
  const signingText = await params.get(names.signingPublicKeys);
  if (signingText === null) problems.push(`SSM parameter ${names.signingPublicKeys} (signing public keys) does not exist`);
  else {
    try {
      signing = await readPublicKeys(signingText, `SSM parameter ${names.signingPublicKeys}`);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const recipientsText = await params.get(names.recipients);
  if (recipientsText === null) problems.push(`SSM parameter ${names.recipients} (recipient public keys) does not exist`);
  else {
    try {
      recipientKeyIds = await encryptionKeyIds(await readPublicKeys(recipientsText, `SSM parameter ${names.recipients}`));
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  return { ...base, signing, recipientKeyIds, problem: problems.length ? problems.join('; ') : undefined };
}
