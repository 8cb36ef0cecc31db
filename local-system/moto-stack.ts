/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefaultStackSynthesizer } from 'aws-cdk-lib';
import { CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, DescribeStacksCommand, type Stack as CfnStack } from '@aws-sdk/client-cloudformation';
import {
  CreateBucketCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLockConfigurationCommand,
  S3Client,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import { GetDocumentCommand, GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { AgentExecutable } from '../format/agent-executables';
import { ADVANCED_PARAMETER_BYTES, STANDARD_PARAMETER_BYTES } from '../format/config-parameter';
import { buildApp } from '../infra/lib/build-app';
import { substituteParameters } from '../infra/lib/agent-script';
import type { MotoTarget } from './moto-target';

export { defaultMotoTarget, motoTarget, type MotoTarget } from './moto-target';

/**
 * The synthesized stack deployed into moto_server, the way `cdk deploy` would deploy it into an
 * account: assets published, template created through CloudFormation, and the stack's own SSM
 * document script run on this machine as SSM Run Command would run it on a host.
 *
 * Used by the infra deploy test, the end-to-end test and `npm run demo`: one implementation of
 * "what moto can and cannot deploy".
 */

/**
 * Types in the stack that moto 5.2's CloudFormation does not implement (it logs a warning and
 * skips them). The deploy test fails on a skipped type not listed here, naming it.
 */
export const MOTO_GAPS = ['AWS::S3::BucketPolicy', 'AWS::SNS::TopicPolicy', 'AWS::SNS::Subscription', 'AWS::Scheduler::Schedule', 'AWS::CloudWatch::Alarm', 'AWS::Lambda::EventInvokeConfig', 'AWS::SQS::QueuePolicy'];

export interface DeployedStack {
  readonly stackName: string;
  /** The template as synthesized (before anything was taken out for moto). */
  readonly template: any;
  readonly stack: CfnStack;
  /** Logical id → physical id of every resource moto created. */
  readonly physical: ReadonlyMap<string, string>;
  /** Resources taken out before deploying (logical id → type): moto lacks them or something they refer to. */
  readonly pruned: ReadonlyMap<string, string>;
  readonly bucket: string;
  /** A stack output's value; throws naming the output when the stack has none of that name. */
  output(key: string): string;
}

export interface DeployOptions {
  readonly target: MotoTarget;
  /** The `coldseal` context (as in cdk.json). */
  readonly context: unknown;
  /** Where relative key paths in the context are resolved from. */
  readonly baseDir: string;
  /** The agent executables the stack ships (scripts/build-agent.ts buildAgentExecutablesSync). */
  readonly agentExecutables: readonly AgentExecutable[];
  readonly stackName: string;
}

/** Synthesizes the stack and deploys it into moto; resolves once the stack is CREATE_COMPLETE. */
export async function deployToMoto(options: DeployOptions): Promise<DeployedStack> {
  const { target } = options;
  const s3 = new S3Client(target.clientConfig);
  const { app, stack: cdkStack } = await buildApp({
    context: options.context,
    baseDir: options.baseDir,
    agentExecutables: options.agentExecutables,
    stackName: options.stackName,
    appProps: { builtinCloudFormationValidation: false },
    // What `cdk bootstrap` makes, minus the bootstrap version check (moto has no such parameter).
    synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
  });
  const assembly = app.synth();
  const template = assembly.getStackByName(cdkStack.stackName).template;

  // Publish the file assets where the template expects them, as `cdk deploy` does.
  const assets = JSON.parse(readFileSync(join(assembly.directory, `${cdkStack.artifactId}.assets.json`), 'utf8'));
  const fill = (s: string) => s.replace('${AWS::AccountId}', target.accountId).replace('${AWS::Region}', target.clientConfig.region);
  for (const file of Object.values(assets.files) as any[]) {
    for (const destination of Object.values(file.destinations) as any[]) {
      const assetBucket = fill(destination.bucketName);
      await s3.send(new CreateBucketCommand({ Bucket: assetBucket })).catch((error: Error) => {
        if (!/BucketAlready/.test(error.name)) throw error;
      });
      await s3.send(new PutObjectCommand({ Bucket: assetBucket, Key: fill(destination.objectKey), Body: assetBody(join(assembly.directory, file.source.path), file.source.packaging) }));
    }
  }

  // CloudFormation in moto answers on a "localhost" endpoint only.
  const cfn = new CloudFormationClient({ ...target.clientConfig, endpoint: target.clientConfig.endpoint.replace('127.0.0.1', 'localhost') });
  const deployable = pruneForMoto(template);
  await cfn.send(
    new CreateStackCommand({
      StackName: cdkStack.stackName,
      TemplateBody: JSON.stringify(deployable.template),
      Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'],
    }),
  );
  let stack: CfnStack;
  for (let i = 0; ; i++) {
    stack = (await cfn.send(new DescribeStacksCommand({ StackName: cdkStack.stackName }))).Stacks![0];
    if (!stack.StackStatus!.endsWith('_IN_PROGRESS')) break;
    if (i > 120) throw new Error(`stack ${cdkStack.stackName} still ${stack.StackStatus} in moto after 60 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  if (stack.StackStatus !== 'CREATE_COMPLETE') throw new Error(`stack ${cdkStack.stackName} is ${stack.StackStatus} in moto: ${stack.StackStatusReason ?? 'no reason given'}`);
  const resources = (await cfn.send(new DescribeStackResourcesCommand({ StackName: cdkStack.stackName }))).StackResources ?? [];
  const physical = new Map(resources.map((r) => [r.LogicalResourceId!, r.PhysicalResourceId!]));
  const output = (key: string): string => {
    const value = stack.Outputs?.find((o) => o.OutputKey === key)?.OutputValue;
    if (!value) throw new Error(`stack ${cdkStack.stackName} has no output ${key} (outputs: ${(stack.Outputs ?? []).map((o) => o.OutputKey).join(', ')})`);
    return value;
  };
  const bucket = output('DataBucketName');
  await checkParameterSizes(new SSMClient(target.clientConfig), template, physical);
  await completeBucketSettings(s3, template, physical, bucket);
  return { stackName: cdkStack.stackName, template, stack, physical, pruned: deployable.pruned, bucket, output };
}

/**
 * moto skips a resource type it does not implement, but refuses a template in which anything
 * references one (Fn::GetAtt of an alarm, say). Those resources are taken out, with whatever
 * refers to them, and listed: the template tests check them instead.
 */
export function pruneForMoto(original: any): { template: any; pruned: Map<string, string> } {
  const copy = JSON.parse(JSON.stringify(original));
  const pruned = new Map<string, string>();
  for (const [id, r] of Object.entries(copy.Resources as Record<string, any>)) if (MOTO_GAPS.includes(r.Type)) pruned.set(id, r.Type);
  const refersToPruned = (value: unknown): boolean => {
    if (Array.isArray(value)) return value.some(refersToPruned);
    if (typeof value === 'string') return [...value.matchAll(/\$\{([A-Za-z0-9]+)[.}]/g)].some((m) => pruned.has(m[1]));
    if (value && typeof value === 'object') {
      const obj = value as Record<string, any>;
      if (typeof obj.Ref === 'string' && pruned.has(obj.Ref)) return true;
      if (Array.isArray(obj['Fn::GetAtt']) && pruned.has(obj['Fn::GetAtt'][0])) return true;
      return Object.values(obj).some(refersToPruned);
    }
    return false;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (const [id, r] of Object.entries(copy.Resources as Record<string, any>)) {
      if (pruned.has(id)) continue;
      const dependsOn = [r.DependsOn ?? []].flat() as string[];
      if (refersToPruned(r.Properties) || dependsOn.some((d) => pruned.has(d))) {
        pruned.set(id, r.Type);
        changed = true;
      }
    }
  }
  for (const id of pruned.keys()) delete copy.Resources[id];
  for (const [key, output] of Object.entries(copy.Outputs ?? {})) if (refersToPruned(output)) delete copy.Outputs[key];
  return { template: copy, pruned };
}

/** A file asset as `cdk deploy` uploads it: the file itself, or a directory zipped (Lambda code). */
function assetBody(path: string, packaging: string | undefined): Buffer {
  if (packaging !== 'zip') return readFileSync(path);
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-asset-'));
  try {
    const zip = join(dir, 'asset.zip');
    execFileSync('zip', ['-q', '-r', zip, '.'], { cwd: path });
    return readFileSync(zip);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What PutParameter refuses and moto accepts: a value over its tier's size (Standard 4 KB,
 * Advanced 8 KB: https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html;
 * Intelligent-Tiering takes Advanced when the value needs it: https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-default-tier.html).
 * On AWS the stack would fail to create; here the deploy fails the same way, with the resolved value.
 */
async function checkParameterSizes(ssm: SSMClient, template: any, physical: ReadonlyMap<string, string>): Promise<void> {
  const limits: Record<string, number> = { Standard: STANDARD_PARAMETER_BYTES, Advanced: ADVANCED_PARAMETER_BYTES, 'Intelligent-Tiering': ADVANCED_PARAMETER_BYTES };
  const problems: string[] = [];
  for (const [id, r] of Object.entries(template.Resources as Record<string, any>)) {
    if (r.Type !== 'AWS::SSM::Parameter' || !physical.has(id)) continue;
    const tier: string = r.Properties.Tier ?? 'Standard';
    const value = (await ssm.send(new GetParameterCommand({ Name: physical.get(id) }))).Parameter!.Value!;
    const bytes = Buffer.byteLength(value);
    if (!(tier in limits)) problems.push(`${id}: tier ${tier} (not a tier PutParameter knows)`);
    else if (bytes > limits[tier]) problems.push(`${id} (${physical.get(id)}): ${bytes} bytes in a ${tier} parameter, which holds at most ${limits[tier]}`);
  }
  if (problems.length > 0) throw new Error(`PutParameter would refuse (moto does not check sizes): ${problems.join('; ')}`);
}

export function logicalIdOfType(template: any, type: string, predicate: (r: any) => boolean = () => true): string {
  const found = Object.entries(template.Resources as Record<string, any>).find(([, r]) => r.Type === type && predicate(r));
  if (!found) throw new Error(`no ${type} in the template`);
  return found[0];
}

/**
 * The data bucket properties moto's CloudFormation ignores (it applies only encryption and tags),
 * applied from the template. Not the bucket policy: moto evaluates bucket policies without the
 * request's condition values, so every conditional Deny (TLS-only, encryption) would match every
 * request; the template tests check the policy instead.
 */
async function completeBucketSettings(s3: S3Client, template: any, physical: ReadonlyMap<string, string>, bucket: string): Promise<void> {
  const id = logicalIdOfType(template, 'AWS::S3::Bucket', (r) => r.Properties.ObjectLockEnabled === true);
  if (physical.get(id) !== bucket) throw new Error(`the DataBucketName output (${bucket}) is not the Object Lock bucket ${id} (${physical.get(id)})`);
  const properties = template.Resources[id].Properties;
  await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: properties.VersioningConfiguration.Status } }));
  await s3.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }));
  const rules: LifecycleRule[] = properties.LifecycleConfiguration.Rules.map((rule: any) => ({
    ID: rule.Id,
    Status: rule.Status,
    Filter: { Prefix: rule.Prefix ?? '' },
    ...(rule.ExpirationInDays ? { Expiration: { Days: rule.ExpirationInDays } } : {}),
    ...(rule.ExpiredObjectDeleteMarker ? { Expiration: { ExpiredObjectDeleteMarker: true } } : {}),
    ...(rule.Transitions ? { Transitions: rule.Transitions.map((t: any) => ({ Days: t.TransitionInDays, StorageClass: t.StorageClass })) } : {}),
    ...(rule.NoncurrentVersionExpiration ? { NoncurrentVersionExpiration: { NoncurrentDays: rule.NoncurrentVersionExpiration.NoncurrentDays } } : {}),
    ...(rule.AbortIncompleteMultipartUpload ? { AbortIncompleteMultipartUpload: rule.AbortIncompleteMultipartUpload } : {}),
  }));
  await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: rules } }));
}

export interface CommandDocument {
  readonly schemaVersion: string;
  readonly documentType: string;
  readonly parameters: Record<string, { default?: string; allowedPattern?: string; allowedValues?: string[] }>;
  /** The aws:runShellScript lines of the first step, placeholders not yet substituted. */
  readonly runCommand: string[];
}

/** The deployed SSM document as SSM would run it. */
export async function readCommandDocument(ssm: SSMClient, name: string): Promise<CommandDocument> {
  const document = await ssm.send(new GetDocumentCommand({ Name: name }));
  if (document.DocumentFormat !== 'JSON' || document.DocumentType !== 'Command') throw new Error(`document ${name} is a ${document.DocumentFormat} ${document.DocumentType} document, not a JSON Command document`);
  // AWS returns the content as JSON text; moto's CloudFormation keeps the template's object and returns it as is.
  const raw = document.Content as unknown;
  const content = typeof raw === 'string' ? JSON.parse(raw) : (raw as any);
  return { schemaVersion: content.schemaVersion, documentType: document.DocumentType, parameters: content.parameters, runCommand: content.mainSteps[0].inputs.runCommand };
}

/**
 * The script with the parameters substituted as SSM does: each value checked against the
 * parameter's allowedPattern / allowedValues first (SSM refuses the command otherwise), defaults
 * filled in.
 */
export function documentScript(document: CommandDocument, values: Readonly<Record<string, string>>): string {
  const defaults = Object.fromEntries(Object.entries(document.parameters).filter(([, p]) => p.default !== undefined).map(([k, p]) => [k, p.default!]));
  for (const [key, value] of Object.entries(values)) {
    const spec = document.parameters[key];
    if (!spec) throw new Error(`the document has no parameter "${key}" (it has ${Object.keys(document.parameters).join(', ')})`);
    if (spec.allowedPattern && !new RegExp(spec.allowedPattern).test(value)) throw new Error(`SSM would refuse ${key}="${value}": it does not match ${spec.allowedPattern}`);
    if (spec.allowedValues && !spec.allowedValues.includes(value)) throw new Error(`SSM would refuse ${key}="${value}": allowed values are ${spec.allowedValues.join(', ')}`);
  }
  return substituteParameters(document.runCommand.join('\n'), { ...defaults, ...values });
}

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runProcess(command: string, args: string[], options: { env: Record<string, string>; cwd: string; stdin?: string }): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  });
}

/** The environment of a host under SSM, pointed at moto: credentials, and the endpoint override the AWS CLI and SDK read. */
export function hostEnv(target: MotoTarget, home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    ...target.env,
    AWS_ENDPOINT_URL: target.clientConfig.endpoint,
    COLDSEAL_HOME: join(home, 'coldseal-home'),
    ...extra,
  };
}

/** Runs the document's script with /bin/sh, as aws:runShellScript does, in `home`. */
export async function runDocument(target: MotoTarget, document: CommandDocument, values: Readonly<Record<string, string>>, home: string, env: Record<string, string> = {}): Promise<ProcessResult> {
  const script = join(home, `run-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(script, documentScript(document, values));
  return runProcess('/bin/sh', [script], { env: hostEnv(target, home, env), cwd: home });
}
