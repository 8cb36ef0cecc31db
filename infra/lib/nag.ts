import { Stack, Token, Validations, type CfnElement } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';

/** cdk-nag acknowledgements, each with the exact finding id it silences. */

/** How cdk-nag renders an object ARN of this bucket in a finding id (the bucket's logical id). */
function bucketObjects(bucket: s3.IBucket, pattern: string): string {
  const cfn = bucket.node.defaultChild as CfnElement | undefined;
  if (!cfn) throw new Error('the bucket must be defined in this app (its logical id names the cdk-nag finding)');
  return `Resource::<${Stack.of(bucket).getLogicalId(cfn)}.Arn>/${pattern}`;
}

/**
 * cdk-nag 3 acknowledgements for the object-prefix wildcards of a role's (or a managed) policy: one per prefix,
 * with the finding id cdk-nag renders, so nothing else is silenced.
 */
export function acknowledgeObjectPrefixes(role: iam.Role | iam.ManagedPolicy, bucket: s3.IBucket, prefixes: readonly string[], reason: string): void {
  const policy = 'roleName' in role ? role.node.findChild('DefaultPolicy') : role;
  for (const prefix of prefixes) Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${bucketObjects(bucket, `${prefix}*`)}]`, reason });
}

/** The same for a host policy's object patterns under its group's prefixes. */
export function acknowledgeGroupObjects(policy: iam.ManagedPolicy, bucket: s3.IBucket, patterns: readonly string[]): void {
  for (const pattern of patterns) {
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[${bucketObjects(bucket, pattern)}]`,
      reason: `Objects under ${pattern}: their keys carry a host name and a time stamp (and a source) known only at run time, so the group's own prefix is the narrowest boundary.`,
    });
  }
}

/** The same for one object pattern of a role's policy, by its finding id. */
export function acknowledgeObjectPattern(role: iam.Role, bucket: s3.IBucket, pattern: string, reason: string): void {
  acknowledgeOnPolicy(role, `AwsSolutions-IAM5[${bucketObjects(bucket, pattern)}]`, reason);
}

/** Region and account as cdk-nag writes them in a finding's id: the pseudo parameter, or the stack's explicit env. */
export function nagEnv(scope: Construct): { region: string; account: string } {
  const stack = Stack.of(scope);
  return { region: Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region, account: Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account };
}

export function acknowledgeOnPolicy(role: iam.Role, id: string, reason: string): void {
  Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({ id, reason });
}
