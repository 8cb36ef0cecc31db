/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DefaultStackSynthesizer } from 'aws-cdk-lib';
import { CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, DescribeStacksCommand, type Stack as CfnStack } from '@aws-sdk/client-cloudformation';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsCommand,
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
 * document run on this machine as the SSM Agent would run it on a host (runDocument: its
 * download steps fetch from the deployed assets with the host's credentials, then its script).
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
  /** The agent executables the stack ships (see copiedExecutables). */
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
 * The build's executables with their gzip copies (what the stack uploads) copied into `dir`, so
 * that a build elsewhere cannot change them under a deploy; the stack checks each copy against
 * its SHA-256s when it is synthesized.
 */
export function copiedExecutables(executables: readonly AgentExecutable[], dir: string): AgentExecutable[] {
  return executables.map((e) => {
    const compressedPath = join(dir, basename(e.compressedPath));
    copyFileSync(e.compressedPath, compressedPath);
    return { ...e, compressedPath };
  });
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

/** A step of the document's mainSteps, as the SSM Agent receives it. */
export interface DocumentStep {
  readonly action: string;
  readonly name: string;
  readonly precondition?: Record<string, string[]>;
  /** The plugin's inputs, placeholders not yet substituted, and the shared ones (onFailure, onSuccess, finallyStep). */
  readonly inputs: Record<string, unknown>;
}

export interface CommandDocument {
  readonly schemaVersion: string;
  readonly documentType: string;
  readonly parameters: Record<string, { default?: string; allowedPattern?: string; allowedValues?: string[] }>;
  /** Every step, in the order the agent runs them. */
  readonly mainSteps: readonly DocumentStep[];
  /** The lines of the document's one aws:runShellScript step, placeholders not yet substituted. */
  readonly runCommand: string[];
}

/** The deployed SSM document as SSM would run it. */
export async function readCommandDocument(ssm: SSMClient, name: string): Promise<CommandDocument> {
  const document = await ssm.send(new GetDocumentCommand({ Name: name }));
  if (document.DocumentFormat !== 'JSON' || document.DocumentType !== 'Command') throw new Error(`document ${name} is a ${document.DocumentFormat} ${document.DocumentType} document, not a JSON Command document`);
  // AWS returns the content as JSON text; moto's CloudFormation keeps the template's object and returns it as is.
  const raw = document.Content as unknown;
  const content = typeof raw === 'string' ? JSON.parse(raw) : (raw as any);
  const mainSteps = content.mainSteps as DocumentStep[];
  const shell = mainSteps.filter((s) => s.action === 'aws:runShellScript');
  if (shell.length !== 1) throw new Error(`document ${name} has ${shell.length} aws:runShellScript steps (steps: ${mainSteps.map((s) => `${s.name} ${s.action}`).join(', ')}); the emulation expects one`);
  return { schemaVersion: content.schemaVersion, documentType: document.DocumentType, parameters: content.parameters, mainSteps, runCommand: shell[0].inputs.runCommand as string[] };
}

/**
 * The parameter values SSM substitutes: each value checked against the parameter's
 * allowedPattern / allowedValues first (SSM refuses the command otherwise), defaults filled in.
 */
function commandValues(document: CommandDocument, values: Readonly<Record<string, string>>): Record<string, string> {
  const defaults = Object.fromEntries(Object.entries(document.parameters).filter(([, p]) => p.default !== undefined).map(([k, p]) => [k, p.default!]));
  for (const [key, value] of Object.entries(values)) {
    const spec = document.parameters[key];
    if (!spec) throw new Error(`the document has no parameter "${key}" (it has ${Object.keys(document.parameters).join(', ')})`);
    if (spec.allowedPattern && !new RegExp(spec.allowedPattern).test(value)) throw new Error(`SSM would refuse ${key}="${value}": it does not match ${spec.allowedPattern}`);
    if (spec.allowedValues && !spec.allowedValues.includes(value)) throw new Error(`SSM would refuse ${key}="${value}": allowed values are ${spec.allowedValues.join(', ')}`);
  }
  return { ...defaults, ...values };
}

/** The shell step's script with the parameters substituted as SSM does (see commandValues). */
export function documentScript(document: CommandDocument, values: Readonly<Record<string, string>>): string {
  return substituteParameters(document.runCommand.join('\n'), commandValues(document, values));
}

/** A step's inputs with the parameters substituted: SSM substitutes {{ name }} in every step's inputs, not only in scripts. */
function substitutedInputs(step: DocumentStep, values: Readonly<Record<string, string>>): Record<string, unknown> {
  const substitute = (value: unknown): unknown =>
    typeof value === 'string' ? substituteParameters(value, values) : Array.isArray(value) ? value.map(substitute) : value;
  return Object.fromEntries(Object.entries(step.inputs).map(([k, v]) => [k, substitute(v)]));
}

/** The S3 object an aws:downloadContent step of sourceType S3 fetches, from its sourceInfo. */
export interface DownloadSource {
  /** The path as the step gives it. */
  readonly url: string;
  readonly bucket: string;
  readonly key: string;
}

/**
 * sourceInfo's path as the agent reads it (s3resource.go NewS3Resource / DownloadRemoteResource,
 * then s3util.ParseAmazonS3URL): trimmed, '+' taken as a space, path-style
 * https://s3.<region>.<suffix>/<bucket>/<key>. The stack writes only path-style URLs; any other
 * form is refused here rather than parsed half-way.
 */
export function downloadSource(sourceInfo: string): DownloadSource {
  const url = (JSON.parse(sourceInfo) as { path?: string }).path?.trim();
  if (!url) throw new Error(`aws:downloadContent sourceInfo ${sourceInfo} has no path ("S3 source path in SourceInfo must be specified", s3resource.go ValidateLocationInfo)`);
  const parsed = new URL(url.replace(/\+/g, '%20'));
  if (parsed.protocol !== 'https:' || !/^s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?$/.test(parsed.hostname)) {
    throw new Error(`aws:downloadContent path ${url} is not a path-style S3 URL (https://s3.<region>.amazonaws.com/<bucket>/<key>); the emulation reads no other form`);
  }
  const [, bucket, ...rest] = parsed.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  if (!bucket || !key) throw new Error(`aws:downloadContent path ${url} names no bucket and key`);
  return { url, bucket, key };
}

/** The one directory every aws:downloadContent step of the document writes into (the shell step reads its downloads there). */
export function downloadDirectory(document: CommandDocument): string {
  const dirs = new Set(document.mainSteps.filter((s) => s.action === 'aws:downloadContent').map((s) => dirname(String(s.inputs.destinationPath))));
  if (dirs.size !== 1) throw new Error(`the document's aws:downloadContent steps write into ${dirs.size === 0 ? 'no directory' : [...dirs].join(', ')}; expected one directory`);
  return [...dirs][0];
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

export interface RunDocumentOptions {
  /**
   * Where the host's file system is, for the absolute destinationPath of an aws:downloadContent
   * step: the agent writes to the path as given (downloadcontent.go runCopyContent), e.g.
   * /var/lib/coldseal/download/..., which a test on a shared machine must not; with hostRoot
   * the download lands at <hostRoot><destinationPath> instead. This is the one place the
   * emulation departs from the agent, and only when asked: the caller must then tell the shell
   * step the same directory through its own environment (COLDSEAL_DOWNLOADS, see
   * downloadDirectory). Without it, absolute paths are used as they are.
   */
  readonly hostRoot?: string;
}

/** How one step ended, as SSM reports a plugin (GetCommandInvocation with its PluginName). */
export interface StepOutcome {
  readonly name: string;
  readonly action: string;
  readonly status: 'Success' | 'Failed' | 'Skipped';
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** How long the step took here. */
  readonly durationMs: number;
}

/**
 * A command run: code, stdout and stderr of the step that decided it (the failed step that
 * stopped it, else the last step run: the shell step), and every step's outcome.
 */
export interface DocumentRun extends ProcessResult {
  readonly status: 'Success' | 'Failed';
  readonly steps: readonly StepOutcome[];
  /** The command's orchestration directory (relative download paths go under its downloads/). */
  readonly orchestrationDir: string;
}

/**
 * Runs the document on this machine as the SSM Agent runs a Run Command document on a Linux host,
 * its mainSteps in order:
 * - precondition: only StringEquals on platformType, against "linux" (this host); a step whose
 *   platform differs is skipped, any other precondition fails the step
 *   (agent/framework/runpluginutil/runplugins.go getStepExecutionOperation, evaluatePreconditions);
 * - aws:downloadContent with sourceType S3: see downloadS3;
 * - aws:runShellScript: the lines, parameters substituted, run with /bin/sh in `home`;
 * - the shared inputs (SSM Agent >= 3.0.502): a failed step with onFailure "exit" stops the
 *   command (Failed), with "successAndExit" stops it as a success; without onFailure the next
 *   step runs and the command still ends Failed; a successful step with onSuccess "exit" stops
 *   it; a finallyStep runs even then
 *   (https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#shared-inputs).
 * The S3 calls are the host's: `target`'s credentials, through its endpoint (the recording proxy
 * in the end-to-end test), so the permission proof sees them.
 */
export async function runDocument(
  target: MotoTarget,
  document: CommandDocument,
  values: Readonly<Record<string, string>>,
  home: string,
  env: Record<string, string> = {},
  options: RunDocumentOptions = {},
): Promise<DocumentRun> {
  const substitutions = commandValues(document, values);
  // The agent's per-command directory (orchestration directory) under its data root.
  const orchestrationDir = join(home, 'ssm-orchestration', randomUUID());
  mkdirSync(orchestrationDir, { recursive: true });
  const steps: StepOutcome[] = [];
  let stopped: 'exit' | 'successAndExit' | undefined;
  for (const step of document.mainSteps) {
    const inputs = substitutedInputs(step, substitutions);
    if (stopped && inputs.finallyStep !== true) continue;
    const outcome = await runStep(step, inputs, { target, home, env, orchestrationDir, hostRoot: options.hostRoot, values: substitutions });
    steps.push(outcome);
    if (outcome.status === 'Failed' && (inputs.onFailure === 'exit' || inputs.onFailure === 'successAndExit')) stopped ??= inputs.onFailure;
    if (outcome.status === 'Success' && inputs.onSuccess === 'exit') stopped ??= 'exit';
  }
  const failed = steps.find((s) => s.status === 'Failed');
  const deciding = failed ?? steps.filter((s) => s.status !== 'Skipped').pop();
  if (!deciding) throw new Error('no step of the document ran on a Linux host');
  const status = failed && stopped !== 'successAndExit' ? 'Failed' : 'Success';
  return { code: deciding.code, stdout: deciding.stdout, stderr: deciding.stderr, status, steps, orchestrationDir };
}

interface StepContext {
  readonly target: MotoTarget;
  readonly home: string;
  readonly env: Record<string, string>;
  readonly orchestrationDir: string;
  readonly hostRoot: string | undefined;
  readonly values: Readonly<Record<string, string>>;
}

async function runStep(step: DocumentStep, inputs: Record<string, unknown>, context: StepContext): Promise<StepOutcome> {
  const started = performance.now();
  const outcome = (status: StepOutcome['status'], code: number | null, stdout: string, stderr: string): StepOutcome => ({ name: step.name, action: step.action, status, code, stdout, stderr, durationMs: Math.round(performance.now() - started) });
  const preconditions = Object.entries(step.precondition ?? {});
  const unrecognized = preconditions.filter(([operator, operands]) => operator !== 'StringEquals' || operands.length !== 2 || operands.filter((o) => o === 'platformType').length !== 1);
  const platformMatches = preconditions.filter((p) => !unrecognized.includes(p)).every(([, operands]) => operands.find((o) => o !== 'platformType')!.toLowerCase() === 'linux');
  if (!platformMatches) return outcome('Skipped', 0, `Step execution skipped due to incompatible platform. Step name: ${step.name}`, '');
  if (unrecognized.length > 0) return outcome('Failed', 1, '', `Unrecognized precondition(s): '${unrecognized.map(([k, v]) => `"${k}": ${JSON.stringify(v)}`).join(', ')}', please update agent to latest version. Step name: ${step.name}`);
  switch (step.action) {
    case 'aws:downloadContent': {
      if (inputs.sourceType !== 'S3') throw new Error(`step ${step.name}: the emulation downloads from S3 only, not sourceType ${String(inputs.sourceType)}`);
      try {
        const written = await downloadS3(context.target, downloadSource(String(inputs.sourceInfo)), destinationOf(String(inputs.destinationPath ?? ''), context));
        return outcome('Success', 0, `Content downloaded to ${written}`, '');
      } catch (error) {
        // downloadcontent.go: output.MarkAsFailed(err), exit code FailExitCode (1).
        return outcome('Failed', 1, '', `${(error as Error).name}: ${(error as Error).message}`);
      }
    }
    case 'aws:runShellScript': {
      const dir = join(context.orchestrationDir, step.name);
      mkdirSync(dir, { recursive: true });
      const script = join(dir, '_script.sh');
      writeFileSync(script, (inputs.runCommand as string[]).join('\n'));
      const result = await runProcess('/bin/sh', [script], { env: hostEnv(context.target, context.home, context.env), cwd: context.home });
      return outcome(result.code === 0 ? 'Success' : 'Failed', result.code, result.stdout, result.stderr);
    }
    default:
      throw new Error(`step ${step.name}: the emulation does not run ${step.action}`);
  }
}

/**
 * downloadcontent.go runCopyContent: an absolute destinationPath is used as is (here under
 * hostRoot when the caller asked, see RunDocumentOptions); a relative one goes under the
 * command's orchestration directory's "downloads/"; none at all means the agent's download root.
 */
function destinationOf(destinationPath: string, context: StepContext): string {
  if (destinationPath === '') throw new Error('aws:downloadContent without a destinationPath: the agent would use its own download root, which the emulation has no place for');
  if (isAbsolute(destinationPath)) return context.hostRoot ? join(context.hostRoot, destinationPath) : destinationPath;
  return `${join(context.orchestrationDir, 'downloads')}/${destinationPath}`;
}

/**
 * What the SSM Agent does for an S3 source (agent/plugins/downloadcontent/s3resource/s3resource.go
 * DownloadRemoteResource, agent/fileutil/artifact/artifact.go ListS3Directory, Download, s3Download),
 * with the host's credentials:
 * 1. the bucket's region: an unsigned HTTP request (s3util.GetBucketRegion), no IAM; not sent
 *    here (moto has one region, and an unsigned request is no call of the host's role);
 * 2. ListObjects (V1, as the agent's SDK sends it, all pages) with Prefix "<key>/": is the key a
 *    folder? If that call fails and the key does not end in "/", the step fails with its error;
 * 3. no keys under it: a file. GetObject into <destination dir>/<sha1 of the URL>, the ETag
 *    beside it in "<that>.etag", then the file renamed to its destination (system.RenameFile), so
 *    the .etag stays and is never matched again. If destinationPath is an existing directory or
 *    ends in "/", the file keeps the key's base name in it; otherwise destinationPath is the file.
 *    When GetObject fails, the agent tries a plain unsigned HTTPS GET, which a private bucket
 *    refuses: the step fails with the GetObject error here.
 * A key with objects under it (a folder) is not downloaded: the stack ships single files.
 */
async function downloadS3(target: MotoTarget, source: DownloadSource, destinationPath: string): Promise<string> {
  const s3 = new S3Client(target.clientConfig);
  const prefix = source.key.endsWith('/') ? source.key : `${source.key}/`;
  const listed: string[] = [];
  try {
    let marker: string | undefined;
    for (;;) {
      const page = await s3.send(new ListObjectsCommand({ Bucket: source.bucket, Prefix: prefix, Marker: marker }));
      for (const object of page.Contents ?? []) listed.push(object.Key!);
      if (!page.IsTruncated || !page.Contents?.length) break;
      marker = page.NextMarker ?? page.Contents[page.Contents.length - 1].Key;
    }
  } catch (error) {
    if (!source.key.endsWith('/')) throw error;
  }
  if (listed.length > 0) throw new Error(`s3://${source.bucket}/${source.key} is a folder (${listed.length} objects under it); the emulation downloads single files only`);
  const isDirectory = destinationPath.endsWith('/') || (existsSync(destinationPath) && statSync(destinationPath).isDirectory());
  const directory = isDirectory ? destinationPath : dirname(destinationPath);
  const fileName = isDirectory ? basename(source.key) : basename(destinationPath);
  mkdirSync(directory, { recursive: true });
  // The agent names the temporary file by the SHA-1 of the object's URL (artifact.go Download).
  const temporary = join(directory, createHash('sha1').update(`https://s3.${target.clientConfig.region}.amazonaws.com/${source.bucket}/${source.key}`).digest('hex'));
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: source.bucket, Key: source.key }));
    if (object.ETag) writeFileSync(`${temporary}.etag`, object.ETag);
    await pipeline(object.Body as Readable, createWriteStream(temporary));
  } catch (error) {
    rmSync(temporary, { force: true });
    rmSync(`${temporary}.etag`, { force: true });
    throw error;
  }
  const destination = join(directory, fileName);
  renameSync(temporary, destination);
  return destination;
}
