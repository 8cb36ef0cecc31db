import { App, Aws, Validations, type AppProps, type IReusableStackSynthesizer } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { AgentExecutable } from '../../format/agent-executables';
import { deploymentNameOf } from '../../format/replica';
import { resolveContext } from './config';
import { ColdsealReplicaStack } from './replica-stack';
import { ColdsealConfigError, CONTEXT_KEY, withAgentExecutables } from './settings';
import { ColdsealStack } from './stack';

export interface BuildAppOptions {
  /** The `coldseal` context; by default read from the app's context (cdk.json). */
  readonly context?: unknown;
  /** Directory relative key paths are resolved from. @default process.cwd() */
  readonly baseDir?: string;
  readonly appProps?: AppProps;
  /** @default 'Coldseal' */
  readonly stackName?: string;
  readonly synthesizer?: IReusableStackSynthesizer;
  /**
   * The agent executables, or what builds them (called once the context has been checked, as
   * bin/cdk-entry.ts passes scripts/build-agent.ts's buildAgentExecutablesSync).
   */
  readonly agentExecutables: readonly AgentExecutable[] | (() => readonly AgentExecutable[]);
  /** Run cdk-nag AwsSolutions checks at synth. @default true */
  readonly nag?: boolean;
  /**
   * Account and region of the primary stack. Only used with a replica (which needs the primary's
   * region); without one the stack stays environment-agnostic.
   * @default - CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION, which the cdk CLI sets from the credentials
   */
  readonly env?: { readonly account?: string; readonly region?: string };
}

/** The default app: one ColdsealStack from the `coldseal` context, checked by cdk-nag. */
export async function buildApp(options: BuildAppOptions): Promise<{ app: App; stack: ColdsealStack; replicaStack?: ColdsealReplicaStack }> {
  const app = new App({ ...options.appProps, defaultStackSynthesizer: options.synthesizer ?? options.appProps?.defaultStackSynthesizer });
  const raw = options.context !== undefined ? options.context : app.node.tryGetContext(CONTEXT_KEY);
  const primary = options.env ?? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  const props = await resolveContext(typeof raw === 'string' ? JSON.parse(raw) : raw, options.baseDir ?? process.cwd(), primary);
  const stackName = options.stackName ?? 'Coldseal';
  let replicaStack: ColdsealReplicaStack | undefined;
  let env: { account?: string; region?: string } | undefined;
  if (props.replica) {
    const replica = props.replica;
    env = primary;
    if (!env.region) {
      throw new ColdsealConfigError(`${CONTEXT_KEY}.replica: the primary's region is not known, so the replica's cannot be placed: run cdk with a region (AWS_REGION or a profile that has one)`);
    }
    if (replica.account && !env.account) {
      throw new ColdsealConfigError(`${CONTEXT_KEY}.replica.account: the primary's account is not known, and the replica's policies must name it: run cdk with the primary account's credentials`);
    }
    replicaStack = new ColdsealReplicaStack(app, `${stackName}Replica`, {
      description: 'coldseal: the offsite replica of the backups (another region, maybe another account)',
      env: { account: replica.account ?? env.account, region: replica.region },
      replica: {
        name: deploymentNameOf(stackName),
        primaryAccount: env.account ?? Aws.ACCOUNT_ID,
        primaryRegion: env.region,
        retention: props.retention,
        archiveAfterDays: replica.archiveAfterDays,
      },
    });
  }
  const stack = new ColdsealStack(app, stackName, {
    description: 'coldseal: encrypted, signed, verified backups to S3 and Glacier',
    ...(env ? { env } : {}),
    coldseal: withAgentExecutables(props, typeof options.agentExecutables === 'function' ? options.agentExecutables() : options.agentExecutables),
  });
  // The replica must exist before the primary's replication rule points at it.
  if (replicaStack) stack.addStackDependency(replicaStack);
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, ...(replicaStack ? { replicaStack } : {}) };
}
