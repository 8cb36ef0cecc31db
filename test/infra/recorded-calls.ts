/**
 * The requests recorded during the end-to-end run (test/harness/aws-recorder.ts) as the calls the
 * permission proof simulates (aws-calls.ts AwsCall), with moto's physical names put back to the
 * stand-in names PermissionModel renders the template with (template-tools.ts render / FAKE).
 * Nothing is guessed: a request whose operation is not in the tables below, or that is signed
 * by a key no actor was given, is a problem that fails the proof, naming it.
 */
import type { RecordedRequest } from '../harness/aws-recorder';
import type { AwsCall } from './aws-calls';
import { AWS_SSM_KEY } from './permissions';
import { bucketNameOf, FAKE, type Template } from './template-tools';

/** The test's own access: deploying, reading SQS inboxes, corrupting a backup. Never a call of the system. */
export const HARNESS = 'harness';

/**
 * An operator at a laptop (coldseal restore, keys publish, the BackupCommand output). The
 * template has no operator role: README ("Trigger a backup by hand", "Restore") asks for the
 * account's own credentials, so the operator is proven with an identity that allows everything
 * (AdministratorAccess); what can still refuse it is what the stack owns: the bucket policy
 * (TLS, encryption), the topic policy and the KMS key policies.
 * https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AdministratorAccess.html
 */
export const OPERATOR = 'operator';
export const OPERATOR_POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

export interface RecordedCall extends AwsCall {
  /** The request as sent, for the failure message. */
  readonly wire: string;
}

/** What the deployment knows that the requests do not say. */
export interface DeploymentFacts {
  readonly template: Template;
  /** Logical id → physical id (CloudFormation DescribeStackResources). */
  readonly physical: ReadonlyMap<string, string>;
  readonly accountId: string;
  /** SecureString parameter name → its KMS key as SSM reports it (DescribeParameters KeyId). */
  readonly secureStringKeys: ReadonlyMap<string, string>;
}

/**
 * Which callers read Object Lock headers from an answer (aws-calls.ts readsLock): the verifier's
 * Object Lock check, through S3BucketStore.head (lambdas/shared/aws.ts), the only reader of
 * ObjectLockMode in agent/ and lambdas/. The wire cannot show what a caller reads, so it is said here.
 */
const READS_LOCK_HEADERS: Readonly<Record<string, readonly { operation: string; key: RegExp }[]>> = {
  // Backups and WAL objects (their lock is judged against the daily tier's term, lambdas/verifier/core/pitr.ts).
  verifier: [{ operation: 'HeadObject', key: /^(backups|wal)\// }],
};

/**
 * Reads whose caller takes a refusal for "absent" as well as a 404, so a 404 seen here does not
 * mean the caller needs one: the agent's probe for a segment beyond the signed list
 * (agent/src/restore/verify.ts, "A HEAD, not a LIST"), sent by hosts, the drill host and operators.
 */
const AGENT = (principal: string) => principal.startsWith('host:') || principal === 'drill' || principal === OPERATOR;
/**
 * Also a host's HEAD or GET of a WAL key (agent/src/pitr: restore_command, archive-push's duplicate
 * check, a base backup waiting for its WAL): hosts may list only their group's wal/ prefix
 * (host-access.ts ListGroupWal), so S3 answers them 403 for a missing key, and the agent tells
 * "not in the archive" by a listing under the key's own name (runtime/s3-presence.ts whyUnreadable),
 * which the proof simulates as recorded.
 */
const REFUSAL_MEANS_ABSENT: readonly { operation: string; key: RegExp; by: (principal: string) => boolean }[] = [
  { operation: 'HeadObject', key: /\.seg\d+\.pgp$/, by: AGENT },
  { operation: 'HeadObject', key: /^wal\//, by: AGENT },
  { operation: 'GetObject', key: /^wal\//, by: AGENT },
];

/** Calls AWS authorizes for everybody. */
const NEEDS_NO_PERMISSION: Readonly<Record<string, string>> = {
  // "No permissions are required to perform this operation." https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
  'sts:GetCallerIdentity': 'https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html',
};

/** Physical names → the model's: buckets, topic, keys, document; the account id everywhere. */
export class Renaming {
  private readonly pairs: [string, string][] = [];
  private readonly keyIds = new Map<string, string>();

  constructor(private readonly facts: DeploymentFacts) {
    const region = FAKE.region;
    for (const [id, r] of Object.entries(facts.template.Resources)) {
      const physical = facts.physical.get(id);
      if (!physical) continue;
      if (r.Type === 'AWS::S3::Bucket') this.pairs.push([`arn:aws:s3:::${physical}`, `arn:aws:s3:::${bucketNameOf(id)}`]);
      if (r.Type === 'AWS::SNS::Topic') this.pairs.push([physical, `arn:aws:sns:${region}:${FAKE.account}:${id}`]);
      if (r.Type === 'AWS::SSM::Document') this.pairs.push([`:document/${physical}`, `:document/${id}`]);
      if (r.Type === 'AWS::KMS::Key') {
        const keyId = physical.split('/').pop()!;
        this.keyIds.set(keyId, `arn:aws:kms:${region}:${FAKE.account}:key/${id}`);
        this.pairs.push([`:key/${keyId}`, `:key/${id}`]);
      }
    }
    this.pairs.sort((a, b) => b[0].length - a[0].length);
  }

  /** An ARN as the model names it. */
  arn(value: string): string {
    let out = value;
    for (const [from, to] of this.pairs) out = out.split(from).join(to);
    return out.split(`:${this.facts.accountId}:`).join(`:${FAKE.account}:`).split(`-${this.facts.accountId}-`).join(`-${FAKE.account}-`);
  }

  bucket(name: string): string {
    return this.arn(`arn:aws:s3:::${name}`).slice('arn:aws:s3:::'.length);
  }

  /** A KMS key as a request or SSM names it: ARN, bare key id, or the aws/ssm alias. */
  kmsKey(value: string): string {
    if (value === 'alias/aws/ssm' || value.endsWith(':alias/aws/ssm')) return AWS_SSM_KEY;
    return this.keyIds.get(value) ?? this.arn(value);
  }

  parameterArn(name: string): string {
    return name.startsWith('arn:') ? this.arn(name) : `arn:aws:ssm:${FAKE.region}:${FAKE.account}:parameter/${name.replace(/^\//, '')}`;
  }

  documentArn(name: string): string {
    return name.startsWith('arn:') ? this.arn(name) : this.arn(`arn:aws:ssm:${FAKE.region}:${this.facts.accountId}:document/${name}`);
  }
}

/** S3's REST API: method + sub-resource → operation. https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html */
function s3Operation(method: string, hasKey: boolean, query: Readonly<Record<string, string>>, headers: Readonly<Record<string, string>>): string | undefined {
  const has = (name: string) => Object.hasOwn(query, name);
  if (hasKey) {
    if (method === 'PUT') {
      if (has('partNumber') && has('uploadId')) return headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
      if (has('tagging')) return 'PutObjectTagging';
      if (has('retention')) return 'PutObjectRetention';
      if (has('legal-hold')) return 'PutObjectLegalHold';
      if (has('acl')) return 'PutObjectAcl';
      if (headers['x-amz-copy-source']) return 'CopyObject';
      return Object.keys(query).filter((k) => k !== 'x-id').length === 0 ? 'PutObject' : undefined;
    }
    if (method === 'POST') {
      if (has('uploads')) return 'CreateMultipartUpload';
      if (has('uploadId')) return 'CompleteMultipartUpload';
      if (has('restore')) return 'RestoreObject';
      return undefined;
    }
    if (method === 'DELETE') return has('uploadId') ? 'AbortMultipartUpload' : has('tagging') ? 'DeleteObjectTagging' : 'DeleteObject';
    if (method === 'GET') {
      if (has('tagging')) return 'GetObjectTagging';
      if (has('retention')) return 'GetObjectRetention';
      if (has('legal-hold')) return 'GetObjectLegalHold';
      if (has('uploadId')) return 'ListParts';
      if (has('attributes')) return 'GetObjectAttributes';
      return 'GetObject';
    }
    if (method === 'HEAD') return 'HeadObject';
    return undefined;
  }
  if (method === 'GET') {
    if (has('uploads')) return 'ListMultipartUploads';
    if (has('versions')) return 'ListObjectVersions';
    if (query['list-type'] === '2') return 'ListObjectsV2';
    if (has('location')) return 'GetBucketLocation';
    if (has('object-lock')) return 'GetObjectLockConfiguration';
    return Object.keys(query).filter((k) => !['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'].includes(k)).length === 0 ? 'ListObjects' : undefined;
  }
  if (method === 'HEAD') return 'HeadBucket';
  if (method === 'POST' && has('delete')) return 'DeleteObjects';
  return undefined;
}

/** The request headers that carry S3 condition keys or follow-on questions (aws-calls.ts questionsFor). */
const S3_CONDITION_HEADERS = [
  'x-amz-server-side-encryption',
  'x-amz-server-side-encryption-aws-kms-key-id',
  'if-none-match',
  'x-amz-object-lock-mode',
  'x-amz-object-lock-retain-until-date',
  'x-amz-tagging',
  'range',
];

function wireOf(r: RecordedRequest, operation?: string): string {
  const query = Object.entries(r.query).filter(([k]) => !k.startsWith('X-Amz-')).map(([k, v]) => (v === '' ? k : `${k}=${v.length > 40 ? `${v.slice(0, 40)}…` : v}`)).join('&');
  return `${r.service ?? 'unsigned'} ${operation ?? ''} ${r.method} ${r.path}${query ? `?${query}` : ''} → ${r.status ?? 'no answer'}`.replace(/ {2}/g, ' ');
}

function s3Calls(r: RecordedRequest, principal: string, names: Renaming): RecordedCall[] | string {
  const [, bucket, ...rest] = r.path.split('/');
  const key = rest.length > 0 && rest.join('/') !== '' ? decodeURIComponent(rest.join('/')) : undefined;
  const operation = s3Operation(r.method, key !== undefined, r.query, r.headers);
  if (!operation) return `S3 request with no operation in the table: ${wireOf(r)}`;
  const headers: Record<string, string> = {};
  for (const name of S3_CONDITION_HEADERS) if (r.headers[name] !== undefined) headers[name] = r.headers[name];
  const keyHeader = 'x-amz-server-side-encryption-aws-kms-key-id';
  if (headers[keyHeader]) headers[keyHeader] = names.kmsKey(headers[keyHeader]);
  const query: Record<string, string> = {};
  if (r.query.prefix !== undefined) query.prefix = r.query.prefix;
  if (r.query.versionId !== undefined) query.versionId = r.query.versionId;
  const read = operation === 'GetObject' || operation === 'HeadObject';
  return [
    {
      principal,
      operation,
      bucket: names.bucket(decodeURIComponent(bucket)),
      key,
      headers,
      query,
      // The caller went on after a 404: on AWS it must get a 404, not a 403 (aws-behaviour.ts MISSING_KEY_404_NEEDS).
      mayBeMissing: read && r.status === 404 && !REFUSAL_MEANS_ABSENT.some((e) => e.operation === operation && e.key.test(key ?? '') && e.by(principal)),
      readsLock: read && (READS_LOCK_HEADERS[principal] ?? []).some((e) => e.operation === operation && e.key.test(key ?? '')) && r.responseHeaders?.['x-amz-object-lock-mode'] !== undefined,
      wire: wireOf(r, operation),
    },
  ];
}

function ssmCalls(r: RecordedRequest, principal: string, names: Renaming, facts: DeploymentFacts): RecordedCall[] | string {
  const operation = /^AmazonSSM\.(\w+)$/.exec(r.headers['x-amz-target'] ?? '')?.[1];
  const body = JSON.parse(r.body || '{}');
  const wire = wireOf(r, operation);
  const call = (resource: string, extra: Partial<AwsCall> = {}): RecordedCall => ({ principal, operation: `ssm:${operation}`, resource, wire, ...extra });
  const decrypts = (name: string): Partial<AwsCall> => {
    const keyId = facts.secureStringKeys.get(name);
    return body.WithDecryption && keyId ? { parameterKeyArn: names.kmsKey(keyId) } : {};
  };
  switch (operation) {
    case 'GetParameter':
      return [call(names.parameterArn(body.Name), decrypts(body.Name))];
    case 'GetParameters':
      return (body.Names as string[]).map((name) => call(names.parameterArn(name), decrypts(name)));
    case 'PutParameter': {
      const keyId = body.Type === 'SecureString' ? (body.KeyId ?? 'alias/aws/ssm') : undefined;
      return [call(names.parameterArn(body.Name), keyId ? { parameterKeyArn: names.kmsKey(keyId) } : {})];
    }
    case 'SendCommand': {
      // Authorized on the document and on each instance it reaches; with tag targets, on
      // instances carrying that tag (ssm:resourceTag/<key>), whichever SSM finds then.
      // https://docs.aws.amazon.com/systems-manager/latest/userguide/run-command-setting-up.html#rc-setting-up-restricting-commands
      const calls = [call(names.documentArn(body.DocumentName))];
      const instance = (id: string) => `arn:aws:ec2:${FAKE.region}:${FAKE.account}:instance/${id}`;
      for (const target of (body.Targets ?? []) as { Key: string; Values: string[] }[]) {
        const tag = /^tag:(.+)$/.exec(target.Key)?.[1];
        if (target.Key === 'InstanceIds') calls.push(...target.Values.map((id) => call(instance(id))));
        else if (tag) calls.push(...target.Values.map((value) => call(instance('i-0tagged0000000000'), { context: { [`ssm:resourceTag/${tag}`]: value } })));
        else return `SendCommand target ${target.Key} is not modelled: ${wire}`;
      }
      for (const id of (body.InstanceIds ?? []) as string[]) calls.push(call(instance(id)));
      return calls;
    }
    // These take no resource: IAM authorizes them on "*".
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
    case 'GetCommandInvocation':
    case 'ListCommands':
    case 'ListCommandInvocations':
    case 'DescribeInstanceInformation':
      return [call('*')];
    default:
      return `SSM operation with no entry in the table: ${wire}`;
  }
}

/**
 * CloudWatch PutMetricData (the agent's archiver figures): authorized on "*" with the request's
 * namespace as cloudwatch:namespace. The SDK sends it as AWS JSON 1.0 (x-amz-target
 * GraniteServiceVersion20100801.PutMetricData); older clients as the query protocol.
 */
function cloudWatchCalls(r: RecordedRequest, principal: string): RecordedCall[] | string {
  const target = /^GraniteServiceVersion20100801\.(\w+)$/.exec(r.headers['x-amz-target'] ?? '')?.[1];
  const form = target ? undefined : new URLSearchParams(r.body ?? '');
  const operation = target ?? form?.get('Action') ?? undefined;
  const wire = wireOf(r, operation);
  if (operation !== 'PutMetricData') return `CloudWatch operation with no entry in the table: ${wire}`;
  let namespace: string | undefined;
  try {
    namespace = target ? (JSON.parse(r.body || '{}') as { Namespace?: string }).Namespace : (form!.get('Namespace') ?? undefined);
  } catch {
    namespace = undefined;
  }
  if (!namespace) return `PutMetricData without a namespace in the recorded body: ${wire}`;
  return [{ principal, operation: 'cloudwatch:PutMetricData', resource: '*', context: { 'cloudwatch:namespace': namespace }, wire }];
}

/**
 * The AWS Price List Query API (the verifier's S3 prices, lambdas/shared/price-list.ts): AWS JSON 1.1,
 * x-amz-target AWSPriceListService.<Operation>; no resource-level permissions, so "*"
 * (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awspricelist.html).
 * moto does not serve it (it answers 404): the call is still made as recorded, and must be allowed.
 */
function pricingCalls(r: RecordedRequest, principal: string): RecordedCall[] | string {
  const operation = /^AWSPriceListService\.(\w+)$/.exec(r.headers['x-amz-target'] ?? '')?.[1];
  const wire = wireOf(r, operation);
  if (operation !== 'GetProducts') return `Price List operation with no entry in the table: ${wire}`;
  return [{ principal, operation: 'pricing:GetProducts', resource: '*', wire }];
}

function queryCalls(r: RecordedRequest, principal: string, names: Renaming): RecordedCall[] | string {
  if (r.service === 'monitoring') return cloudWatchCalls(r, principal);
  if (r.service === 'pricing') return pricingCalls(r, principal);
  const form = new URLSearchParams(r.body ?? '');
  const action = form.get('Action') ?? undefined;
  const wire = wireOf(r, action);
  if (r.service === 'sns' && action === 'Publish') return [{ principal, operation: 'sns:Publish', resource: names.arn(form.get('TopicArn') ?? ''), wire }];
  if (r.service === 'sts' && action === 'GetCallerIdentity') return [{ principal, operation: 'sts:GetCallerIdentity', wire }];
  return `${r.service} operation with no entry in the table: ${wire}`;
}

export interface Translation {
  /** Calls of the system's principals (the harness left out), operator included. */
  readonly calls: RecordedCall[];
  /** The harness's own requests, counted and left out. */
  readonly harnessRequests: number;
  /** Requests the proof cannot place: each fails it. */
  readonly problems: string[];
}

/** @param principals access key id → principal name (HARNESS for the test's own key). */
export function translate(requests: readonly RecordedRequest[], principals: ReadonlyMap<string, string>, facts: DeploymentFacts): Translation {
  const names = new Renaming(facts);
  const calls: RecordedCall[] = [];
  const problems: string[] = [];
  let harnessRequests = 0;
  for (const r of requests) {
    const principal = r.accessKeyId === undefined ? undefined : principals.get(r.accessKeyId);
    if (!principal) {
      problems.push(`signed by ${r.accessKeyId ?? 'nobody'}, a key no actor was given: ${wireOf(r)}`);
      continue;
    }
    if (principal === HARNESS) {
      harnessRequests++;
      continue;
    }
    const out = r.service === 's3' ? s3Calls(r, principal, names) : r.service === 'ssm' ? ssmCalls(r, principal, names, facts) : queryCalls(r, principal, names);
    if (typeof out === 'string') problems.push(`${principal}: ${out}`);
    else calls.push(...out);
  }
  return { calls, harnessRequests, problems };
}

/** Whether a translated call needs no permission at all (and why), so it is not simulated. */
export function needsNoPermission(call: AwsCall): string | undefined {
  return NEEDS_NO_PERMISSION[call.operation];
}
