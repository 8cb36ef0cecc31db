import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ReplicaVault, type ReplicaVaultProps } from './replica-vault';

export interface ColdsealReplicaStackProps extends StackProps {
  readonly replica: ReplicaVaultProps;
}

/**
 * The offsite half of a deployment, deployed into the replica's region (and account): the replica
 * vault and the outputs an operator needs to restore from it when the primary is gone.
 */
export class ColdsealReplicaStack extends Stack {
  readonly vault: ReplicaVault;

  constructor(scope: Construct, id: string, props: ColdsealReplicaStackProps) {
    super(scope, id, props);
    this.vault = new ReplicaVault(this, 'ReplicaVault', props.replica);
    new CfnOutput(this, 'ReplicaBucketName', { value: this.vault.bucket.bucketName, description: 'Bucket holding the offsite replicas (coldseal restore --replica)' });
    new CfnOutput(this, 'ReplicaReaderPolicyArn', { value: this.vault.readerPolicy.managedPolicyArn, description: 'Managed policy with what a restore from the replica needs: attach it to the restoring role or user of this account' });
    new CfnOutput(this, 'ReplicaKeyArn', { value: this.vault.key.keyArn, description: 'KMS key of the replicas: restoring needs kms:Decrypt on it' });
    new CfnOutput(this, 'RestoreFromReplica', {
      description: 'Restore without the primary (credentials of this account; add --group/--source/--target as usual)',
      value: `coldseal restore --replica --replica-bucket ${this.vault.bucket.bucketName} --replica-region ${this.region} --config <agent config file>`,
    });
  }
}
