/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates and contexts are untyped JSON */
/**
 * Small helpers to read a synthesized template the way CloudFormation would resolve it, with
 * stand-in values for what only a deployment knows, and to evaluate IAM statements against a
 * request (Allow/Deny by action, resource pattern and the condition operators the stack uses).
 */
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
      return ref;
    }
    if ('Fn::GetAtt' in obj) {
      const [id, attribute] = obj['Fn::GetAtt'] as [string, string];
      const type = template.Resources[id]?.Type;
      if (attribute !== 'Arn') return `${id}.${attribute}`;
      if (type === 'AWS::S3::Bucket') return `arn:aws:s3:::${bucketNameOf(id)}`;
      if (type === 'AWS::KMS::Key') return `arn:aws:kms:${FAKE.region}:${FAKE.account}:key/${id}`;
      if (type === 'AWS::Logs::LogGroup') return `arn:aws:logs:${FAKE.region}:${FAKE.account}:log-group:${id}:*`;
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

function asList<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function wildcard(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(value);
}

export type RequestContext = Record<string, string | boolean | undefined>;

function conditionHolds(condition: Statement['Condition'], context: RequestContext): boolean {
  for (const [operator, entries] of Object.entries(condition ?? {})) {
    for (const [key, expected] of Object.entries(entries)) {
      const actual = context[key];
      const values = asList(expected);
      switch (operator) {
        case 'Null':
          if ((actual === undefined) !== (values[0] === 'true')) return false;
          break;
        case 'Bool':
          if (actual === undefined || String(actual) !== values[0]) return false;
          break;
        case 'StringEquals':
          if (actual === undefined || !values.includes(String(actual))) return false;
          break;
        case 'StringLike':
          if (actual === undefined || !values.some((v) => wildcard(v, String(actual)))) return false;
          break;
        default:
          throw new Error(`condition operator ${operator} is not modelled by this test helper`);
      }
    }
  }
  return true;
}

/** Identity-policy evaluation: allowed when some Allow matches and no Deny does. */
export function allows(statements: Statement[], action: string, resource: string, context: RequestContext = {}): boolean {
  const matches = (s: Statement) =>
    asList(s.Action).some((a) => wildcard(a, action)) && asList(s.Resource).some((r) => wildcard(r, resource)) && conditionHolds(s.Condition, context);
  if (statements.some((s) => s.Effect === 'Deny' && matches(s))) return false;
  return statements.some((s) => s.Effect === 'Allow' && matches(s));
}
