/**
 * An AWS request as the system sends it (recorded from the SDK or written from the code), and the
 * table that turns it into the authorization questions AWS asks: which IAM action(s), on which
 * resource, with which condition keys, and which follow-on KMS use it causes.
 * https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
 */
import {
  LOCK_HEADERS_NEED_PUT_RETENTION,
  LOCK_HEADERS_SHOWN_WITH,
  MISSING_KEY_404_NEEDS,
  S3_KMS_READ_ACTIONS,
  S3_KMS_WRITE_ACTIONS,
  SECURE_STRING_READ_ACTION,
  SECURE_STRING_WRITE_ACTION,
  SNS_KMS_ACTIONS,
  TAGGING_HEADER_NEEDS_PUT_TAGGING,
} from './aws-behaviour';

export interface AwsCall {
  /** Who makes it on AWS: host:<group>, drill, verifier, monitor, scheduler, or a service principal (cloudwatch.amazonaws.com). */
  readonly principal: string;
  /** SDK operation name, e.g. UploadPart. */
  readonly operation: string;
  /** S3: bucket and key (no key: a bucket operation). */
  readonly bucket?: string;
  readonly key?: string;
  /** Anything else: the resource ARN (topic, parameter, document, instance, function). */
  readonly resource?: string;
  /** Request headers and query parameters that carry condition keys (lower-case names). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly query?: Readonly<Record<string, string>>;
  /** Global/service keys the request carries besides those derived from headers (aws:SourceArn, ssm:resourceTag/...). */
  readonly context?: Readonly<Record<string, string | string[]>>;
  /** The caller treats "not found" as an answer (S3: needs a 404, not a 403). */
  readonly mayBeMissing?: boolean;
  /** The caller reads the object's Object Lock headers from the answer. */
  readonly readsLock?: boolean;
  /** GetParameter WithDecryption of a SecureString, or PutParameter of one: the key it is encrypted with. */
  readonly parameterKeyArn?: string;
  /** Sent over plain HTTP (only hostile calls are). */
  readonly insecure?: boolean;
}

export interface Question {
  readonly action: string;
  readonly resource: string;
  readonly context: Record<string, string | string[]>;
  /** Why this question follows from the call, for the failure message. */
  readonly because: string;
}

export interface CallEnvironment {
  readonly region: string;
  readonly account: string;
  /** The bucket's SSE-KMS key (for the KMS use S3 makes as the caller), by bucket name. */
  bucketKeyArn(bucket: string): string | undefined;
  /** The topic's key, by topic ARN. */
  topicKeyArn(topicArn: string): string | undefined;
}

/** S3 operation -> IAM action; object operations unless marked bucket. https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html */
const S3_ACTIONS: Record<string, { action: string; bucketLevel?: boolean; write?: boolean; read?: boolean }> = {
  PutObject: { action: 's3:PutObject', write: true },
  CreateMultipartUpload: { action: 's3:PutObject', write: true },
  UploadPart: { action: 's3:PutObject', write: true },
  CompleteMultipartUpload: { action: 's3:PutObject', write: true },
  AbortMultipartUpload: { action: 's3:AbortMultipartUpload' },
  ListMultipartUploads: { action: 's3:ListBucketMultipartUploads', bucketLevel: true },
  ListObjectsV2: { action: 's3:ListBucket', bucketLevel: true },
  // The SSM Agent's aws:downloadContent lists the key as a folder first (V1, its SDK's ListObjects).
  ListObjects: { action: 's3:ListBucket', bucketLevel: true },
  ListObjectVersions: { action: 's3:ListBucketVersions', bucketLevel: true },
  GetObject: { action: 's3:GetObject', read: true },
  HeadObject: { action: 's3:GetObject', read: true },
  GetObjectTagging: { action: 's3:GetObjectTagging' },
  PutObjectTagging: { action: 's3:PutObjectTagging' },
  GetObjectRetention: { action: 's3:GetObjectRetention' },
  PutObjectRetention: { action: 's3:PutObjectRetention' },
  PutObjectLegalHold: { action: 's3:PutObjectLegalHold' },
  DeleteObject: { action: 's3:DeleteObject' },
  RestoreObject: { action: 's3:RestoreObject' },
};

/** Whole-object creations (s3:ObjectCreationOperation true); the multipart steps before Complete are false. https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html */
const CREATES_OBJECT = new Set(['PutObject', 'CompleteMultipartUpload', 'CopyObject']);

/** Other services: operation -> action (the resource is the call's resource). */
const OTHER_ACTIONS: Record<string, string> = {
  'ssm:GetParameter': 'ssm:GetParameter',
  'ssm:GetParameters': 'ssm:GetParameters',
  'ssm:PutParameter': 'ssm:PutParameter',
  'ssm:DeleteParameter': 'ssm:DeleteParameter',
  'ssm:SendCommand': 'ssm:SendCommand',
  'ssm:GetCommandInvocation': 'ssm:GetCommandInvocation',
  'ssm:ListCommands': 'ssm:ListCommands',
  'ssm:ListCommandInvocations': 'ssm:ListCommandInvocations',
  'ssm:DescribeInstanceInformation': 'ssm:DescribeInstanceInformation',
  // The verifier's S3 prices (lambdas/shared/price-list.ts); no resource-level permissions: resource "*".
  'pricing:GetProducts': 'pricing:GetProducts',
  'sns:Publish': 'sns:Publish',
  'sqs:SendMessage': 'sqs:SendMessage',
  'lambda:Invoke': 'lambda:InvokeFunction',
  'logs:PutLogEvents': 'logs:PutLogEvents',
  'logs:CreateLogStream': 'logs:CreateLogStream',
  'kms:Decrypt': 'kms:Decrypt',
  'sqs:ReceiveMessage': 'sqs:ReceiveMessage',
  'sqs:DeleteMessage': 'sqs:DeleteMessage',
  'sqs:PurgeQueue': 'sqs:PurgeQueue',
  // No resource type: authorized on "*", with the namespace as the condition key cloudwatch:namespace
  // (the call's context). https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html
  'cloudwatch:PutMetricData': 'cloudwatch:PutMetricData',
};

function remainingDays(until: string, now: Date): string {
  return String(Math.ceil((Date.parse(until) - now.getTime()) / 86_400_000));
}

/** The authorization questions one call raises on AWS. */
export function questionsFor(call: AwsCall, env: CallEnvironment, now = new Date()): Question[] {
  const base: Record<string, string | string[]> = { 'aws:SecureTransport': call.insecure ? 'false' : 'true', ...(call.context ?? {}) };
  const questions: Question[] = [];
  const kmsVia = (service: string) => ({ 'kms:ViaService': `${service}.${env.region}.amazonaws.com`, 'kms:CallerAccount': env.account });
  if (call.bucket !== undefined) {
    // A read of a given version is authorized as s3:GetObjectVersion instead.
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html ("Permissions": versionId)
    const versioned = call.query?.versionId !== undefined && (call.operation === 'GetObject' || call.operation === 'HeadObject');
    const entry = versioned ? { ...S3_ACTIONS[call.operation], action: 's3:GetObjectVersion' } : S3_ACTIONS[call.operation];
    if (!entry) throw new Error(`aws-calls: no IAM action known for S3 ${call.operation}; add it to S3_ACTIONS`);
    const headers = call.headers ?? {};
    const bucketArn = `arn:aws:s3:::${call.bucket}`;
    const resource = entry.bucketLevel || call.key === undefined ? bucketArn : `${bucketArn}/${call.key}`;
    const context: Record<string, string | string[]> = { ...base };
    if (entry.action === 's3:ListBucket' && call.query?.prefix !== undefined) context['s3:prefix'] = call.query.prefix;
    if (entry.write) {
      context['s3:ObjectCreationOperation'] = String(CREATES_OBJECT.has(call.operation));
      for (const name of ['x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id', 'if-none-match']) {
        if (headers[name] !== undefined) context[`s3:${name}`] = headers[name];
      }
    }
    const lock = headers['x-amz-object-lock-mode'];
    const lockContext: Record<string, string | string[]> = {};
    if (lock) {
      lockContext['s3:object-lock-mode'] = lock;
      const until = headers['x-amz-object-lock-retain-until-date'];
      if (until) {
        lockContext['s3:object-lock-retain-until-date'] = until;
        lockContext['s3:object-lock-remaining-retention-days'] = remainingDays(until, now);
      }
    }
    if (entry.action === 's3:PutObjectRetention') Object.assign(context, lockContext);
    questions.push({ action: entry.action, resource, context, because: `${call.operation} is authorized as ${entry.action}` });
    if (lock && entry.write && LOCK_HEADERS_NEED_PUT_RETENTION) {
      questions.push({ action: 's3:PutObjectRetention', resource, context: { ...base, ...lockContext }, because: `${call.operation} carries Object Lock headers` });
    }
    if (headers['x-amz-tagging'] && entry.write && TAGGING_HEADER_NEEDS_PUT_TAGGING) {
      questions.push({ action: 's3:PutObjectTagging', resource, context: { ...base }, because: `${call.operation} carries x-amz-tagging` });
    }
    // Shortening or removing a GOVERNANCE lock (PutObjectRetention to an earlier date, DeleteObject
    // of a locked version) takes this header and s3:BypassGovernanceRetention; COMPLIANCE cannot be
    // shortened at all. https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html#object-lock-managing-bypass
    if (headers['x-amz-bypass-governance-retention'] === 'true' && (call.operation === 'PutObjectRetention' || call.operation === 'DeleteObject')) {
      questions.push({ action: 's3:BypassGovernanceRetention', resource, context: { ...base }, because: `${call.operation} with x-amz-bypass-governance-retention overrides a GOVERNANCE lock` });
    }
    if (call.readsLock) {
      questions.push({ action: LOCK_HEADERS_SHOWN_WITH, resource, context: { ...base }, because: `${call.operation} is read for its Object Lock headers, which S3 shows only with ${LOCK_HEADERS_SHOWN_WITH}` });
    }
    if (call.mayBeMissing) {
      questions.push({ action: MISSING_KEY_404_NEEDS, resource: bucketArn, context: { ...base }, because: `${call.operation} of a possibly missing key answers 404 only with ${MISSING_KEY_404_NEEDS} on the bucket (else 403)` });
    }
    const keyArn = env.bucketKeyArn(call.bucket);
    if (keyArn && (entry.write || entry.read)) {
      const actions = entry.write ? S3_KMS_WRITE_ACTIONS : S3_KMS_READ_ACTIONS;
      // A HEAD reads no data; S3 uses the key for data only. A multipart upload's steps need both.
      if (call.operation !== 'HeadObject') {
        for (const action of actions) {
          questions.push({ action, resource: keyArn, context: { ...base, ...kmsVia('s3') }, because: `S3 uses the bucket's key as the caller for ${call.operation}` });
        }
      }
    }
    return questions;
  }
  const action = OTHER_ACTIONS[call.operation];
  if (!action) throw new Error(`aws-calls: no IAM action known for ${call.operation}; add it to OTHER_ACTIONS`);
  if (!call.resource) throw new Error(`aws-calls: ${call.operation} needs a resource`);
  questions.push({ action, resource: call.resource, context: { ...base }, because: `${call.operation} is authorized as ${action}` });
  if (call.parameterKeyArn) {
    const writes = action === 'ssm:PutParameter';
    questions.push({
      action: writes ? SECURE_STRING_WRITE_ACTION : SECURE_STRING_READ_ACTION,
      resource: call.parameterKeyArn,
      context: { ...base, ...kmsVia('ssm'), 'kms:EncryptionContext:PARAMETER_ARN': call.resource },
      because: writes ? 'SSM encrypts a SecureString with its key as the caller' : 'SSM decrypts a SecureString with its key as the caller',
    });
  }
  if (action === 'sns:Publish') {
    const keyArn = env.topicKeyArn(call.resource);
    if (keyArn) {
      for (const kmsAction of SNS_KMS_ACTIONS) {
        questions.push({ action: kmsAction, resource: keyArn, context: { ...base, ...kmsVia('sns') }, because: 'SNS uses the topic key as the publisher' });
      }
    }
  }
  return questions;
}
