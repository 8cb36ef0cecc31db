import { App, Validations, type AppProps, type IReusableStackSynthesizer } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONTEXT_KEY, resolveContext } from './config';
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
  /** Use this bundle instead of building the agent. */
  readonly agentBundle?: string;
  /** Run cdk-nag AwsSolutions checks at synth. @default true */
  readonly nag?: boolean;
}

/** The default app: one ColdsealStack from the `coldseal` context, checked by cdk-nag. */
export async function buildApp(options: BuildAppOptions = {}): Promise<{ app: App; stack: ColdsealStack }> {
  const app = new App({ ...options.appProps, defaultStackSynthesizer: options.synthesizer ?? options.appProps?.defaultStackSynthesizer });
  const raw = options.context !== undefined ? options.context : app.node.tryGetContext(CONTEXT_KEY);
  const props = await resolveContext(typeof raw === 'string' ? JSON.parse(raw) : raw, options.baseDir ?? process.cwd());
  const stack = new ColdsealStack(app, options.stackName ?? 'Coldseal', {
    description: 'coldseal: encrypted, signed, verified backups to S3 and Glacier',
    coldseal: { ...props, agentBundle: options.agentBundle },
  });
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
