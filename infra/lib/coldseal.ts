import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { Tier } from '../../format/layout';
import type { GroupParameters } from '../../format/parameters';
import { deploymentNameOf, replicaListerRoleName } from '../../format/replica';
import { AgentDelivery } from './agent-delivery';
import { ColdsealAlarms } from './alarms';
import { Alerts } from './alerts';
import { ColdsealDashboard } from './dashboard';
import { DeadLetters } from './dead-letters';
import { DeploymentInfoParameter } from './deployment-info';
import { DrillAccess } from './drill-access';
import { HostAccess } from './host-access';
import { ColdsealMonitor } from './monitor';
import { VaultReplication } from './replication';
import { BackupSchedules } from './schedules';
import { coldsealSettings, DEFAULT_MAX_PENDING_HOURS, pitrSourcesOf, runsPerDayOf, type ColdsealProps, type ColdsealSettings, type DrillSettings, type RetentionSettings, type TierRetention } from './settings';
import { calendarSchema } from '../../format/agent-config';
import { GroupSigningKey } from './signing-key';
import { ColdsealVerifier } from './verifier';
import { DataVault } from './vault';

/** Drills run weekly at most; a newest receipt older than this is a finding. */
const DRILL_MAX_AGE_DAYS = 8;

/** What a later construct (verifier, monitor, dashboards) needs to know about one group. */
export interface GroupHandle {
  readonly name: string;
  readonly parameters: GroupParameters;
  readonly sourceNames: readonly string[];
  /** The group's PostgreSQL sources with point-in-time recovery (their WAL archive is watched). */
  readonly pitrSources: ReturnType<typeof pitrSourcesOf>;
  readonly timeZone: string;
  /** The group's backup schedule (EventBridge Scheduler cron). */
  readonly schedule: string;
  /** The group's recovery time objective, if it has one. */
  readonly rtoHours?: number;
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
  /** The WAL archive's recovery window and the monitor's grace (point-in-time recovery). */
  readonly pitr: ColdsealSettings['pitr'];
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
    const settings = coldsealSettings(props, Stack.of(this));
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.retention = settings.retention;
    this.rpo = Duration.hours(settings.rpoHours);
    this.pitr = settings.pitr;
    this.hostTagKey = settings.hostTagKey;
    this.parameterPrefix = settings.parameterPrefix;
    this.drill = settings.drill;

    this.vault = new DataVault(this, 'Vault', { retention: this.retention, walWindowDays: this.pitr.windowDays, removalPolicy });
    this.alerts = new Alerts(this, 'Alerts', { emails: settings.alertEmails, removalPolicy });
    if (settings.replica) {
      this.replication = new VaultReplication(this, 'Replication', {
        bucket: this.vault.bucket,
        key: this.vault.key,
        name: this.deploymentName(settings),
        region: settings.replica.region,
        account: settings.replica.account,
        replicationTimeControl: settings.replica.replicationTimeControl,
        eventsKey: this.alerts.key,
      });
    }
    this.delivery = new AgentDelivery(this, 'Agent', {
      groups: settings.groups,
      recipients: settings.recipients,
      bucketName: this.vault.bucket.bucketName,
      kmsKeyArn: this.vault.key.keyArn,
      alertTopicArn: this.alerts.topic.topicArn,
      retention: this.retention,
      calendar: settings.calendar,
      parameterPrefix: this.parameterPrefix,
      agentExecutables: settings.agentExecutables,
      executionTimeout: settings.executionTimeout,
    });
    this.deadLetters = new DeadLetters(this, 'Undelivered', { removalPolicy });
    this.schedules = new BackupSchedules(this, 'Schedules', {
      deadLetterQueue: this.deadLetters.queue,
      document: this.delivery.document,
      backups: settings.groups.map((g) => ({ group: g.name, cron: g.schedule, timeZone: g.timeZone, maxHosts: g.maxHosts })),
      hostTagKey: this.hostTagKey,
      drill: this.drill ? { group: this.drill.group, cron: this.drill.schedule, timeZone: this.drill.timeZone, hostTagKey: this.drill.hostTagKey } : undefined,
      maxConcurrency: settings.maxConcurrency,
      maxErrors: settings.maxErrors,
      executionTimeout: settings.executionTimeout,
      logRetention: settings.commandLogRetention,
      removalPolicy,
    });
    this.signingKeys = new Map(settings.groups.map((g) => [g.name, new GroupSigningKey(this, `SigningKey-${g.name}`, { group: g.name, removalPolicy })]));
    this.deploymentInfo = this.publishDeployment(settings);
    const { access, handles } = this.grantHosts(settings);
    this.hostAccess = access;
    this.groups = handles;
    if (this.drill) {
      const drillGroup = settings.groups.find((g) => g.name === this.drill!.group);
      this.drillAccess = new DrillAccess(this, 'DrillHost', {
        group: this.drill.group,
        bucket: this.vault.bucket,
        key: this.vault.key,
        walArchive: drillGroup !== undefined && pitrSourcesOf(drillGroup.sources).length > 0,
      });
    }

    const watched = this.watch(settings, removalPolicy);
    this.verifier = watched.verifier;
    this.monitor = watched.monitor;
    this.alarms = watched.alarms;
    this.dashboard = watched.dashboard;
  }

  private deploymentName(settings: ColdsealSettings): string {
    return settings.deploymentName ?? deploymentNameOf(Stack.of(this).stackName);
  }

  /** What `coldseal trigger` and the agent read about the deployment (format/parameters.ts). */
  private publishDeployment(settings: ColdsealSettings): DeploymentInfoParameter {
    return new DeploymentInfoParameter(this, 'Deployment', {
      parameterPrefix: this.parameterPrefix,
      info: {
        documentName: this.delivery.document.ref,
        hostTagKey: this.hostTagKey,
        ...(this.drill ? { drill: { group: this.drill.group, hostTagKey: this.drill.hostTagKey } } : {}),
        groups: settings.groups.map((g) => g.name),
        commandLogGroup: this.schedules.logGroup.logGroupName,
        executionTimeoutSeconds: this.delivery.executionTimeoutSeconds,
        maxConcurrency: this.schedules.maxConcurrency,
        maxErrors: this.schedules.maxErrors,
        maxHosts: Object.fromEntries(this.schedules.maxHosts),
        signingKeys: Object.fromEntries([...this.signingKeys].map(([name, k]) => [name, k.key.keyArn])),
        ...(this.replication ? { replica: this.replication.location } : {}),
      },
    });
  }

  /** Each group's hosts' access, and what the later constructs need to know of the group. */
  private grantHosts(settings: ColdsealSettings): { access: Map<string, HostAccess>; handles: GroupHandle[] } {
    const objectLock = Object.fromEntries(Object.entries(this.retention).map(([tier, r]) => [tier, r.lock])) as Record<Tier, TierRetention['lock']>;
    const access = new Map<string, HostAccess>();
    const handles: GroupHandle[] = [];
    for (const group of settings.groups) {
      const parameters = this.delivery.groupParameters.get(group.name)!;
      const pitrSources = pitrSourcesOf(group.sources);
      const hostAccess = new HostAccess(this, `Hosts-${group.name}`, {
        group: group.name,
        parameters: parameters.names,
        signingKey: this.signingKeys.get(group.name)!.key,
        bucket: this.vault.bucket,
        key: this.vault.key,
        objectLock,
        topic: this.alerts.topic,
        topicKey: this.alerts.key,
        agentExecutables: this.delivery.executables.map((e) => e.asset),
        commandLogGroup: this.schedules.logGroup,
        walArchive: pitrSources.length > 0,
      });
      access.set(group.name, hostAccess);
      handles.push({
        name: group.name,
        parameters: parameters.names,
        sourceNames: group.sources.map((s) => s.name),
        pitrSources,
        timeZone: group.timeZone,
        schedule: group.schedule,
        ...(group.rtoHours !== undefined ? { rtoHours: group.rtoHours } : {}),
        instancePolicy: hostAccess.policy,
      });
    }
    return { access, handles };
  }

  /** Verification and monitoring: the Lambdas, told what to expect of each group, their alarms and the dashboard. */
  private watch(settings: ColdsealSettings, removalPolicy: RemovalPolicy): { verifier: ColdsealVerifier; monitor: ColdsealMonitor; alarms: ColdsealAlarms; dashboard: ColdsealDashboard } {
    // The earliest day any tier's lifecycle moves objects into each class (one estimate of the month's transitions).
    const transitionAfterDays: Record<string, number> = {};
    for (const r of Object.values(this.retention)) for (const t of r.transitions ?? []) transitionAfterDays[t.storageClass] = Math.min(transitionAfterDays[t.storageClass] ?? t.afterDays, t.afterDays);
    const lambdaGroups = this.groups.map((g) => ({
      name: g.name,
      sources: [...g.sourceNames],
      rpoHours: settings.rpoHours,
      retentionDays: Object.fromEntries(Object.entries(this.retention).map(([tier, r]) => [tier, r.expireAfterDays])),
      lockDays: Object.fromEntries(Object.entries(this.retention).map(([tier, r]) => [tier, r.lock.days])),
      drillMaxAgeDays: this.drill?.group === g.name ? DRILL_MAX_AGE_DAYS : null,
      ...(g.pitrSources.length > 0 ? { pitrSources: [...g.pitrSources] } : {}),
      // What the report's recovery and cost figures need: the objective, the agents' calendar, the runs, the transitions.
      ...(g.rtoHours !== undefined ? { rtoHours: g.rtoHours } : {}),
      calendar: calendarSchema.parse({ ...(settings.calendar ?? {}), timeZone: g.timeZone }),
      runsPerDay: runsPerDayOf(g.schedule),
      ...(Object.keys(transitionAfterDays).length ? { transitionAfterDays } : {}),
    }));
    const hasPitr = this.groups.some((g) => g.pitrSources.length > 0);
    const extraSettings: Record<string, string> = {
      ...(settings.replica ? { COLDSEAL_REPLICA_MAX_PENDING_HOURS: String(settings.replica.maxPendingHours ?? DEFAULT_MAX_PENDING_HOURS) } : {}),
      ...(hasPitr ? { COLDSEAL_WAL_GRACE_MINUTES: String(this.pitr.graceMinutes) } : {}),
      ...(settings.prices ? { COLDSEAL_PRICE_OVERRIDE: JSON.stringify(settings.prices) } : {}),
    };
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
      extraSettings: Object.keys(extraSettings).length > 0 ? extraSettings : undefined,
    };
    const replication = this.replication;
    const verifier = new ColdsealVerifier(this, 'Verifier', {
      ...lambdaProps,
      ...(replication
        ? { replica: { bucketName: replication.location.bucket, bucketArn: replication.replicaBucketArn, region: replication.location.region, roleName: replicaListerRoleName(this.deploymentName(settings), Stack.of(this).region) } }
        : {}),
    });
    const monitor = new ColdsealMonitor(this, 'Monitor', lambdaProps);
    // S3 sends replication failures as event notifications (not to EventBridge): through this topic.
    this.replication?.eventsTopic.addSubscription(new subscriptions.LambdaSubscription(monitor.function.fn));
    const alarms = new ColdsealAlarms(this, 'Alarms', {
      topic: this.alerts.topic,
      verifierFunction: verifier.function.fn,
      monitorFunction: monitor.function.fn,
      monitorInterval: monitor.interval,
      groups: lambdaGroups,
      deadLetterQueue: this.deadLetters.queue,
      walGraceMinutes: this.pitr.graceMinutes,
    });
    const dashboard = new ColdsealDashboard(this, 'Dashboard', { groups: lambdaGroups, alarms, dashboardName: `coldseal-${Stack.of(this).stackName}` });
    return { verifier, monitor, alarms, dashboard };
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
