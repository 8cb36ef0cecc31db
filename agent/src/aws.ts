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
  // No "Expect: 100-continue" on uploads: for such a request the SDK's Node handler
  // (@smithy/node-http-handler) swaps in a fresh http(s).Agent with keepAlive: false, so every
  // UploadPart opened a new connection (a TCP and TLS handshake per 8 MiB part to real S3) and
  // waited a round trip for "100 Continue" before sending its body. A part S3 refuses costs at
  // most one part's bytes sent in vain, and the backup fails anyway.
  const s3 = new S3Client({ ...common, forcePathStyle: Boolean(target.endpoint), requestChecksumCalculation: 'WHEN_REQUIRED', expectContinueHeader: false });
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
