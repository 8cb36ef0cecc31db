import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';

/**
 * SDK clients for the agent. Credentials and region come from the SDK's default chain (instance
 * profile under SSM, AWS_PROFILE on a laptop). An explicit endpoint (S3-compatible stores, or moto
 * in tests) switches S3 to path-style addressing.
 */
export interface AwsTarget {
  readonly region: string;
  readonly endpoint?: string;
}

export interface AgentClients {
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly sns: SNSClient;
}

export function createClients(target: AwsTarget): AgentClients {
  const common = { region: target.region, ...(target.endpoint ? { endpoint: target.endpoint } : {}), maxAttempts: 5 };
  return {
    // Checksums: we compute SHA-256 over the ciphertext ourselves and sign it; the SDK's default
    // per-request CRC32 is pure JavaScript and would cost more CPU than the encryption.
    s3: new S3Client({ ...common, forcePathStyle: Boolean(target.endpoint), requestChecksumCalculation: 'WHEN_REQUIRED' }),
    ssm: new SSMClient(common),
    sns: new SNSClient(common),
  };
}
