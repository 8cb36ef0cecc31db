import { RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { checkNameProp } from './settings';

export interface GroupSigningKeyProps {
  /** The group whose signing-key SecureString this key encrypts. */
  readonly group: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The KMS key of one group's signing-key SecureString. AmazonSSMManagedInstanceCore, which
 * nearly every host role carries, allows ssm:GetParameter on every parameter, and the AWS managed
 * aws/ssm key lets any principal of the account decrypt through SSM: with aws/ssm, a host of
 * group A reads group B's signing key. This key's policy delegates to IAM only (the account root
 * statement) and only the group's HostAccess policy grants kms:Decrypt on it, so another group's
 * host is refused by KMS even though SSM would hand out the parameter.
 * https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html
 */
export class GroupSigningKey extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: GroupSigningKeyProps) {
    super(scope, id);
    checkNameProp('GroupSigningKey props.group', 'group', props.group);
    this.key = new kms.Key(this, 'Key', {
      description: `coldseal: encrypts the signing-key parameter of group ${props.group}; only that group's hosts may decrypt`,
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
