import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface AlertsProps {
  /**
   * Addresses that receive alerts. Each must confirm the subscription from the email AWS sends.
   * @default - none: subscribe later (email, chat, paging) to the topic
   */
  readonly emails?: readonly string[];
  /**
   * @default RemovalPolicy.RETAIN for the topic's key
   */
  readonly removalPolicy?: RemovalPolicy;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** The one SNS topic every coldseal alert goes to, encrypted and SSL-only. */
export class Alerts extends Construct {
  readonly topic: sns.Topic;
  /** The topic's key; services that publish to the topic (alarms, rules) need to use it. */
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: AlertsProps = {}) {
    super(scope, id);
    for (const [index, email] of (props.emails ?? []).entries()) {
      if (!EMAIL.test(email)) throw new Error(`Alerts props.emails[${index}]: "${email}" is not an email address`);
    }
    this.key = new kms.Key(this, 'Key', {
      description: 'coldseal: encrypts the alert topic',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    // CloudWatch alarms publish as a service; an encrypted topic needs it to be allowed to use its
    // key, or its messages are dropped silently. ("*" in a key policy is this key itself.) No rule
    // publishes here (the topic policy lets no EventBridge rule in), so events.amazonaws.com gets
    // nothing: the recorded-calls proof found that grant unused.
    for (const service of ['cloudwatch.amazonaws.com']) {
      this.key.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: `AllowPublishFrom${service.split('.')[0]}`,
          principals: [new iam.ServicePrincipal(service)],
          actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          resources: ['*'],
        }),
      );
    }
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'coldseal alerts',
      masterKey: this.key,
      enforceSSL: true,
    });
    // A topic policy replaces SNS's default one, so CloudWatch alarms are let in here by name, and
    // only this account's alarms. The key statement above is not enough on its own.
    // https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html (SNS topic policy)
    const stack = Stack.of(this);
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarms',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }) },
        },
      }),
    );
    for (const email of props.emails ?? []) this.topic.addSubscription(new subscriptions.EmailSubscription(email));
  }

  /** Lets a principal publish alerts (and encrypt them with the topic's key). */
  grantPublish(grantee: iam.IGrantable): void {
    this.topic.grantPublish(grantee);
  }
}
