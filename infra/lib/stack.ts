import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { AGENT_DOCUMENT_VERSION } from '../../format/parameters';
import { Coldseal } from './coldseal';
import type { ColdsealProps } from './settings';

export interface ColdsealStackProps extends StackProps {
  readonly coldseal: ColdsealProps;
}

/** The default deployment: the Coldseal construct and the outputs an operator needs next. */
export class ColdsealStack extends Stack {
  readonly coldseal: Coldseal;

  constructor(scope: Construct, id: string, props: ColdsealStackProps) {
    super(scope, id, props);
    this.coldseal = new Coldseal(this, 'Coldseal', props.coldseal);
    const c = this.coldseal;
    const ids = new Map<string, string>();
    for (const group of c.groups) {
      const other = ids.get(outputId(group.name));
      if (other) throw new Error(`ColdsealStack props.coldseal.groups: "${other}" and "${group.name}" would share output names; rename one`);
      ids.set(outputId(group.name), group.name);
    }

    new CfnOutput(this, 'DataBucketName', { value: c.bucket.bucketName, description: 'Bucket holding the backups' });
    new CfnOutput(this, 'AlertTopicArn', { value: c.alertTopic.topicArn, description: 'SNS topic every alert goes to' });
    new CfnOutput(this, 'AgentDocumentName', { value: c.document.ref, description: 'SSM Command document that runs the agent' });
    new CfnOutput(this, 'CommandLogGroupName', { value: c.commandLogGroup.logGroupName, description: 'CloudWatch log group of the agent runs' });
    for (const group of c.groups) {
      const id = outputId(group.name);
      new CfnOutput(this, `InstancePolicyArn${id}`, {
        value: group.instancePolicy.managedPolicyArn,
        description: `Attach to the roles of the hosts of group ${group.name}`,
      });
      const profile = c.hostAccess.get(group.name)?.instanceProfile;
      if (profile) {
        new CfnOutput(this, `InstanceProfileName${id}`, { value: profile.instanceProfileName, description: `Ready instance profile for new EC2 hosts of group ${group.name}` });
      }
      new CfnOutput(this, `BackupCommand${id}`, {
        description: `Back up group ${group.name} now (add --parameters tier=weekly or sources=a,b to narrow it)`,
        value: [
          'aws ssm send-command',
          `--region ${this.region}`,
          `--document-name ${c.document.ref}`,
          `--document-version '${AGENT_DOCUMENT_VERSION}'`,
          `--targets Key=tag:${c.hostTagKey},Values=${group.name}`,
          `--parameters group=${group.name}`,
          `--cloud-watch-output-config CloudWatchOutputEnabled=true,CloudWatchLogGroupName=${c.commandLogGroup.logGroupName}`,
          '--comment "coldseal backup by hand"',
        ].join(' '),
      });
    }
    if (c.drillAccess) {
      new CfnOutput(this, 'DrillPolicyArn', { value: c.drillAccess.policy.managedPolicyArn, description: 'Attach to the drill host role, next to its group policy' });
    }
  }
}

/** Output ids are alphanumeric; group names may hold "-" and "_". */
function outputId(group: string): string {
  return group
    .split(/[-_]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
