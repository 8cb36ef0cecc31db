/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates and event payloads are untyped JSON */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { CreateEventBusCommand, DescribeRuleCommand, EventBridgeClient, ListTargetsByRuleCommand, PutEventsCommand, PutRuleCommand, PutTargetsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, PutObjectRetentionCommand, S3Client, type StorageClass } from '@aws-sdk/client-s3';
import { CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ListCommandsCommand, PutParameterCommand, SendCommandCommand, SSMClient, type SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { loadConfigParameter } from '../agent/src/config/load';
import { agentConfigSchema, type AgentConfig } from '../format/agent-config';
import { SOURCES_REFERENCE_KEY, splitSources } from '../format/config-parameter';
import { generateKeyPair, type GeneratedKey } from '../runtime/pgp';
import { groupParameters } from '../format/parameters';
import { parseKey } from '../format/layout';
import { SERVICE } from '../format/metric-names';
import type { CommandHistory, CommandInvocation, InstanceDirectory, ManagedInstance } from '../lambdas/shared/ports';
import type { MonitorEvent } from '../lambdas/monitor/handler';
import type { MonitorResult } from '../lambdas/monitor/core/monitor';
import type { WalCheckResult } from '../lambdas/monitor/core/wal-check';
import { isWalCheck, type WalCheckInput } from '../format/scheduled-inputs';
import { COMMAND_STATUS_DETAIL_TYPE_NAME, type CommandStatusDetail } from '../format/command-status';
import type { VerifierEvent } from '../lambdas/verifier/handler';
import type { ManifestResult, SweepResult } from '../lambdas/verifier/core/verifier';
import { downloadDirectory, hostEnv, readCommandDocument, runDocument, runProcess, type CommandDocument, type DeployedStack, type DocumentRun, type MotoTarget, type ProcessResult } from './moto-stack';
import { subscribeAlertInbox, type Alert, type AlertInbox } from './alerts';

/**
 * The whole system on one machine, step by step, against a stack deployed into moto
 * (local-system/moto-stack.ts): what a scheduled run, the Lambdas' triggers and an operator do, each
 * reading its configuration from what the stack deployed. Shared by `npm run demo` and
 * test/e2e; the callers decide what to print or assert.
 */

/** Throwaway keys, as `coldseal keys generate` writes them (private files 0600). */
export interface KeyFiles {
  readonly recipient: GeneratedKey & { readonly privateFile: string };
  readonly signing: GeneratedKey & { readonly privateFile: string };
}

export async function generateKeyFiles(dir: string, group: string): Promise<KeyFiles> {
  mkdirSync(dir, { recursive: true });
  const recipient = await generateKeyPair({ name: 'coldseal recipient (throwaway)' });
  const signing = await generateKeyPair({ name: `coldseal ${group} signing (throwaway)` }, undefined, { signOnly: true });
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text, { mode: 0o600 });
    chmodSync(file, 0o600);
    return file;
  };
  write('recipient.pub.asc', recipient.publicKey);
  write(`${group}-signing.pub.asc`, signing.publicKey);
  return {
    recipient: { ...recipient, privateFile: write('recipient.key.asc', recipient.privateKey) },
    signing: { ...signing, privateFile: write(`${group}-signing.key.asc`, signing.privateKey) },
  };
}

/** A Lambda function as moto keeps it after the deploy: its name, environment and limits. */
export interface DeployedFunction {
  readonly name: string;
  readonly arn: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
  readonly memoryMB: number;
}

/** An EventBridge rule that targets one of the functions, as deployed. */
export interface DeployedRule {
  readonly name: string;
  readonly eventPattern?: string;
  readonly scheduleExpression?: string;
  /** The constant input the rule sends (scheduled rules), parsed. */
  readonly input?: unknown;
  readonly targetArn: string;
}

/** A scheduled run of the SSM document: the document parameters the schedule sends. */
export interface ScheduledRun {
  readonly logicalId: string;
  readonly schedule: string;
  readonly timeZone?: string;
  readonly parameters: Readonly<Record<string, string>>;
  /** The whole SendCommand request the schedule's target sends, references resolved. */
  readonly request: Readonly<Record<string, unknown>>;
}

/**
 * Who acts in each step, as on AWS each has a role of its own: the hosts of a group, the drill
 * host, the two functions, EventBridge Scheduler, and an operator at a laptop. The default gives
 * everybody the deployment's own target; test/e2e gives each its own access key so that a
 * recording proxy can tell them apart.
 */
export interface Actors {
  host(group: string): MotoTarget;
  readonly drill: MotoTarget;
  readonly verifier: MotoTarget;
  readonly monitor: MotoTarget;
  readonly scheduler: MotoTarget;
  readonly operator: MotoTarget;
}

export function sameActor(target: MotoTarget): Actors {
  return { host: () => target, drill: target, verifier: target, monitor: target, scheduler: target, operator: target };
}

/** The deployed system, read back from moto: nothing here is taken from the context the stack was built from. */
export class Deployment {
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  private readonly sqs: SQSClient;
  private readonly events: EventBridgeClient;
  private inbox?: AlertInbox;

  private constructor(
    readonly target: MotoTarget,
    readonly stack: DeployedStack,
    readonly document: CommandDocument,
    readonly verifier: DeployedFunction,
    readonly monitor: DeployedFunction,
    readonly rules: readonly DeployedRule[],
    readonly scheduledRuns: readonly ScheduledRun[],
    /** Where host-side state (the fetched agent) and scripts go, as on a host. */
    readonly home: string,
    readonly actors: Actors,
  ) {
    const { forcePathStyle: _f, ...plain } = target.clientConfig;
    this.s3 = new S3Client(target.clientConfig);
    this.ssm = new SSMClient(plain);
    this.sqs = new SQSClient(plain);
    this.events = new EventBridgeClient(plain);
  }

  /** @param target the deployment's own access (reading it back, alerts inbox, setup); actors: who acts in each step. */
  static async read(target: MotoTarget, stack: DeployedStack, home: string, actors: Actors = sameActor(target)): Promise<Deployment> {
    const { forcePathStyle: _f, ...plain } = target.clientConfig;
    const ssm = new SSMClient(plain);
    const lambda = new LambdaClient(plain);
    const events = new EventBridgeClient(plain);
    mkdirSync(home, { recursive: true });

    const functions: DeployedFunction[] = [];
    for (const [id, r] of Object.entries(stack.template.Resources as Record<string, any>)) {
      if (r.Type !== 'AWS::Lambda::Function' || !stack.physical.has(id)) continue;
      const c = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: stack.physical.get(id)! }));
      functions.push({ name: c.FunctionName!, arn: c.FunctionArn!, environment: c.Environment?.Variables ?? {}, timeoutSeconds: c.Timeout ?? 3, memoryMB: c.MemorySize ?? 128 });
    }
    const byService = (service: string): DeployedFunction => {
      const found = functions.filter((f) => f.environment.POWERTOOLS_SERVICE_NAME === service);
      if (found.length !== 1) throw new Error(`expected one deployed function with POWERTOOLS_SERVICE_NAME=${service}, found ${found.length} (${functions.map((f) => f.name).join(', ')})`);
      return found[0];
    };

    const rules: DeployedRule[] = [];
    for (const [id, r] of Object.entries(stack.template.Resources as Record<string, any>)) {
      if (r.Type !== 'AWS::Events::Rule' || !stack.physical.has(id)) continue;
      const name = stack.physical.get(id)!.split('|').pop()!.split('/').pop()!;
      const rule = await events.send(new DescribeRuleCommand({ Name: name }));
      for (const t of (await events.send(new ListTargetsByRuleCommand({ Rule: name }))).Targets ?? []) {
        rules.push({ name, eventPattern: rule.EventPattern, scheduleExpression: rule.ScheduleExpression, input: t.Input === undefined ? undefined : JSON.parse(t.Input), targetArn: t.Arn! });
      }
    }

    // moto does not deploy EventBridge Scheduler schedules: their input is read from the template,
    // with references resolved to what moto created.
    const resolve = (value: any): string =>
      typeof value === 'string' ? value : 'Ref' in value ? stack.physical.get(value.Ref)! : (value['Fn::Join'][1] as unknown[]).map(resolve).join(value['Fn::Join'][0]);
    const scheduledRuns: ScheduledRun[] = Object.entries(stack.template.Resources as Record<string, any>)
      .filter(([, r]) => r.Type === 'AWS::Scheduler::Schedule')
      .map(([logicalId, r]) => {
        const input = JSON.parse(resolve(r.Properties.Target.Input)) as { Parameters?: Record<string, string[]> };
        return {
          logicalId,
          schedule: r.Properties.ScheduleExpression,
          timeZone: r.Properties.ScheduleExpressionTimezone,
          parameters: Object.fromEntries(Object.entries(input.Parameters ?? {}).map(([k, v]) => [k, v[0]])),
          request: input,
        };
      });

    const document = await readCommandDocument(ssm, stack.output('AgentDocumentName'));
    return new Deployment(target, stack, document, byService(SERVICE.verifier), byService(SERVICE.monitor), rules, scheduledRuns, home, actors);
  }

  get bucket(): string {
    return this.stack.bucket;
  }

  get topicArn(): string {
    return this.stack.output('AlertTopicArn');
  }

  /** The agent configuration the stack wrote for a group, as the agent reads it. */
  async groupConfig(group: string): Promise<{ parameter: string; config: AgentConfig }> {
    const parameter = groupParameters(group, this.verifierSettingsPrefix()).config;
    return { parameter, config: await loadConfigParameter(this.ssm, parameter) };
  }

  private verifierSettingsPrefix(): string {
    return this.verifier.environment.COLDSEAL_PARAMETER_PREFIX;
  }

  /** The environment of a host (or an operator's shell) in this account, acting as `actor`. */
  hostEnv(extra: Record<string, string> = {}, actor: MotoTarget = this.actors.operator): Record<string, string> {
    return hostEnv(actor, this.home, extra);
  }

  /** The operator's step after deploying: the group's signing private key into its SecureString. */
  async publishSigningKey(agentBundle: string, group: string, signingKeyFile: string): Promise<ProcessResult> {
    return runProcess(process.execPath, [agentBundle, 'keys', 'publish', '--group', group, '--signing-key', signingKeyFile], { env: this.hostEnv(), cwd: this.home });
  }

  /** The scheduled backup run of a group: the document's script with the parameters its schedule sends. */
  scheduledRun(group: string, action: 'backup' | 'drill' = 'backup'): ScheduledRun {
    const run = this.scheduledRuns.find((r) => r.parameters.group === group && (r.parameters.action ?? 'backup') === action);
    if (!run) throw new Error(`the stack has no ${action} schedule for group ${group} (schedules: ${this.scheduledRuns.map((r) => JSON.stringify(r.parameters)).join(', ')})`);
    return run;
  }

  /** Runs the document on this machine as the SSM Agent would on a host of the group (moto-stack.ts runDocument). */
  async runScheduled(group: string, action: 'backup' | 'drill' = 'backup', env: Record<string, string> = {}): Promise<DocumentRun> {
    return this.runCommand(this.scheduledRun(group, action).parameters, env);
  }

  /**
   * Runs the document's script with the parameters a command carries (a schedule's, or what
   * `coldseal trigger` sent: see sentParameters), on a host of the command's group, or on the
   * drill host for a drill.
   */
  async runCommand(parameters: Readonly<Record<string, string>>, env: Record<string, string> = {}): Promise<DocumentRun> {
    const actor = parameters.action === 'drill' ? this.actors.drill : this.actors.host(parameters.group);
    const run = await runDocument(actor, this.document, parameters, this.home, { ...this.downloadsEnv(), ...env }, { hostRoot: this.hostRoot });
    this.runs.push(run);
    return run;
  }

  /** Every document run so far (their steps and how long each took). */
  readonly runs: DocumentRun[] = [];

  /**
   * The host's file system root for the document's absolute download paths: its download steps
   * write there (RunDocumentOptions.hostRoot), not into this machine's /var/lib.
   */
  get hostRoot(): string {
    return join(this.home, 'host-root');
  }

  /** Tells the document's script where the download steps wrote under hostRoot (its COLDSEAL_DOWNLOADS). */
  downloadsEnv(): Record<string, string> {
    return { COLDSEAL_DOWNLOADS: join(this.hostRoot, downloadDirectory(this.document)) };
  }

  /** The document parameters of a command SSM holds (moto records the command and runs nothing). */
  async sentParameters(commandId: string): Promise<Record<string, string>> {
    const command = (await this.ssm.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
    if (!command) throw new Error(`SSM has no command ${commandId}`);
    if (command.DocumentName !== this.stack.output('AgentDocumentName')) throw new Error(`command ${commandId} runs ${command.DocumentName}, not the agent document`);
    return Object.fromEntries(Object.entries(command.Parameters ?? {}).map(([k, v]) => [k, v[0]]));
  }

  /** `coldseal trigger` as an operator runs it from a laptop: the deployment parameter, then SendCommand. */
  async trigger(agentBundle: string, args: string[]): Promise<ProcessResult & { commandId?: string }> {
    const result = await runProcess(process.execPath, [agentBundle, 'trigger', ...args], { env: this.hostEnv(), cwd: this.home });
    return { ...result, commandId: /command ([0-9a-f-]{36})/.exec(result.stdout)?.[1] };
  }

  /**
   * Changes a group's deployed agent configuration as an operator could (the stack writes it; the
   * agent reads it at every run), e.g. small parts and segments so that a small backup has several.
   */
  async changeGroupConfig(group: string, change: (config: AgentConfig) => AgentConfig): Promise<void> {
    const { parameter, config } = await this.groupConfig(group);
    // In the stack's own form (format/config-parameter.ts): the parts first, then the head naming them.
    const { sources, ...head } = agentConfigSchema.parse(change(config));
    const { parts, reference } = splitSources(sources, parameter);
    for (const part of parts) await this.ssm.send(new PutParameterCommand({ Name: part.name, Value: part.value, Type: 'String', Overwrite: true }));
    await this.ssm.send(new PutParameterCommand({ Name: parameter, Value: JSON.stringify({ ...head, [SOURCES_REFERENCE_KEY]: reference }), Type: 'String', Overwrite: true }));
  }

  /**
   * What the schedule itself does at its time: EventBridge Scheduler, with the schedule's role,
   * sends its target's input as the SendCommand request (moto deploys no schedules, so nothing
   * else would). moto records the command and runs nothing; runScheduled plays the host's part.
   */
  async sendScheduled(group: string, action: 'backup' | 'drill' = 'backup'): Promise<string> {
    const { forcePathStyle: _f, ...plain } = this.actors.scheduler.clientConfig;
    const sent = await new SSMClient(plain).send(new SendCommandCommand(this.scheduledRun(group, action).request as unknown as SendCommandCommandInput));
    return sent.Command!.CommandId!;
  }

  async listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  /** Manifest keys of a group's backups, oldest first. */
  async manifests(group: string, source?: string): Promise<string[]> {
    return (await this.listKeys('backups/')).filter((k) => {
      const loc = parseKey(k);
      return loc?.kind === 'manifest' && loc.group === group && (source === undefined || loc.source === source);
    }).sort((a, b) => stampIn(a).localeCompare(stampIn(b)));
  }

  async getText(key: string): Promise<string> {
    return (await (await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }))).Body!.transformToString('utf8'));
  }

  /** The event the deployed "manifest created" rule delivers to the verifier for a new manifest (see deliver). */
  async manifestCreatedEvent(key: string): Promise<VerifierEvent> {
    const detail = { version: '0', bucket: { name: this.bucket }, object: { key, size: 0 }, reason: 'PutObject' };
    return this.deliver<VerifierEvent>(this.verifier, { Source: 'aws.s3', DetailType: 'Object Created', Resources: [`arn:aws:s3:::${this.bucket}`], Detail: JSON.stringify(detail) }, `the S3 "Object Created" event for ${key}`);
  }

  /** The event the deployed "command failed" rule delivers to the monitor when a run of the document ends so (see deliver). */
  async commandStatusEvent(detail: CommandStatusDetail): Promise<MonitorEvent> {
    return this.deliver<MonitorEvent>(this.monitor, { Source: 'aws.ssm', DetailType: COMMAND_STATUS_DETAIL_TYPE_NAME, Detail: JSON.stringify(detail) }, `a ${detail.status} run of ${detail['document-name']}`);
  }

  /**
   * The event a deployed rule would deliver to a function. moto's S3 and SSM emit no EventBridge
   * events and moto cannot deliver to a Lambda target (it fails the whole PutEvents), so the
   * AWS-shaped event is put on a bus of its own, where a probe rule with the deployed rule's own
   * pattern (read back from moto) forwards what matches to an SQS queue: moto's EventBridge
   * decides whether the rule fires, and what arrives is what the function is invoked with.
   */
  private async deliver<E>(fn: DeployedFunction, entry: Omit<PutEventsRequestEntry, 'EventBusName'>, what: string): Promise<E> {
    const probe = await this.eventProbe(fn);
    await this.events.send(new PutEventsCommand({ Entries: [{ ...entry, EventBusName: probe.bus }] }));
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await this.sqs.send(new ReceiveMessageCommand({ QueueUrl: probe.queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: attempt }));
      const message = r.Messages?.[0];
      if (!message) continue;
      await this.sqs.send(new DeleteMessageCommand({ QueueUrl: probe.queueUrl, ReceiptHandle: message.ReceiptHandle! }));
      return JSON.parse(message.Body!) as E;
    }
    throw new Error(`the deployed rule ${probe.rule.name} (${probe.rule.eventPattern}) does not match ${what}: ${fn.name} would never see it`);
  }

  private readonly probes = new Map<string, { rule: DeployedRule; queueUrl: string; bus: string }>();
  private async eventProbe(fn: DeployedFunction): Promise<{ rule: DeployedRule; queueUrl: string; bus: string }> {
    const known = this.probes.get(fn.arn);
    if (known) return known;
    const rule = this.ruleFor(fn, (r) => r.eventPattern !== undefined);
    const name = `coldseal-e2e-probe-${Math.random().toString(36).slice(2, 10)}`;
    const queueUrl = (await this.sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!;
    const queueArn = (await this.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
    await this.events.send(new CreateEventBusCommand({ Name: name }));
    await this.events.send(new PutRuleCommand({ Name: name, EventBusName: name, EventPattern: rule.eventPattern }));
    await this.events.send(new PutTargetsCommand({ Rule: name, EventBusName: name, Targets: [{ Id: 'probe', Arn: queueArn }] }));
    const probe = { rule, queueUrl, bus: name };
    this.probes.set(fn.arn, probe);
    return probe;
  }

  /** `aws ssm send-command` exactly as the stack's BackupCommand<Group> output says (moto records it; it runs nothing). */
  async sendBackupCommand(group: string): Promise<string> {
    const line = this.stack.output(`BackupCommand${group.charAt(0).toUpperCase()}${group.slice(1)}`);
    const sent = await runProcess('/bin/sh', ['-c', `${line} --output json`], { env: this.hostEnv(), cwd: this.home });
    if (sent.code !== 0) throw new Error(`the BackupCommand output for ${group} failed (exit ${sent.code}): ${sent.stderr}`);
    return (JSON.parse(sent.stdout) as { Command: { CommandId: string } }).Command.CommandId;
  }

  /** The constant input a deployed scheduled rule sends to a function (the monitor's full check, not its WAL check). */
  scheduledInput<E>(fn: DeployedFunction): E {
    return this.ruleFor(fn, (r) => r.scheduleExpression !== undefined && r.input !== undefined && !isWalCheck(r.input)).input as E;
  }

  /** The monitor's WAL check as its deployed schedule sends it (only deployed when a group has a PITR source). */
  walCheckInput(): WalCheckInput {
    return this.ruleFor(this.monitor, (r) => r.scheduleExpression !== undefined && isWalCheck(r.input)).input as WalCheckInput;
  }

  /** The monitor's WAL check, run as its deployed schedule would run it. */
  async runWalCheck(instances?: InstanceDirectory): Promise<WalCheckResult> {
    return (await this.invokeMonitor(this.walCheckInput(), instances)) as WalCheckResult;
  }

  private ruleFor(fn: DeployedFunction, predicate: (r: DeployedRule) => boolean): DeployedRule {
    const found = this.rules.filter((r) => r.targetArn === fn.arn && predicate(r));
    if (found.length !== 1) throw new Error(`expected one such deployed rule targeting ${fn.name}, found ${found.length}`);
    return found[0];
  }

  /** Where the functions' stdout goes instead of this process's stdout (see invoke). */
  lambdaOutput?: (line: string) => void;

  async invokeVerifier(event: VerifierEvent): Promise<SweepResult | ManifestResult | undefined> {
    return this.invoke(this.verifier, this.actors.verifier, async () => (await import('../lambdas/verifier/handler.js')).createVerifierHandler(), event);
  }

  /**
   * @param instances stands in for SSM's managed-instance inventory, which moto lacks (moto 5.2
   *   answers DescribeInstanceInformation with a tag filter with HTTP 500); everything else the
   *   monitor reads is moto.
   */
  /**
   * @param instances the managed instances SSM would list (moto has none);
   * @param commands what SSM would answer about commands (moto's invocations ran nothing: see DocumentRunHistory).
   */
  async invokeMonitor(event: MonitorEvent, instances?: InstanceDirectory, commands?: CommandHistory): Promise<MonitorResult | WalCheckResult | undefined> {
    return this.invoke(this.monitor, this.actors.monitor, async () => (await import('../lambdas/monitor/handler.js')).createMonitorHandler({ instances, commands }), event);
  }

  /**
   * A cold start of the function in this process: its deployed environment plus what the Lambda
   * runtime would provide (credentials, region; here also the moto endpoint, which the SDK reads
   * from AWS_ENDPOINT_URL), for the duration of the call. The handler builds its own clients
   * from that, as it does on AWS. Its output (Powertools log lines and EMF metrics, what
   * CloudWatch Logs would hold) goes to lambdaOutput when set; never set it under the test
   * runner, whose own protocol runs over this process's stdout.
   */
  private async invoke<E, R>(fn: DeployedFunction, role: MotoTarget, create: () => Promise<(event: E, context?: Context) => Promise<R>>, event: E): Promise<R> {
    const runtimeEnv: Record<string, string> = {
      ...fn.environment,
      ...role.env,
      AWS_ENDPOINT_URL: role.clientConfig.endpoint,
      AWS_LAMBDA_FUNCTION_NAME: fn.name,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMB),
    };
    const saved = new Map(Object.keys(runtimeEnv).map((k) => [k, process.env[k]]));
    Object.assign(process.env, runtimeEnv);
    const streams = [process.stdout, process.stderr] as const;
    const writes = streams.map((stream) => stream.write);
    const sink = this.lambdaOutput;
    if (sink) {
      for (const stream of streams) {
        stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
          for (const line of String(chunk).split('\n').filter(Boolean)) sink(line);
          (rest.find((r) => typeof r === 'function') as (() => void) | undefined)?.();
          return true;
        }) as typeof stream.write;
      }
    }
    try {
      const handler = await create();
      return await handler(event, lambdaContext(fn));
    } finally {
      streams.forEach((stream, i) => (stream.write = writes[i]));
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }

  /** An SQS queue subscribed to the deployed alert topic: what an email subscriber would receive. */
  async subscribeToAlerts(): Promise<void> {
    this.inbox = await subscribeAlertInbox(this.target, this.topicArn);
  }

  /** Every alert published since the last call. */
  async receiveAlerts(): Promise<Alert[]> {
    if (!this.inbox) throw new Error('subscribeToAlerts() first: alerts are read from an SQS subscription of the topic');
    return this.inbox.receive();
  }

  /**
   * `coldseal restore` as an operator runs it: the group's deployed configuration parameter, the
   * recipient private key from a file, the target on argv (never a password).
   */
  async restore(agentBundle: string, group: string, args: string[], env: Record<string, string> = {}): Promise<ProcessResult> {
    const { parameter } = await this.groupConfig(group);
    return runProcess(process.execPath, [agentBundle, 'restore', '--config-parameter', parameter, ...args], { env: this.hostEnv(env), cwd: this.home });
  }

  /**
   * Undoes corrupt(): the bad version (the current one, written without a lock) is deleted by its
   * version id, so the locked original is current again.
   */
  async removeCurrentVersion(key: string): Promise<void> {
    const current = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!current.VersionId) throw new Error(`${key} has no version id: the bucket is not versioned`);
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key, VersionId: current.VersionId }));
  }

  /**
   * What a tier's lifecycle rule does on AWS: moves an object to an archive storage class (moto
   * applies no lifecycle). A copy onto itself makes a new version in the versioned bucket, where
   * the transition keeps the version: the copy is given the original's Object Lock retention, as
   * the transitioned version keeps it.
   */
  async archive(key: string, storageClass: StorageClass): Promise<void> {
    const original = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    const source = `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
    await this.s3.send(new CopyObjectCommand({ Bucket: this.bucket, Key: key, CopySource: source, StorageClass: storageClass, MetadataDirective: 'COPY' }));
    if (original.ObjectLockMode && original.ObjectLockRetainUntilDate) {
      await this.s3.send(new PutObjectRetentionCommand({ Bucket: this.bucket, Key: key, Retention: { Mode: original.ObjectLockMode, RetainUntilDate: original.ObjectLockRetainUntilDate } }));
    }
  }

  /**
   * Breaks a backup on purpose: a byte of the ciphertext flipped and written back. The bucket is
   * versioned and locked, so this adds a new current version (what a compromised or careless
   * writer with the bucket owner's rights could do); the locked original stays as an older version.
   */
  async corrupt(ciphertextKey: string): Promise<void> {
    const original = Buffer.from(await (await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: ciphertextKey }))).Body!.transformToByteArray());
    const broken = Buffer.from(original);
    broken[Math.floor(broken.length / 2)] ^= 0xff;
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: ciphertextKey, Body: broken, ChecksumAlgorithm: 'CRC32' }));
  }
}

/**
 * What SSM would answer about commands this machine ran as a host: moto records a SendCommand
 * but runs nothing, so its invocation has no status, exit code or output. Each document run done
 * here is recorded under its command and instance with the outcome the agent would report (the
 * code and output of the step that decided it); the parameters are the command's own, from SSM.
 */
export class DocumentRunHistory implements CommandHistory {
  private readonly runs = new Map<string, CommandInvocation>();

  constructor(private readonly ssm: SSMClient) {}

  record(commandId: string, instanceId: string, run: DocumentRun, started: Date, ended = new Date()): void {
    this.runs.set(`${commandId} ${instanceId}`, {
      status: run.status,
      statusDetails: run.status,
      responseCode: run.code ?? -1,
      standardOutput: run.stdout,
      standardError: run.stderr,
      executionStartedAt: started,
      executionEndedAt: ended,
    });
  }

  async invocation(commandId: string, instanceId: string): Promise<CommandInvocation | null> {
    return this.runs.get(`${commandId} ${instanceId}`) ?? null;
  }

  async parameters(commandId: string): Promise<Record<string, string[]> | null> {
    return (await this.ssm.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0]?.Parameters ?? null;
  }
}

/** Managed instances as SSM would list them: the hosts this machine plays, with their group tag. */
export class HostInventory implements InstanceDirectory {
  constructor(private readonly instances: readonly ManagedInstance[]) {}

  async listGroup(_tagKey: string, group: string): Promise<ManagedInstance[]> {
    return this.instances.filter((i) => i.group === group);
  }

  async describe(instanceId: string, _tagKey: string, groups: readonly string[]): Promise<ManagedInstance | null> {
    const found = this.instances.find((i) => i.instanceId === instanceId);
    return found ? { ...found, group: found.group && groups.includes(found.group) ? found.group : undefined } : null;
  }
}

function stampIn(key: string): string {
  return key.split('/').pop()!;
}

function lambdaContext(fn: DeployedFunction): Context {
  const deadline = Date.now() + fn.timeoutSeconds * 1000;
  const id = `e2e-${Math.random().toString(36).slice(2)}`;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: fn.name,
    functionVersion: '$LATEST',
    invokedFunctionArn: fn.arn,
    memoryLimitInMB: String(fn.memoryMB),
    awsRequestId: id,
    logGroupName: `/aws/lambda/${fn.name}`,
    logStreamName: id,
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
