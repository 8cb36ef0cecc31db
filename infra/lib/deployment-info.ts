import { Stack, Token } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { ADVANCED_PARAMETER_BYTES } from '../../format/config-parameter';
import { deploymentInfoSchema, deploymentParameter, type DeploymentInfo } from '../../format/parameters';
import { LONGEST, regionLongest, resolvedJsonBytesAtMost } from './parameter-size';

export interface DeploymentInfoProps {
  /** The parameter prefix of the deployment (format/parameters.ts). */
  readonly parameterPrefix: string;
  /** What the operator's CLI needs to run the agent document by hand, as the schedules do. */
  readonly info: Omit<DeploymentInfo, 'formatVersion' | 'region'>;
}

/**
 * One SSM String parameter that describes the deployment (format/parameters.ts
 * deploymentParameter): `coldseal trigger` reads it, so an operator needs no names copied from
 * the stack outputs. It holds names only, nothing secret.
 */
export class DeploymentInfoParameter extends Construct {
  readonly parameter: ssm.StringParameter;
  readonly parameterName: string;

  constructor(scope: Construct, id: string, props: DeploymentInfoProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const info: DeploymentInfo = { formatVersion: 1, region: stack.region, ...props.info };
    check(info);
    this.parameterName = deploymentParameter(props.parameterPrefix);
    // Sized with each deploy-time value at its longest (the document's and log group's generated
    // names, the signing keys' ARNs, the replica's names): toJsonString's token says nothing.
    const longest = new Map<string, number>([
      [info.documentName, LONGEST.documentName],
      ...(info.commandLogGroup ? [[info.commandLogGroup, LONGEST.logGroupName] as [string, number]] : []),
      ...Object.values(info.signingKeys ?? {}).map((arn): [string, number] => [arn, LONGEST.kmsKeyArn]),
      ...(info.replica ? [[info.replica.bucket, LONGEST.bucketName], [info.replica.region, LONGEST.region], ...(info.replica.account ? [[info.replica.account, 12]] : [])] as [string, number][] : []),
      ...regionLongest(stack),
    ]);
    const size = resolvedJsonBytesAtMost(info, longest, 'DeploymentInfoParameter');
    if (size > ADVANCED_PARAMETER_BYTES) throw new Error(`DeploymentInfoParameter: ${this.parameterName} could hold ${size} bytes once deployed, over the ${ADVANCED_PARAMETER_BYTES} of any parameter (too many groups? deploy them as two stacks with their own parameter prefixes)`);
    this.parameter = new ssm.StringParameter(this, 'Parameter', {
      parameterName: this.parameterName,
      stringValue: stack.toJsonString(info),
      description: 'coldseal deployment: SSM document, host tag keys and groups, for coldseal trigger',
      // Advanced only when the value needs it, and never a downgrade when groups go away, which AWS
      // refuses (https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-default-tier.html,
      // https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html).
      tier: ssm.ParameterTier.INTELLIGENT_TIERING,
    });
  }
}

/** The CLI parses this with the same schema; values only known at deploy time get stand-ins here. */
function check(info: DeploymentInfo): void {
  const concrete = JSON.parse(JSON.stringify(info, (_key, value: unknown) => (typeof value === 'string' && Token.isUnresolved(value) ? 'deploy-time-value' : value))) as unknown;
  const parsed = deploymentInfoSchema.safeParse(concrete);
  if (!parsed.success) throw new Error(`DeploymentInfoParameter: the deployment information would be invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}
