/**
 * What AWS does beyond evaluating a policy, written down once for the permission proof: which
 * extra permissions a request needs because of what it carries, and where a missing permission
 * changes the answer instead of refusing the call. Each entry names the AWS page it comes from.
 * The simulator decides policies; these decide which questions to ask it.
 */
import type { Statement } from './template-tools';

/**
 * A write that carries x-amz-object-lock-mode / -retain-until-date (PutObject,
 * CreateMultipartUpload) is also authorized as s3:PutObjectRetention, with the object-lock
 * condition keys of the request.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html#object-lock-managing-permissions
 */
export const LOCK_HEADERS_NEED_PUT_RETENTION = true;

/**
 * A write that carries x-amz-tagging is also authorized as s3:PutObjectTagging.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html (x-amz-tagging)
 */
export const TAGGING_HEADER_NEEDS_PUT_TAGGING = true;

/**
 * HeadObject and GetObject return the x-amz-object-lock-* headers only to a caller that has
 * s3:GetObjectRetention on the object; to anyone else a locked object looks unlocked.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html (x-amz-object-lock-mode)
 */
export const LOCK_HEADERS_SHOWN_WITH = 's3:GetObjectRetention';

/**
 * A GET or HEAD of a key that does not exist answers 404 NoSuchKey only to a caller with
 * s3:ListBucket on the bucket (the request has no s3:prefix, so a prefix-conditioned ListBucket
 * does not count); anyone else gets 403 AccessDenied, which code cannot tell from a real refusal.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html ("Permissions")
 */
export const MISSING_KEY_404_NEEDS = 's3:ListBucket';

/**
 * SSE-KMS: S3 uses the bucket's key on behalf of the caller, as the caller: kms:GenerateDataKey to
 * write, kms:Decrypt to read and for each part of a multipart upload, with kms:ViaService
 * s3.<region>.amazonaws.com. A bucket key makes the calls rarer, not the permission unneeded.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions
 */
export const S3_KMS_WRITE_ACTIONS = ['kms:GenerateDataKey', 'kms:Decrypt'] as const;
export const S3_KMS_READ_ACTIONS = ['kms:Decrypt'] as const;

/**
 * UploadPart and CompleteMultipartUpload never carry x-amz-server-side-encryption (only
 * CreateMultipartUpload does), and neither carries If-None-Match except Complete when asked.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html
 */
export const MULTIPART_STEPS_WITHOUT_SSE_HEADERS = ['UploadPart', 'CompleteMultipartUpload'] as const;

/**
 * An encrypted topic: the publisher needs kms:GenerateDataKey and kms:Decrypt on the topic's key
 * (through SNS); a service principal (CloudWatch) needs them in the key policy and sns:Publish in the
 * topic policy, which replaces SNS's default policy once one is set.
 * https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
 */
export const SNS_KMS_ACTIONS = ['kms:GenerateDataKey', 'kms:Decrypt'] as const;

/**
 * GetParameter WithDecryption of a SecureString: SSM decrypts with the parameter's key as the
 * caller: kms:Decrypt, kms:ViaService ssm.<region>.amazonaws.com, and the parameter ARN as
 * encryption context (PARAMETER_ARN).
 * https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html
 */
export const SECURE_STRING_READ_ACTION = 'kms:Decrypt';

/**
 * PutParameter of a standard-tier SecureString: SSM encrypts the value with the parameter's key as
 * the caller (kms:Encrypt, same ViaService and encryption context).
 * https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html (standard parameters)
 */
export const SECURE_STRING_WRITE_ACTION = 'kms:Encrypt';

/**
 * The key policy of the AWS managed key aws/ssm (AWS writes it; it cannot be changed): every
 * principal of the account may use it through SSM. That is why it cannot separate groups.
 * https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html (aws/ssm key policy)
 */
export function awsSsmKeyPolicy(account: string, region: string): { Version: string; Statement: unknown[] } {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'Allow access through AWS Systems Manager for all principals in the account that are authorized to use AWS Systems Manager',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:CreateGrant', 'kms:DescribeKey'],
        Resource: '*',
        Condition: { StringEquals: { 'kms:CallerAccount': account, 'kms:ViaService': `ssm.${region}.amazonaws.com` } },
      },
      {
        Sid: 'Allow direct access to key metadata to the account',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${account}:root` },
        Action: ['kms:Describe*', 'kms:Get*', 'kms:List*', 'kms:RevokeGrant'],
        Resource: '*',
      },
    ],
  };
}

/**
 * AmazonSSMManagedInstanceCore, which the ready host role attaches and most hosts' own roles carry
 * (the statements that matter here; the rest is ec2messages/ssmmessages). ssm:GetParameter on "*"
 * is why IAM alone cannot keep one group from another's parameters.
 * https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html
 */
export const SSM_MANAGED_INSTANCE_CORE: Statement[] = [
  {
    Effect: 'Allow',
    Action: [
      'ssm:DescribeAssociation',
      'ssm:GetDeployablePatchSnapshotForInstance',
      'ssm:GetDocument',
      'ssm:DescribeDocument',
      'ssm:GetManifest',
      'ssm:GetParameter',
      'ssm:GetParameters',
      'ssm:ListAssociations',
      'ssm:ListInstanceAssociations',
      'ssm:PutInventory',
      'ssm:PutComplianceItems',
      'ssm:PutConfigurePackageResult',
      'ssm:UpdateAssociationStatus',
      'ssm:UpdateInstanceAssociationStatus',
      'ssm:UpdateInstanceInformation',
    ],
    Resource: '*',
  },
  { Effect: 'Allow', Action: ['ssmmessages:CreateControlChannel', 'ssmmessages:CreateDataChannel', 'ssmmessages:OpenControlChannel', 'ssmmessages:OpenDataChannel'], Resource: '*' },
  { Effect: 'Allow', Action: ['ec2messages:AcknowledgeMessage', 'ec2messages:DeleteMessage', 'ec2messages:FailMessage', 'ec2messages:GetEndpoint', 'ec2messages:GetMessages', 'ec2messages:SendReply'], Resource: '*' },
];
