/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
/**
 * The calls AWS services make on the stack's behalf, derived from what the template asks them to
 * do (a rule's targets, an alarm's actions, a bucket's access logging), as the service would make
 * them: its own principal, the source's ARN as aws:SourceArn, the target as the resource. Never
 * from the permission resources themselves, so that a missing or mis-scoped permission is refused.
 * A target or action of a kind not modelled here throws, naming it: extend this file, do not skip it.
 */
import type { AwsCall } from './aws-calls';
import { bucketNameOf, FAKE, render, resourcesOfType, type Template } from './template-tools';

export interface ServiceCall extends AwsCall {
  /** What in the template makes the service call, for the failure message. */
  readonly origin: string;
}

/** An ARN as render() gives it, or the resource it names (Ref of a function, topic, queue). */
function arnOf(template: Template, value: unknown): string {
  const ref = (value as { Ref?: string } | undefined)?.Ref;
  if (ref && template.Resources[ref]?.Type === 'AWS::SQS::Queue') return `arn:aws:sqs:${FAKE.region}:${FAKE.account}:${ref}`;
  const out = render(template, value);
  if (typeof out !== 'string') throw new Error(`service-calls: cannot resolve ${JSON.stringify(value)} to an ARN`);
  return out;
}

/**
 * What a service sends to a target ARN: Lambda InvokeFunction, SNS Publish, SQS SendMessage.
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html
 */
function deliveryTo(target: string, origin: string): { operation: string; resource: string } {
  if (target.startsWith('arn:aws:lambda:')) return { operation: 'lambda:Invoke', resource: target };
  if (target.startsWith('arn:aws:sns:')) return { operation: 'sns:Publish', resource: target };
  if (target.startsWith('arn:aws:sqs:')) return { operation: 'sqs:SendMessage', resource: target };
  throw new Error(`service-calls: ${origin} targets ${target}, a kind of target this proof does not model: add it to deliveryTo`);
}

/** Resource-policy targets carry the source: aws:SourceArn and aws:SourceAccount (confused-deputy keys). */
const sourceContext = (sourceArn: string) => ({ 'aws:SourceArn': sourceArn, 'aws:SourceAccount': FAKE.account });

/**
 * Every EventBridge rule target (and its dead-letter queue): EventBridge calls the target as
 * events.amazonaws.com with aws:SourceArn = the rule's ARN, against the target's resource policy;
 * a target with a RoleArn is called with that role instead.
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
 */
export function ruleTargetCalls(template: Template, roleName: (roleArn: string) => string): ServiceCall[] {
  const calls: ServiceCall[] = [];
  for (const [id, rule] of resourcesOfType(template, 'AWS::Events::Rule')) {
    const ruleArn = render(template, { 'Fn::GetAtt': [id, 'Arn'] }) as string;
    for (const target of (rule.Properties.Targets ?? []) as any[]) {
      const origin = `rule ${id} target ${target.Id}`;
      const delivery = deliveryTo(arnOf(template, target.Arn), origin);
      if (target.RoleArn) calls.push({ principal: roleName(arnOf(template, target.RoleArn)), ...delivery, origin });
      else calls.push({ principal: 'events.amazonaws.com', ...delivery, context: sourceContext(ruleArn), origin });
      if (target.DeadLetterConfig?.Arn) {
        calls.push({ principal: 'events.amazonaws.com', ...deliveryTo(arnOf(template, target.DeadLetterConfig.Arn), `${origin} dead-letter queue`), context: sourceContext(ruleArn), origin: `${origin} dead-letter queue` });
      }
    }
  }
  return calls;
}

/**
 * Every EventBridge Scheduler schedule: Scheduler assumes the schedule's role and makes the target's
 * API call with it (a universal target, `arn:aws:scheduler:::aws-sdk:<service>:<action>`, takes the
 * request from Input), and on a refused call sends the event to its dead-letter queue with the same
 * role. A SendCommand is authorized on the document and on every targeted instance, EC2 and
 * on-premises (managed-instance) alike, with the instance's tags as ssm:resourceTag/<key>.
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
 * https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
 */
export function scheduleTargetCalls(template: Template, roleName: (roleArn: string) => string): ServiceCall[] {
  const calls: ServiceCall[] = [];
  for (const [id, schedule] of resourcesOfType(template, 'AWS::Scheduler::Schedule')) {
    const target = schedule.Properties.Target;
    const origin = `schedule ${id}`;
    const principal = roleName(arnOf(template, target.RoleArn));
    const universal = /^arn:aws:scheduler:::aws-sdk:([a-z0-9]+):([A-Za-z]+)$/.exec(arnOf(template, target.Arn));
    if (!universal || universal[1] !== 'ssm' || universal[2] !== 'sendCommand') throw new Error(`service-calls: ${origin} targets ${arnOf(template, target.Arn)}: model it in scheduleTargetCalls`);
    const input = JSON.parse(render(template, target.Input) as string) as { DocumentName: string; Targets: { Key: string; Values: string[] }[] };
    calls.push({ principal, operation: 'ssm:SendCommand', resource: `arn:aws:ssm:${FAKE.region}:${FAKE.account}:document/${input.DocumentName}`, origin });
    for (const { Key, Values } of input.Targets) {
      const tag = /^tag:(.+)$/.exec(Key)?.[1];
      if (!tag) throw new Error(`service-calls: ${origin} targets hosts by ${Key}, not by tag: model it in scheduleTargetCalls`);
      for (const value of Values) {
        for (const instance of [`arn:aws:ec2:${FAKE.region}:${FAKE.account}:instance/i-0123456789abcdef0`, `arn:aws:ssm:${FAKE.region}:${FAKE.account}:managed-instance/mi-0123456789abcdef0`]) {
          calls.push({ principal, operation: 'ssm:SendCommand', resource: instance, context: { [`ssm:resourceTag/${tag}`]: value }, origin: `${origin} ${instance.includes('managed-instance') ? 'on-premises' : 'EC2'} host tagged ${tag}=${value}` });
        }
      }
    }
    if (target.DeadLetterConfig?.Arn) calls.push({ principal, ...deliveryTo(arnOf(template, target.DeadLetterConfig.Arn), `${origin} dead-letter queue`), origin: `${origin} dead-letter queue` });
  }
  return calls;
}

/**
 * Every alarm action (ALARM, OK, INSUFFICIENT_DATA): CloudWatch publishes as
 * cloudwatch.amazonaws.com with aws:SourceArn = the alarm's ARN (and uses the topic's KMS key).
 * An alarm without AlarmName gets "<stack>-<logical id>-<suffix>" from CloudFormation.
 * https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-actions.html
 */
export function alarmActionCalls(template: Template): ServiceCall[] {
  const calls: ServiceCall[] = [];
  for (const [id, alarm] of resourcesOfType(template, 'AWS::CloudWatch::Alarm')) {
    const name = alarm.Properties.AlarmName ? String(render(template, alarm.Properties.AlarmName)) : `Coldseal-${id}-GENERATED`;
    const alarmArn = `arn:aws:cloudwatch:${FAKE.region}:${FAKE.account}:alarm:${name}`;
    for (const kind of ['AlarmActions', 'OKActions', 'InsufficientDataActions']) {
      for (const action of (alarm.Properties[kind] ?? []) as unknown[]) {
        const target = arnOf(template, action);
        const origin = `alarm ${id} ${kind}`;
        if (!target.startsWith('arn:aws:sns:')) throw new Error(`service-calls: ${origin} is ${target}, not an SNS topic: model it in alarmActionCalls`);
        calls.push({ principal: 'cloudwatch.amazonaws.com', operation: 'sns:Publish', resource: target, context: sourceContext(alarmArn), origin });
      }
    }
  }
  return calls;
}

/**
 * Lambda functions subscribed to a topic: SNS invokes them as sns.amazonaws.com with
 * aws:SourceArn = the topic's ARN.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html
 */
export function subscriptionCalls(template: Template): ServiceCall[] {
  return resourcesOfType(template, 'AWS::SNS::Subscription')
    .filter(([, s]) => s.Properties.Protocol === 'lambda')
    .map(([id, s]) => ({ principal: 'sns.amazonaws.com', operation: 'lambda:Invoke', resource: arnOf(template, s.Properties.Endpoint), context: sourceContext(arnOf(template, s.Properties.TopicArn)), origin: `subscription ${id}` }));
}

/**
 * S3 server access logging: the logging service writes the log objects as logging.s3.amazonaws.com
 * with aws:SourceArn = the source bucket, against the log bucket's policy.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
 */
export function accessLogCalls(template: Template): ServiceCall[] {
  return resourcesOfType(template, 'AWS::S3::Bucket')
    .filter(([, b]) => b.Properties?.LoggingConfiguration)
    .map(([id, b]) => {
      const logging = b.Properties.LoggingConfiguration;
      return {
        principal: 'logging.s3.amazonaws.com',
        operation: 'PutObject',
        bucket: render(template, logging.DestinationBucketName) as string,
        key: `${logging.LogFilePrefix ?? ''}2026-11-22-06-00-00-ABCDEF`,
        context: { 'aws:SourceArn': `arn:aws:s3:::${bucketNameOf(id)}`, 'aws:SourceAccount': FAKE.account },
        origin: `access logging of bucket ${id}`,
      };
    });
}

/** Every call a service makes on the stack's behalf. @param roleName a target role's ARN → the model's principal name. */
export function serviceCallsOf(template: Template, roleName: (roleArn: string) => string = (arn) => arn): ServiceCall[] {
  return [...ruleTargetCalls(template, roleName), ...scheduleTargetCalls(template, roleName), ...alarmActionCalls(template), ...subscriptionCalls(template), ...accessLogCalls(template)];
}
