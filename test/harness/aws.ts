import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient } from '@aws-sdk/client-iam';
import { motoTarget, type MotoTarget } from '../../local-system/moto-target';

/**
 * Test isolation inside the one moto_server of a run: each test file works in an account of its
 * own. moto maps an access key to the account that created it, so the code under test needs no
 * test-only hook: it is simply handed that account's credentials, as it would be on AWS.
 */
export const REGION = 'us-east-1';

export function motoEndpoint(): string {
  const endpoint = process.env.COLDSEAL_TEST_MOTO_ENDPOINT;
  if (!endpoint) throw new Error('COLDSEAL_TEST_MOTO_ENDPOINT is not set: run tests through `npm test`, which starts moto_server');
  return endpoint;
}

/** A moto account: what the code under test is handed (local-system/moto-target.ts MotoTarget), and its keys. */
export interface MotoAccount extends MotoTarget {
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
}

/** An IAM client acting in that account of the moto_server (moto's account header, no signature checks). */
function iamIn(accountId: string): IAMClient {
  const iam = new IAMClient({ endpoint: motoEndpoint(), region: REGION, credentials: { accessKeyId: 'bootstrap', secretAccessKey: 'bootstrap' } });
  iam.middlewareStack.add(
    (next) => (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = accountId;
      return next(args);
    },
    { step: 'build', name: 'motoAccount' },
  );
  return iam;
}

async function newAccessKey(accountId: string, userName: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const iam = iamIn(accountId);
  await iam.send(new CreateUserCommand({ UserName: userName }));
  const key = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
  return { accessKeyId: key.AccessKey!.AccessKeyId!, secretAccessKey: key.AccessKey!.SecretAccessKey! };
}

export async function newMotoAccount(): Promise<MotoAccount> {
  const accountId = String(100000000000 + (randomBytes(5).readUIntBE(0, 5) % 899999999999));
  const credentials = await newAccessKey(accountId, `coldseal-test-${randomBytes(4).toString('hex')}`);
  return { ...motoTarget(motoEndpoint(), accountId, credentials, REGION), credentials };
}

/**
 * Another access key in the same account, reaching moto through `endpoint` (a recording proxy):
 * requests signed with it act on the same resources and are told apart by their key alone.
 */
export async function newMotoActor(account: MotoAccount, name: string, endpoint: string): Promise<MotoAccount> {
  const credentials = await newAccessKey(account.accountId, `coldseal-${name.replace(/[^A-Za-z0-9+=,.@_-]/g, '-')}-${randomBytes(4).toString('hex')}`);
  return { ...motoTarget(endpoint, account.accountId, credentials, REGION), credentials };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
