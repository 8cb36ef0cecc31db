import { CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { uniqueName, type MotoAccount } from './aws';

/**
 * An SNS topic whose messages land in an SQS queue of the same moto account: where a test reads the
 * alerts the agent sends (moto delivers no email).
 */
export interface AlertInbox {
  readonly topicArn: string;
  /** The alerts that arrived since the last call (each taken off the queue so it is never counted twice). */
  receive(): Promise<{ subject: string; message: string }[]>;
}

export async function createAlertInbox(account: MotoAccount): Promise<AlertInbox> {
  const sns = new SNSClient(account.clientConfig);
  const sqs = new SQSClient(account.clientConfig);
  const topicArn = (await sns.send(new CreateTopicCommand({ Name: uniqueName('alerts') }))).TopicArn!;
  const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: uniqueName('alerts-inbox') }))).QueueUrl!;
  const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: queueArn, Attributes: { RawMessageDelivery: 'false' } }));
  return {
    topicArn,
    async receive() {
      const received: { subject: string; message: string }[] = [];
      for (let i = 0; i < 3; i++) {
        const batch = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
        for (const m of batch.Messages ?? []) {
          const body = JSON.parse(m.Body!) as { Subject: string; Message: string };
          received.push({ subject: body.Subject, message: body.Message });
          await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }));
        }
        if (received.length) break;
      }
      return received;
    },
  };
}
