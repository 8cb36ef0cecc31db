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
  // Checksums: we compute SHA-256 over the ciphertext ourselves and sign it; the SDK's default
  // per-request CRC32 is pure JavaScript and would cost more CPU than the encryption.
  const s3 = new S3Client({ ...common, forcePathStyle: Boolean(target.endpoint), requestChecksumCalculation: 'WHEN_REQUIRED' });
  // Except where S3 demands one: a PutObject that sets Object Lock retention is refused without a
  // Content-MD5 or checksum header (MissingUploadObjectWithObjectLockHeaders).
  s3.middlewareStack.add(
    (next, context) => (args) => {
      const input = args.input as { ObjectLockMode?: string; ChecksumAlgorithm?: string };
      if (context.commandName === 'PutObjectCommand' && input.ObjectLockMode && !input.ChecksumAlgorithm) input.ChecksumAlgorithm = 'CRC32';
      return next(args);
    },
    { step: 'initialize', name: 'coldsealObjectLockChecksum' },
  );
  return {
    s3,
    ssm: new SSMClient(common),
    sns: new SNSClient(common),
  };
}
