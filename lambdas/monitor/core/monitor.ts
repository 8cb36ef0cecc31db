import { BACKUPS_PREFIX, dateOfStamp, hostNameFrom, parseKey, reportKeys } from '../../../format/layout';
import { peekManifest } from '../../../runtime/signed-document';
import { alertMessage, hasNews, loadAlertRecords, publishAlert, reconcileAlerts, type AlertPlan } from '../../shared/alerts';
import { makeFinding, sortFindings, type Check, type Finding } from '../../shared/findings';
import type { BucketStore, Clock, CommandHistory, InstanceDirectory, KeyListing, Log, ManagedInstance, MetricsSink, Notifier } from '../../shared/ports';
import type { Settings } from '../../../format/lambda-settings';
import { freshnessFindings, type NewestBackup } from '../../shared/freshness';
import { reportSchema, type Report } from '../../../format/verification-report';
import type { CommandStatusDetail } from '../../../format/command-status';
import { commandFailureFinding } from './command-failure';
import { eventKey, isReplicationFailure, replicationFailureFinding, s3Records, type SnsLambdaEvent } from './replication-failure';

export interface MonitorDeps {
  readonly store: BucketStore & KeyListing;
  readonly notifier: Notifier;
  readonly instances: InstanceDirectory;
  readonly commands: CommandHistory;
  readonly metrics: MetricsSink;
  readonly clock: Clock;
  readonly log: Log;
  readonly settings: Settings;
}

export interface MonitorResult {
  readonly findings: Finding[];
  readonly plan: AlertPlan;
  readonly published: { subject: string; body: string } | undefined;
}

/** A failed, timed-out or cancelled run of the backup document: alert within minutes. */
export async function handleCommandStatus(deps: MonitorDeps, detail: CommandStatusDetail): Promise<MonitorResult | undefined> {
  const finding = await commandFailureFinding(deps, detail);
  if (!finding) return undefined;
  const plan = await reconcileAlerts(deps, [finding]);
  const published = plan.opened.length ? await publishAlert(deps.notifier, alertMessage({ origin: 'SSM command', plan }), 'alert') : undefined;
  if (!published) deps.log.info('command failure already alerted for this host within the repeat window', { id: finding.id });
  return { findings: [finding], plan, published };
}

/**
 * S3 replication events, through the replication topic: a failed copy to the offsite replica
 * alerts like a failed backup command, once per backup. Missed-threshold events (RTC) are only
 * logged: a late copy is still a copy, and the verifier reports one that stays pending.
 */
export async function handleReplicationEvents(deps: MonitorDeps, event: SnsLambdaEvent): Promise<MonitorResult | undefined> {
  const { settings, log } = deps;
  const findings: Finding[] = [];
  for (const record of s3Records(event)) {
    if (record.s3.bucket.name !== settings.bucket) {
      log.warn('replication event for another bucket ignored', { bucket: record.s3.bucket.name, key: record.s3.object.key });
      continue;
    }
    if (!isReplicationFailure(record)) {
      log.info('replication event (not a failure)', { eventName: record.eventName, key: eventKey(record.s3.object.key) });
      continue;
    }
    findings.push(replicationFailureFinding(record, deps.clock.now()));
  }
  if (findings.length === 0) return undefined;
  const plan = await reconcileAlerts(deps, findings);
  const published = plan.opened.length
    ? await publishAlert(deps.notifier, alertMessage({ origin: 'S3 replication', plan: { ...plan, reminded: [] }, footer: ['The daily verification report checks every backup\'s replication status and closes this alert once the backup is replicated.'] }), 'alert')
    : undefined;
  if (!published) log.info('replication failure already alerted for this backup', { ids: findings.map((f) => f.id) });
  return { findings, plan, published };
}

const MONITOR_CHECKS: ReadonlySet<Check> = new Set(['rpo', 'never-backed-up', 'instance-not-reporting', 'command-failed']);
const STATUS_VALUE = { OK: 0, WARN: 1, FAIL: 2 } as const;

interface Newest {
  stamp: string;
  key: string;
}

/** The latest verification report (today's, else yesterday's): per-source status for metrics. */
async function latestReport(store: BucketStore, now: Date, log: Log): Promise<Report | undefined> {
  for (const day of [now, new Date(now.getTime() - 86_400_000)]) {
    const text = await store.getText(reportKeys(day).json);
    if (!text) continue;
    const parsed = reportSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data;
    log.warn('verification report does not match the schema', { key: reportKeys(day).json });
  }
  return undefined;
}

/**
 * Every few hours: is every expected source fresh, is every tagged instance reporting to SSM, are
 * earlier command failures still unanswered by a successful backup? Emits the per-source metrics
 * that the alarms and the dashboard use, and a heartbeat whose absence is itself an alarm.
 */
export async function runMonitor(deps: MonitorDeps): Promise<MonitorResult> {
  const { store, settings, log } = deps;
  const now = deps.clock.now();
  const findings: Finding[] = [];
  const newest = new Map<string, Newest>();
  const newestByHost = new Map<string, string>();
  for (const object of await store.list(BACKUPS_PREFIX)) {
    const parsed = parseKey(object.key);
    if (parsed?.kind !== 'manifest') continue;
    const id = `${parsed.group}/${parsed.host}/${parsed.source}`;
    if ((newest.get(id)?.stamp ?? '') < parsed.stamp) newest.set(id, { stamp: parsed.stamp, key: object.key });
    const hostId = `${parsed.group}/${parsed.host}`;
    if ((newestByHost.get(hostId) ?? '') < parsed.stamp) newestByHost.set(hostId, parsed.stamp);
  }
  const report = await latestReport(store, now, log);
  const evaluated = new Set<string>();
  const evaluatedHosts = new Set<string>();

  for (const group of settings.groups) {
    let instances: ManagedInstance[] = [];
    try {
      instances = await deps.instances.listGroup(settings.tagKey, group.name);
    } catch (error) {
      log.error('cannot list the group\'s managed instances', { group: group.name, error: (error as Error).message });
    }
    const tagged = new Map(instances.map((i) => [hostNameFrom(i.computerName), i]));
    const hosts = new Set([...tagged.keys(), ...group.hosts]);
    for (const id of newest.keys()) if (id.startsWith(`${group.name}/`)) hosts.add(id.split('/')[1]);
    let maxAge = 0;
    let overRpo = 0;
    let failedVerifications = 0;
    for (const host of [...hosts].sort()) {
      evaluatedHosts.add(`${group.name}/${host}`);
      const sources = new Set(group.sources);
      for (const id of newest.keys()) if (id.startsWith(`${group.name}/${host}/`)) sources.add(id.split('/')[2]);
      for (const source of [...sources].sort()) {
        const id = `${group.name}/${host}/${source}`;
        evaluated.add(id);
        const latest = newest.get(id);
        let entry: (NewestBackup & { bytes: number; durationSeconds: number }) | undefined;
        if (latest) {
          // Unverified read, for freshness and metrics only: the verifier judges integrity.
          const text = await store.getText(latest.key);
          try {
            const m = peekManifest(text ?? '');
            entry = {
              stamp: latest.stamp,
              finishedAt: m.finishedAt,
              durationSeconds: (Date.parse(m.finishedAt) - Date.parse(m.startedAt)) / 1000,
              bytes: m.artifacts.reduce((n, a) => n + a.compressedBytes, 0),
            };
          } catch (error) {
            log.warn('newest manifest unreadable; the verifier reports it', { key: latest.key, error: (error as Error).message });
          }
        }
        const sourceResult = freshnessFindings({ group, host, source, newest: entry, now, bucket: settings.bucket, expected: true });
        if (!entry && tagged.has(host) && !group.hosts.includes(host)) {
          const instance = tagged.get(host)!;
          findings.push(makeFinding({ group: group.name, host, source, where: `instance ${instance.instanceId} (${instance.computerName}), tag ${settings.tagKey}=${group.name}`, subject: id, check: 'never-backed-up', severity: 'fail', since: now.toISOString(), summary: `instance ${instance.instanceId} carries the tag of group ${group.name} but has never produced a backup of ${source}`, action: `Check that the schedule targets this instance and that its agent config lists source "${source}" (SSM Run Command history); then run coldseal trigger --group ${group.name} --host ${host}. If the tag is a mistake, remove it.` }));
        } else {
          findings.push(...sourceResult);
        }
        const ageHours = entry ? (now.getTime() - Date.parse(entry.finishedAt)) / 3_600_000 : undefined;
        if (ageHours !== undefined) maxAge = Math.max(maxAge, ageHours);
        if (ageHours === undefined || ageHours > group.rpoHours) overRpo++;
        const reported = report?.sources.find((s) => s.group === group.name && s.host === host && s.source === source);
        if (reported?.status === 'FAIL') failedVerifications++;
        deps.metrics.source({ group: group.name, host, source, ageHours, sizeBytes: entry?.bytes, durationSeconds: entry?.durationSeconds, verificationStatus: reported ? STATUS_VALUE[reported.status] : undefined });
      }
    }
    const staleMs = settings.pingStaleMinutes * 60_000;
    for (const [host, instance] of tagged) {
      const lastPing = instance.lastPingAt?.getTime() ?? 0;
      if (instance.pingStatus === 'Online' && now.getTime() - lastPing <= staleMs) continue;
      findings.push(makeFinding({ group: group.name, host, where: `instance ${instance.instanceId} (${instance.computerName})`, subject: `${group.name}/${host}`, check: 'instance-not-reporting', severity: 'warn', since: instance.lastPingAt?.toISOString() ?? now.toISOString(), summary: `instance ${instance.instanceId} has not reported to SSM since ${instance.lastPingAt?.toISOString() ?? 'it was registered'} (ping status ${instance.pingStatus}): scheduled backups cannot reach it`, action: `Check that the instance is running, the SSM agent is up and can reach the SSM endpoints, and that its instance profile allows SSM. If it was retired, remove its ${settings.tagKey} tag.` }));
    }
    deps.metrics.group({ group: group.name, maxAgeHours: maxAge, sourcesOverRpo: overRpo, failedVerifications });
  }

  // A command failure stays open until the host has a backup newer than the failure.
  for (const record of (await loadAlertRecords(store, log)).values()) {
    const f = record.finding;
    if (f.check !== 'command-failed' || !f.group || !f.host) continue;
    const newestStamp = newestByHost.get(`${f.group}/${f.host}`);
    const newestMs = newestStamp ? dateOfStamp(newestStamp).getTime() : 0;
    if (newestMs <= Date.parse(f.since)) findings.push(f);
  }

  const plan = await reconcileAlerts(deps, sortFindings(findings), (f) => MONITOR_CHECKS.has(f.check) && (f.check === 'command-failed' || (f.source ? evaluated.has(`${f.group}/${f.host}/${f.source}`) : evaluatedHosts.has(`${f.group}/${f.host}`))));
  deps.metrics.heartbeat();
  const published = hasNews(plan)
    ? await publishAlert(deps.notifier, alertMessage({ origin: 'monitor', plan, footer: ['Open problems are repeated at most once a day; the daily verification report lists them all.'] }), 'alert')
    : undefined;
  log.info('monitor run done', { findings: findings.map((f) => f.id), published: published?.subject });
  return { findings, plan, published };
}
