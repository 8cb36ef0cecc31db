import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient } from '@aws-sdk/client-iam';

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

export interface MotoAccount {
  readonly accountId: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Client config for any SDK v3 client: endpoint, region, path-style, this account's keys. */
  readonly clientConfig: {
    endpoint: string;
    region: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  /** Environment for a child process (the agent CLI) to act in this account. */
  readonly env: Record<string, string>;
}

export async function newMotoAccount(): Promise<MotoAccount> {
  const endpoint = motoEndpoint();
  const accountId = String(100000000000 + (randomBytes(5).readUIntBE(0, 5) % 899999999999));
  const iam = new IAMClient({ endpoint, region: REGION, credentials: { accessKeyId: 'bootstrap', secretAccessKey: 'bootstrap' } });
  iam.middlewareStack.add(
    (next) => (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = accountId;
      return next(args);
    },
    { step: 'build', name: 'motoAccount' },
  );
  const userName = `coldseal-test-${randomBytes(4).toString('hex')}`;
  await iam.send(new CreateUserCommand({ UserName: userName }));
  const key = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
  const credentials = { accessKeyId: key.AccessKey!.AccessKeyId!, secretAccessKey: key.AccessKey!.SecretAccessKey! };
  return {
    accountId,
    credentials,
    clientConfig: { endpoint, region: REGION, forcePathStyle: true, credentials },
    env: {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: 'true',
    },
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
