import { randomBytes } from 'node:crypto';
import { CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import type { MotoTarget } from './moto-target';

/**
 * Where the alerts sent to an SNS topic are read: an SQS queue of the same moto account subscribed
 * to it, standing in for an email subscriber (moto delivers no email). Used by the demo, test/e2e,
 * the Lambda tests and the agent's alert tests.
 */
export interface Alert {
  readonly subject: string;
  readonly message: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface AlertInbox {
  readonly topicArn: string;
  /**
   * Every alert published since the last call, each taken off the queue so it is never counted
   * twice (a message left there comes back after the visibility timeout, 30 s, and would be
   * counted again by a later test). Waits up to the inbox's waitSeconds for the first alert.
   */
  receive(): Promise<Alert[]>;
}

export interface AlertInboxOptions {
  /** How long receive() waits for the first alert when none has arrived yet; 0 (the default): it returns at once. */
  readonly waitSeconds?: number;
}

/** An SQS queue subscribed to an existing topic (the deployed alert topic). */
export async function subscribeAlertInbox(target: MotoTarget, topicArn: string, options: AlertInboxOptions = {}): Promise<AlertInbox> {
  const { forcePathStyle: _f, ...plain } = target.clientConfig;
  const sqs = new SQSClient(plain);
  const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `alerts-inbox-${randomBytes(4).toString('hex')}` }))).QueueUrl!;
  const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  await new SNSClient(plain).send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: queueArn, Attributes: { RawMessageDelivery: 'false' } }));
  return {
    topicArn,
    async receive() {
      const alerts: Alert[] = [];
      for (let waits = options.waitSeconds ?? 0; ; ) {
        const wait = alerts.length === 0 && waits > 0;
        if (wait) waits--;
        const batch = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: wait ? 1 : 0 }));
        const messages = batch.Messages ?? [];
        for (const m of messages) {
          const body = JSON.parse(m.Body!) as { Subject: string; Message: string; MessageAttributes?: Record<string, { Value: string }> };
          alerts.push({ subject: body.Subject, message: body.Message, attributes: Object.fromEntries(Object.entries(body.MessageAttributes ?? {}).map(([k, v]) => [k, v.Value])) });
          await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }));
        }
        if (messages.length === 0 && !wait) return alerts;
      }
    },
  };
}

/** A new topic in the target's account, and its inbox. */
export async function createAlertInbox(target: MotoTarget, options: AlertInboxOptions & { readonly topicName?: string } = {}): Promise<AlertInbox> {
  const { forcePathStyle: _f, ...plain } = target.clientConfig;
  const topicArn = (await new SNSClient(plain).send(new CreateTopicCommand({ Name: `${options.topicName ?? 'alerts'}-${randomBytes(4).toString('hex')}` }))).TopicArn!;
  return subscribeAlertInbox(target, topicArn, options);
}
