import { Stack, Token, Validations, type CfnElement } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';

/** cdk-nag acknowledgements, each with the exact finding id it silences. */

/**
 * cdk-nag 3 acknowledgements for the object-prefix wildcards of a role's policy: one per prefix,
 * with the finding id cdk-nag renders (the bucket's logical id), so nothing else is silenced.
 */
export function acknowledgeObjectPrefixes(role: iam.Role, bucket: s3.IBucket, prefixes: readonly string[], reason: string): void {
  const cfn = bucket.node.defaultChild as CfnElement | undefined;
  if (!cfn) throw new Error('the bucket must be defined in this app (its logical id names the cdk-nag finding)');
  const policy = role.node.findChild('DefaultPolicy');
  for (const prefix of prefixes) {
    Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[Resource::<${Stack.of(bucket).getLogicalId(cfn)}.Arn>/${prefix}*]`, reason });
  }
}

/** Region and account as cdk-nag writes them in a finding's id: the pseudo parameter, or the stack's explicit env. */
export function nagEnv(scope: Construct): { region: string; account: string } {
  const stack = Stack.of(scope);
  return { region: Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region, account: Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account };
}

export function acknowledgeOnPolicy(role: iam.Role, id: string, reason: string): void {
  Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({ id, reason });
}
