/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates and contexts are untyped JSON */
/**
 * Small helpers to read a synthesized template the way CloudFormation would resolve it, with
 * stand-in values for what only a deployment knows, and to evaluate IAM statements against a
 * request with @cloud-copilot/iam-simulate.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
export type Template = { Resources: Record<string, { Type: string; Properties?: any; DeletionPolicy?: string }>; Outputs?: Record<string, any> };

export const FAKE = { partition: 'aws', region: 'us-east-1', account: '123456789012' };

/** The stand-in name of a bucket: its logical id, lower-cased so that it is a valid bucket name. */
export function bucketNameOf(logicalId: string): string {
  return logicalId.toLowerCase();
}

/** Resolves intrinsics to strings: Ref X -> "X" (a bucket's name is its logical id here), GetAtt X.Arn -> an ARN. */
export function render(template: Template, value: unknown): any {
  if (Array.isArray(value)) return value.map((v) => render(template, v));
  if (value && typeof value === 'object') {
    const obj = value as Record<string, any>;
    if ('Ref' in obj) {
      const ref = obj.Ref as string;
      if (ref === 'AWS::Partition') return FAKE.partition;
      if (ref === 'AWS::Region') return FAKE.region;
      if (ref === 'AWS::AccountId') return FAKE.account;
      if (ref === 'AWS::URLSuffix') return 'amazonaws.com';
      const type = template.Resources[ref]?.Type;
      if (type === 'AWS::SNS::Topic') return `arn:aws:sns:${FAKE.region}:${FAKE.account}:${ref}`;
      if (type === 'AWS::S3::Bucket') return bucketNameOf(ref);
      if (type === 'AWS::SQS::Queue') return `https://sqs.${FAKE.region}.amazonaws.com/${FAKE.account}/${ref}`;
      return ref;
    }
    if ('Fn::GetAtt' in obj) {
      const [id, attribute] = obj['Fn::GetAtt'] as [string, string];
      const type = template.Resources[id]?.Type;
      if (attribute !== 'Arn') return `${id}.${attribute}`;
      if (type === 'AWS::S3::Bucket') return `arn:aws:s3:::${bucketNameOf(id)}`;
      if (type === 'AWS::KMS::Key') return `arn:aws:kms:${FAKE.region}:${FAKE.account}:key/${id}`;
      if (type === 'AWS::Logs::LogGroup') return `arn:aws:logs:${FAKE.region}:${FAKE.account}:log-group:${id}:*`;
      if (type === 'AWS::Lambda::Function') return `arn:aws:lambda:${FAKE.region}:${FAKE.account}:function:${id}`;
      if (type === 'AWS::IAM::Role') return `arn:aws:iam::${FAKE.account}:role/${id}`;
      if (type === 'AWS::Events::Rule') return `arn:aws:events:${FAKE.region}:${FAKE.account}:rule/${id}`;
      if (type === 'AWS::SQS::Queue') return `arn:aws:sqs:${FAKE.region}:${FAKE.account}:${id}`;
      return `arn:aws:${type}:${id}`;
    }
    if ('Fn::Join' in obj) {
      const [sep, parts] = obj['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => render(template, p)).join(sep);
    }
    if ('Fn::Sub' in obj) {
      return (obj['Fn::Sub'] as string).replace(/\$\{([^}]+)\}/g, (_m, name: string) => render(template, { Ref: name }));
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, render(template, v)]));
  }
  return value;
}

export function resourcesOfType(template: Template, type: string): [string, any][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type).map(([id, r]) => [id, r]);
}

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export type RequestContext = Record<string, string | boolean | undefined>;

/**
 * Identity-policy evaluation by a real IAM engine (@cloud-copilot/iam-simulate): allowed when some
 * Allow matches and no Deny does, with every condition operator as AWS evaluates it.
 */
export async function allows(statements: Statement[], action: string, resource: string, context: RequestContext = {}): Promise<boolean> {
  const contextVariables = Object.fromEntries(Object.entries(context).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
  const result = await runSimulation(
    {
      request: { principal: `arn:aws:iam::${FAKE.account}:role/test`, action, resource: { resource, accountId: FAKE.account }, contextVariables },
      identityPolicies: [{ name: 'policy', policy: { Version: '2012-10-17', Statement: statements } }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  if (result.resultType === 'error') throw new Error(`iam-simulate refused ${action} on ${resource}: ${JSON.stringify(result.errors)}`);
  return result.overallResult === 'Allowed';
}

export async function denies(statements: Statement[], action: string, resource: string, context: RequestContext = {}): Promise<boolean> {
  return !(await allows(statements, action, resource, context));
}
