/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { buildApp } from '../../infra/lib/build-app';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { FAKE, type Template } from './template-tools';

/** The primary is where template-tools' stand-ins say (so its intrinsics render to the right ARNs). */
export const PRIMARY = { account: FAKE.account, region: FAKE.region };
export const REPLICA = { account: '222233334444', region: 'eu-west-3' };

/** Synthesizes the two-group context with a replica (cross-account unless sameAccount), cdk-nag on. */
export async function synthWithReplica(replica: Record<string, unknown> = {}, sameAccount = false): Promise<{ primary: Template; replica: Template; dependsOnReplica: boolean }> {
  const context = twoGroupContext();
  context.replica = { region: REPLICA.region, ...(sameAccount ? {} : { account: REPLICA.account }), ...replica };
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false }, env: PRIMARY });
  const assembly = built.app.synth();
  return {
    primary: assembly.getStackByName(built.stack.stackName).template as Template,
    replica: assembly.getStackByName(built.replicaStack!.stackName).template as Template,
    dependsOnReplica: built.stack.dependencies.includes(built.replicaStack!),
  };
}

/**
 * The replica bucket has an explicit name: its Ref and Arn are that name (template-tools would use
 * the logical id), and the replica stack's pseudo parameters are the replica's own.
 */
export function concreteReplica(template: Template, account: string): Template {
  const [bucketId, bucket] = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::S3::Bucket' && r.Properties?.ObjectLockEnabled)!;
  const name = resolveName(bucket.Properties.BucketName, account);
  const replace = (value: any): any => {
    if (Array.isArray(value)) return value.map(replace);
    if (value && typeof value === 'object') {
      if (value.Ref === bucketId) return name;
      if (value.Ref === 'AWS::Region') return REPLICA.region;
      if (value.Ref === 'AWS::AccountId') return account;
      if (Array.isArray(value['Fn::GetAtt']) && value['Fn::GetAtt'][0] === bucketId && value['Fn::GetAtt'][1] === 'Arn') return `arn:aws:s3:::${name}`;
      if (Array.isArray(value['Fn::GetAtt']) && template.Resources[value['Fn::GetAtt'][0]]?.Type === 'AWS::KMS::Key' && value['Fn::GetAtt'][1] === 'Arn') {
        return `arn:aws:kms:${REPLICA.region}:${account}:key/${value['Fn::GetAtt'][0]}`;
      }
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replace(v)]));
    }
    return value;
  };
  return replace(template) as Template;
}

function resolveName(value: any, account: string): string {
  if (typeof value === 'string') return value;
  if (value?.['Fn::Join']) return (value['Fn::Join'][1] as any[]).map((p) => (typeof p === 'string' ? p : p.Ref === 'AWS::AccountId' ? account : p.Ref === 'AWS::Region' ? REPLICA.region : '?')).join('');
  throw new Error(`cannot resolve bucket name ${JSON.stringify(value)}`);
}
