import { Stack, Token } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { deploymentInfoSchema, deploymentParameter, type DeploymentInfo } from '../../format/parameters';

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
    const value = stack.toJsonString(info);
    // Tokens (the document's and log group's names) resolve to at most a few hundred characters.
    const size = Token.isUnresolved(value) ? value.length + 512 : Buffer.byteLength(value);
    if (size > 8192) throw new Error(`DeploymentInfoParameter: ${this.parameterName} would hold ${size} bytes, over the 8 KB limit of a parameter (too many groups?)`);
    this.parameter = new ssm.StringParameter(this, 'Parameter', {
      parameterName: this.parameterName,
      stringValue: value,
      description: 'coldseal deployment: SSM document, host tag keys and groups, for coldseal trigger',
      tier: size > 4096 ? ssm.ParameterTier.ADVANCED : ssm.ParameterTier.STANDARD,
    });
  }
}

/** The CLI parses this with the same schema; values only known at deploy time get stand-ins here. */
function check(info: DeploymentInfo): void {
  const concrete = JSON.parse(JSON.stringify(info, (_key, value: unknown) => (typeof value === 'string' && Token.isUnresolved(value) ? 'deploy-time-value' : value))) as unknown;
  const parsed = deploymentInfoSchema.safeParse(concrete);
  if (!parsed.success) throw new Error(`DeploymentInfoParameter: the deployment information would be invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}
