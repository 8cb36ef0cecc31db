import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import type { contextSchema, drillSchema, groupSchema, PropsOf } from './config';
import type { CalendarConfig } from '../../format/agent-config';
import { DEFAULT_DRILL_TAG_KEY, DEFAULT_HOST_TAG_KEY, type Tier } from '../../format/layout';
import { DEFAULT_RPO_HOURS } from '../../format/lambda-settings';
import { DEFAULT_PARAMETER_PREFIX, type GroupParameters } from '../../format/parameters';
import { deploymentNameOf } from '../../format/replica';
import { AgentDelivery } from './agent-delivery';
import { ColdsealAlarms } from './alarms';
import { Alerts } from './alerts';
import { ColdsealDashboard } from './dashboard';
import { DeadLetters } from './dead-letters';
import { DeploymentInfoParameter } from './deployment-info';
import { DrillAccess } from './drill-access';
import { HostAccess } from './host-access';
import { retentionWithDefaults, timeZoneProblem, type RetentionSettings, type TierRetention } from './rules';
import { ColdsealMonitor } from './monitor';
import { DEFAULT_MAX_PENDING_HOURS, replicaProblems, type ReplicaSettings } from './replica-settings';
import { VaultReplication } from './replication';
import { BackupSchedules } from './schedules';
import { GroupSigningKey } from './signing-key';
import { ColdsealVerifier } from './verifier';
import { DataVault } from './vault';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';

/** Drills run weekly at most; a newest receipt older than this is a finding. */
const DRILL_MAX_AGE_DAYS = 8;

/** A group: the context's group settings (config.ts), with its name, and its signing keys as armored text. */
export interface BackupGroupSettings extends Omit<PropsOf<typeof groupSchema>, 'signingPublicKeys'> {
  /** Group name: hosts carry it as the value of the host tag. */
  readonly name: string;
  /** Armored signing PUBLIC key(s) of the group (coldseal keys generate). Never the private half. */
  readonly signingPublicKeys: string;
}

/** A restore drill on a designated host (the context's drill settings, config.ts). */
export type DrillSettings = PropsOf<typeof drillSchema>;

/** The settings a context can give (config.ts documents them), and what only code can give. */
export interface ColdsealProps extends Pick<PropsOf<typeof contextSchema>, 'hostTagKey' | 'timeZone' | 'rpoHours' | 'alertEmails' | 'parameterPrefix'> {
  readonly groups: readonly BackupGroupSettings[];
  /** Armored public key(s) every dump is encrypted to. Never a private key. */
  readonly recipients: string;
  /**
   * Which day is promoted to which tier.
   * @default 1 January yearly, the 1st monthly, Sunday weekly
   */
  readonly calendar?: Omit<Partial<CalendarConfig>, 'timeZone'>;
  /**
   * Expiry, archive transitions and Object Lock per tier; tiers left out keep the default.
   * @default DEFAULT_RETENTION (daily 35 d; weekly 90 d; monthly Glacier at 30 d, 400 d; yearly Deep Archive, 7 y)
   */
  readonly retention?: Partial<Record<Tier, TierRetention>>;
  /**
   * A restore drill on a designated host.
   * @default - no drill schedule
   */
  readonly drill?: DrillSettings;
  /**
   * An offsite replica vault in another region (optionally another account), filled by S3
   * replication; deploy ColdsealReplicaStack there first (buildApp adds it). The stack needs an
   * explicit region (env.region) then.
   * @default - no replica
   */
  readonly replica?: ReplicaSettings;
  /**
   * Names the replica bucket, its key alias and the replication role (format/replica.ts).
   * @default - derived from the stack name
   */
  readonly deploymentName?: string;
  /** The agent bundle: one JavaScript file (`npm run build:agent` writes dist/agent/coldseal-agent.js). */
  readonly agentBundle: string;
  /**
   * What happens to the data bucket, the log bucket, the keys and the command logs when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Time a backup may take before SSM stops it.
   * @default Duration.hours(4)
   */
  readonly executionTimeout?: Duration;
  /**
   * Hosts of a group backed up at once.
   * @default '10'
   */
  readonly maxConcurrency?: string;
  /**
   * @default '100%' - every host is attempted; each failure alerts on its own
   */
  readonly maxErrors?: string;
  /**
   * Retention of the command output log group.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly commandLogRetention?: logs.RetentionDays;
}

/** What a later construct (verifier, monitor, dashboards) needs to know about one group. */
export interface GroupHandle {
  readonly name: string;
  readonly parameters: GroupParameters;
  readonly sourceNames: readonly string[];
  readonly timeZone: string;
  /** Managed policy to attach to the group's hosts' roles. */
  readonly instancePolicy: iam.ManagedPolicy;
}

/**
 * The whole of coldseal as one construct: the data vault, the alert topic, the agent's delivery,
 * the hosts' access, and the schedules. Add it to any CDK app; the verifier and monitor attach
 * to what it exposes (bucket, keys, topic, document, groups).
 */
export class Coldseal extends Construct {
  readonly vault: DataVault;
  readonly alerts: Alerts;
  readonly delivery: AgentDelivery;
  readonly schedules: BackupSchedules;
  readonly deploymentInfo: DeploymentInfoParameter;
  readonly hostAccess: ReadonlyMap<string, HostAccess>;
  /** Per group: the KMS key of its signing-key SecureString (coldseal keys publish uses it). */
  readonly signingKeys: ReadonlyMap<string, GroupSigningKey>;
  readonly drillAccess?: DrillAccess;
  readonly groups: readonly GroupHandle[];
  readonly retention: RetentionSettings;
  readonly rpo: Duration;
  readonly hostTagKey: string;
  readonly parameterPrefix: string;
  readonly drill?: Required<DrillSettings>;
  readonly verifier: ColdsealVerifier;
  readonly monitor: ColdsealMonitor;
  readonly alarms: ColdsealAlarms;
  readonly dashboard: ColdsealDashboard;
  /** Where every schedule and rule keeps a target call that AWS refused; any message alarms. */
  readonly deadLetters: DeadLetters;
  /** Replication into the offsite replica vault, when props.replica is set. */
  readonly replication?: VaultReplication;

  constructor(scope: Construct, id: string, props: ColdsealProps) {
    super(scope, id);
    if (props.groups.length === 0) throw new Error('Coldseal props.groups: at least one group is needed');
    const timeZone = props.timeZone ?? 'UTC';
    const zoneProblem = timeZoneProblem(timeZone);
    if (zoneProblem) throw new Error(`Coldseal props.timeZone: ${zoneProblem}`);
    const rpoHours = props.rpoHours ?? DEFAULT_RPO_HOURS;
    if (!(rpoHours > 0)) throw new Error(`Coldseal props.rpoHours must be positive, got ${rpoHours}`);
    if (props.drill && !props.groups.some((g) => g.name === props.drill?.group)) {
      throw new Error(`Coldseal props.drill.group: "${props.drill.group}" is not one of props.groups`);
    }
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.retention = retentionWithDefaults(props.retention);
    this.rpo = Duration.hours(rpoHours);
    this.hostTagKey = props.hostTagKey ?? DEFAULT_HOST_TAG_KEY;
    this.parameterPrefix = props.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX;
    this.drill = props.drill
      ? { group: props.drill.group, schedule: props.drill.schedule, timeZone: props.drill.timeZone ?? timeZone, hostTagKey: props.drill.hostTagKey ?? DEFAULT_DRILL_TAG_KEY }
      : undefined;
    if (this.drill && this.drill.hostTagKey === this.hostTagKey) {
      throw new Error('Coldseal props.drill.hostTagKey must differ from props.hostTagKey: the drill host is picked by its own tag');
    }

    if (props.replica) {
      const stack = Stack.of(this);
      const problems = replicaProblems(props.replica, this.retention, { account: stack.account, region: stack.region });
      if (problems.length > 0) throw new Error(`Coldseal props.replica: ${problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; ')}`);
    }

    this.vault = new DataVault(this, 'Vault', { retention: this.retention, removalPolicy });
    this.alerts = new Alerts(this, 'Alerts', { emails: props.alertEmails, removalPolicy });
    if (props.replica) {
      this.replication = new VaultReplication(this, 'Replication', {
        bucket: this.vault.bucket,
        key: this.vault.key,
        name: props.deploymentName ?? deploymentNameOf(Stack.of(this).stackName),
        region: props.replica.region,
        account: props.replica.account,
        replicationTimeControl: props.replica.replicationTimeControl,
        eventsKey: this.alerts.key,
      });
    }
    const groups = props.groups.map((g) => ({ ...g, timeZone: g.timeZone ?? timeZone }));
    this.delivery = new AgentDelivery(this, 'Agent', {
      groups,
      recipients: props.recipients,
      bucketName: this.vault.bucket.bucketName,
      kmsKeyArn: this.vault.key.keyArn,
      alertTopicArn: this.alerts.topic.topicArn,
      retention: this.retention,
      calendar: props.calendar,
      parameterPrefix: this.parameterPrefix,
      agentBundle: props.agentBundle,
      executionTimeout: props.executionTimeout,
    });
    this.deadLetters = new DeadLetters(this, 'Undelivered', { removalPolicy });
    this.schedules = new BackupSchedules(this, 'Schedules', {
      deadLetterQueue: this.deadLetters.queue,
      document: this.delivery.document,
      backups: groups.map((g) => ({ group: g.name, cron: g.schedule, timeZone: g.timeZone, maxHosts: g.maxHosts })),
      hostTagKey: this.hostTagKey,
      drill: this.drill ? { group: this.drill.group, cron: this.drill.schedule, timeZone: this.drill.timeZone, hostTagKey: this.drill.hostTagKey } : undefined,
      maxConcurrency: props.maxConcurrency,
      maxErrors: props.maxErrors,
      executionTimeout: props.executionTimeout,
      logRetention: props.commandLogRetention,
      removalPolicy,
    });
    this.signingKeys = new Map(groups.map((g) => [g.name, new GroupSigningKey(this, `SigningKey-${g.name}`, { group: g.name, removalPolicy })]));
    this.deploymentInfo = new DeploymentInfoParameter(this, 'Deployment', {
      parameterPrefix: this.parameterPrefix,
      info: {
        documentName: this.delivery.document.ref,
        hostTagKey: this.hostTagKey,
        ...(this.drill ? { drill: { group: this.drill.group, hostTagKey: this.drill.hostTagKey } } : {}),
        groups: groups.map((g) => g.name),
        commandLogGroup: this.schedules.logGroup.logGroupName,
        executionTimeoutSeconds: this.delivery.executionTimeoutSeconds,
        maxConcurrency: this.schedules.maxConcurrency,
        maxErrors: this.schedules.maxErrors,
        maxHosts: Object.fromEntries(this.schedules.maxHosts),
        signingKeys: Object.fromEntries([...this.signingKeys].map(([name, k]) => [name, k.key.keyArn])),
        ...(this.replication ? { replica: this.replication.location } : {}),
      },
    });

    const access = new Map<string, HostAccess>();
    const handles: GroupHandle[] = [];
    for (const group of groups) {
      const parameters = this.delivery.groupParameters.get(group.name)!;
      const hostAccess = new HostAccess(this, `Hosts-${group.name}`, {
        group: group.name,
        parameters: parameters.names,
        signingKey: this.signingKeys.get(group.name)!.key,
        bucket: this.vault.bucket,
        key: this.vault.key,
        objectLock: Object.fromEntries(Object.entries(this.retention).map(([tier, r]) => [tier, r.lock])) as Record<Tier, TierRetention['lock']>,
        topic: this.alerts.topic,
        topicKey: this.alerts.key,
        agentBundle: this.delivery.asset,
        commandLogGroup: this.schedules.logGroup,
      });
      access.set(group.name, hostAccess);
      handles.push({
        name: group.name,
        parameters: parameters.names,
        sourceNames: group.sources.map((s) => s.name),
        timeZone: group.timeZone,
        instancePolicy: hostAccess.policy,
      });
    }
    this.hostAccess = access;
    this.groups = handles;
    if (this.drill) {
      this.drillAccess = new DrillAccess(this, 'DrillHost', { group: this.drill.group, bucket: this.vault.bucket, key: this.vault.key });
    }

    // Verification and monitoring: what the Lambdas expect of each group.
    const lambdaGroups = handles.map((g) => ({
      name: g.name,
      sources: [...g.sourceNames],
      rpoHours,
      retentionDays: Object.fromEntries(Object.entries(this.retention).map(([tier, r]) => [tier, r.expireAfterDays])),
      lockDays: Object.fromEntries(Object.entries(this.retention).map(([tier, r]) => [tier, r.lock.days])),
      drillMaxAgeDays: this.drill?.group === g.name ? DRILL_MAX_AGE_DAYS : null,
    }));
    const lambdaProps = {
      bucket: this.vault.bucket,
      dataKey: this.vault.key,
      topic: this.alerts.topic,
      topicKey: this.alerts.key,
      parameterPrefix: this.parameterPrefix,
      groups: lambdaGroups,
      hostTagKey: this.hostTagKey,
      documentName: this.delivery.document.ref,
      removalPolicy,
      // The vault turns on the bucket's EventBridge notifications itself.
      enableBucketEvents: false,
      deadLetterQueue: this.deadLetters.queue,
      extraSettings: props.replica ? { COLDSEAL_REPLICA_MAX_PENDING_HOURS: String(props.replica.maxPendingHours ?? DEFAULT_MAX_PENDING_HOURS) } : undefined,
    };
    this.verifier = new ColdsealVerifier(this, 'Verifier', lambdaProps);
    this.monitor = new ColdsealMonitor(this, 'Monitor', lambdaProps);
    // S3 sends replication failures as event notifications (not to EventBridge): through this topic.
    this.replication?.eventsTopic.addSubscription(new subscriptions.LambdaSubscription(this.monitor.function.fn));
    this.alarms = new ColdsealAlarms(this, 'Alarms', { topic: this.alerts.topic, verifierFunction: this.verifier.function.fn, monitorFunction: this.monitor.function.fn, monitorInterval: this.monitor.interval, groups: lambdaGroups, deadLetterQueue: this.deadLetters.queue });
    this.dashboard = new ColdsealDashboard(this, 'Dashboard', { groups: lambdaGroups, alarms: this.alarms, dashboardName: `coldseal-${Stack.of(this).stackName}` });
  }

  get bucket(): s3.Bucket {
    return this.vault.bucket;
  }

  get dataKey(): kms.Key {
    return this.vault.key;
  }

  get alertTopic(): sns.Topic {
    return this.alerts.topic;
  }

  get document(): ssm.CfnDocument {
    return this.delivery.document;
  }

  get commandLogGroup(): logs.LogGroup {
    return this.schedules.logGroup;
  }
}
