import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface DeadLettersProps {
  /**
   * How long a refused request is kept for the operator to read.
   * @default Duration.days(14), SQS's longest
   */
  readonly retention?: Duration;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The dead-letter queue of every schedule and rule target: a call that AWS refused (SendCommand
 * throttled or denied, a document version that does not exist, a Lambda that cannot be invoked)
 * leaves no SSM command and no failure event, only this message, which keeps the request and the
 * error for the operator. EventBridge Scheduler sends with the schedule's execution role
 * (sqs:SendMessage on it); EventBridge rules send as events.amazonaws.com, allowed by the queue
 * policy per rule (aws-events-targets adds it). SSE-SQS: encrypted at rest without a KMS key policy
 * for either service. A standard queue: Scheduler takes no FIFO queue.
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
 */
export class DeadLetters extends Construct {
  readonly queue: sqs.Queue;

  constructor(scope: Construct, id: string, props: DeadLettersProps = {}) {
    super(scope, id);
    const retention = props.retention ?? Duration.days(14);
    if (retention.toSeconds() < 60 || retention.toSeconds() > Duration.days(14).toSeconds()) {
      throw new Error(`DeadLetters props.retention must be 1 minute to 14 days (SQS's range), got ${retention.toHumanString()}`);
    }
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: retention,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the schedules and rules; a message that lands here is read by the operator, never redriven, so it needs no dead-letter queue of its own.',
    });
  }
}
