/**
 * Acting in one account of a moto_server: the SDK client config and a child process's
 * environment. Kept apart from moto-stack.ts so that the test harness can use it without
 * loading the CDK.
 */

/** What the code needs to act in one moto account (test/harness/aws.ts MotoAccount is one). */
export interface MotoTarget {
  readonly accountId: string;
  readonly clientConfig: {
    endpoint: string;
    region: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  /** Credentials and region for a child process (the agent, the AWS CLI). */
  readonly env: Record<string, string>;
}

/** moto's default account: any access key it did not issue itself acts in it. */
export const MOTO_DEFAULT_ACCOUNT = '123456789012';

/** A target acting with these credentials in that account of a moto_server. */
export function motoTarget(endpoint: string, accountId: string, credentials: { accessKeyId: string; secretAccessKey: string }, region = 'us-east-1'): MotoTarget {
  return {
    accountId,
    clientConfig: { endpoint, region, forcePathStyle: true, credentials },
    env: {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_EC2_METADATA_DISABLED: 'true',
    },
  };
}

/** A target for a moto_server with no accounts set up (the demo's own server). */
export function defaultMotoTarget(endpoint: string): MotoTarget {
  return motoTarget(endpoint, MOTO_DEFAULT_ACCOUNT, { accessKeyId: 'coldseal-demo', secretAccessKey: 'coldseal-demo' });
}
