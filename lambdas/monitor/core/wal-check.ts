import { binlogPrefix, hostNameFrom, NAME_PATTERN, parseKey, WAL_PREFIX, WAL_WATERMARK_PREFIX, walPrefix } from '../../../format/layout';
import type { GroupSettings, Settings } from '../../../format/lambda-settings';
import { alertMessage, hasNews, publishAlert, reconcileAlerts, type AlertPlan } from '../../shared/alerts';
import { makeFinding, sortFindings, type Check, type Finding } from '../../shared/findings';
import type { BucketStore, Clock, InstanceDirectory, KeyListing, Log, MetricsSink, Notifier } from '../../shared/ports';

/**
 * The monitor's WAL check, every few minutes when a group has a PITR source: for every expected
 * host × PITR source, how old is the newest archived WAL file? It emits that age as a metric (the
 * recovery point achieved; the stack alarms on it too) and alerts when it is older than the
 * source's archive_timeout plus the grace, or when an expected host never archived at all.
 *
 * Cheap by construction: a WAL archive grows by about one object a minute per source and S3 bills
 * every LIST, so the check never lists a whole archive. Per source it keeps a watermark in the
 * Lambdas' state (the newest key and time seen), lists the timelines with a Delimiter listing
 * (one request), and in the newest timeline only the keys after the watermark (StartAfter): WAL
 * file names sort in WAL order (format/wal.ts), so what sorts after the watermark is what was
 * archived since. Ages come from S3's LastModified (when the object was stored): the check needs
 * no read of any WAL object, and the monitor's role has none.
 *
 * A MySQL/MariaDB source (engine "mysql") keeps its binary logs in one folder, binlog/, without
 * timelines: one StartAfter listing of it per run, its watermark on "timeline" 0. Binary log names
 * of one basename sort in sequence (format/layout.ts binlogObjectKey), and binlog-push rotates
 * even a quiet server (FLUSH BINARY LOGS) at every run, so its threshold is the push interval
 * plus the grace. A new basename (log_bin renamed) or the step from 999999 to 1000000 can sort
 * before the watermark: those files go unseen and the source looks late (never too young) until
 * the watermark state is deleted.
 */

export interface WalCheckDeps {
  readonly store: BucketStore & KeyListing;
  readonly notifier: Notifier;
  readonly instances: InstanceDirectory;
  readonly metrics: MetricsSink;
  readonly clock: Clock;
  readonly log: Log;
  readonly settings: Pick<Settings, 'groups' | 'tagKey' | 'bucket' | 'repeatHours' | 'walGraceMinutes'>;
}

/** What the check remembers of one host's archive of one source between runs. */
export interface WalWatermark {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  /** The newest timeline listed (0: a binary log archive, which has none), and the last key (in key order) seen in it. */
  readonly timeline: number;
  readonly newestKey: string;
  /** The newest LastModified seen (ISO): when the newest archived WAL reached S3. */
  readonly newestAt: string;
}

export interface WalSourceState {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly engine: 'postgres' | 'mysql';
  readonly thresholdSeconds: number;
  /** Undefined when the host never archived this source. */
  readonly newest: WalWatermark | undefined;
  readonly ageSeconds: number | undefined;
  /** LIST requests this source cost in this run (the point of the watermark). */
  readonly listRequests: number;
}

export interface WalCheckResult {
  readonly sources: WalSourceState[];
  readonly findings: Finding[];
  readonly plan: AlertPlan;
  readonly published: { subject: string; body: string } | undefined;
}

export const WAL_CHECKS: ReadonlySet<Check> = new Set<Check>(['wal-archive-late', 'wal-never-archived', 'binlog-archive-late', 'binlog-never-archived']);

export function watermarkKey(group: string, host: string, source: string): string {
  return `${WAL_WATERMARK_PREFIX}${group}/${host}/${source}.json`;
}

/** Where a watermark's key must lie: the timeline's folder, or the binary log folder (timeline 0). */
function archivePrefix(group: string, host: string, source: string, timeline: number): string {
  return timeline === 0 ? binlogPrefix(group, host, source) : walPrefix(group, host, source, timeline);
}

function isWatermark(value: unknown, group: string, host: string, source: string): value is WalWatermark {
  const w = value as Partial<WalWatermark> | null;
  return (
    typeof w === 'object' &&
    w !== null &&
    w.group === group &&
    w.host === host &&
    w.source === source &&
    Number.isInteger(w.timeline) &&
    typeof w.newestKey === 'string' &&
    w.newestKey.startsWith(archivePrefix(group, host, source, w.timeline!)) &&
    typeof w.newestAt === 'string' &&
    !Number.isNaN(Date.parse(w.newestAt))
  );
}

async function loadWatermark(store: BucketStore, log: Log, group: string, host: string, source: string): Promise<WalWatermark | undefined> {
  const key = watermarkKey(group, host, source);
  const text = await store.getText(key);
  if (text === null) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (isWatermark(value, group, host, source)) return value;
  } catch {
    // Unreadable: listed again from the start of the newest timeline below, and rewritten.
  }
  log.warn('ignoring an unreadable WAL watermark; the newest timeline is listed in full once', { key });
  return undefined;
}

/** Timeline directories are 8 upper-case hex digits (format/layout.ts walPrefix). */
function timelineOf(prefix: string): number | undefined {
  const match = /\/([0-9A-F]{8})\/$/.exec(prefix);
  const timeline = match ? Number.parseInt(match[1], 16) : 0;
  return timeline >= 1 ? timeline : undefined;
}

/**
 * The newest archived WAL of one host's source: timelines by a Delimiter listing, then the newest
 * timeline after the watermark. A watermark on an older timeline (a promotion since) or none lists
 * the newest timeline from its start, once. A file stored after the watermark's run under a key
 * that sorts before it (archive-push uploads a few files in parallel) is not seen: the age is then
 * at most those few seconds too old, never too young.
 */
export async function newestArchivedWal(store: KeyListing, group: string, host: string, source: string, watermark: WalWatermark | undefined): Promise<{ newest: WalWatermark | undefined; listRequests: number }> {
  const sourcePrefix = `${WAL_PREFIX}${group}/${host}/${source}/`;
  const timelines = (await store.listPrefixes(sourcePrefix)).map(timelineOf).filter((t): t is number => t !== undefined);
  let listRequests = 1;
  if (timelines.length === 0) return { newest: undefined, listRequests };
  const timeline = Math.max(...timelines);
  const continues = watermark !== undefined && watermark.timeline === timeline;
  const listed = await store.listAfter(walPrefix(group, host, source, timeline), continues ? watermark.newestKey : undefined);
  listRequests++;
  let newestKey = continues ? watermark.newestKey : '';
  let newestMs = continues ? Date.parse(watermark.newestAt) : Number.NEGATIVE_INFINITY;
  for (const object of listed) {
    if (parseKey(object.key)?.kind !== 'wal') continue;
    if (object.key > newestKey) newestKey = object.key;
    newestMs = Math.max(newestMs, object.lastModified.getTime());
  }
  if (newestKey === '') {
    // A timeline folder with nothing of ours in it: fall back to what was known.
    return { newest: watermark, listRequests };
  }
  return { newest: { group, host, source, timeline, newestKey, newestAt: new Date(newestMs).toISOString() }, listRequests };
}

/**
 * The newest archived binary log of one host's source: the binlog/ folder after the watermark, one
 * request. A watermark of a PostgreSQL archive under the same name (a source that changed engine)
 * lists the folder from its start, once.
 */
export async function newestArchivedBinlog(store: KeyListing, group: string, host: string, source: string, watermark: WalWatermark | undefined): Promise<{ newest: WalWatermark | undefined; listRequests: number }> {
  const continues = watermark !== undefined && watermark.timeline === 0;
  const listed = await store.listAfter(binlogPrefix(group, host, source), continues ? watermark.newestKey : undefined);
  let newestKey = continues ? watermark.newestKey : '';
  let newestMs = continues ? Date.parse(watermark.newestAt) : Number.NEGATIVE_INFINITY;
  for (const object of listed) {
    if (parseKey(object.key)?.kind !== 'binlog') continue;
    if (object.key > newestKey) newestKey = object.key;
    newestMs = Math.max(newestMs, object.lastModified.getTime());
  }
  if (newestKey === '') return { newest: continues ? watermark : undefined, listRequests: 1 };
  return { newest: { group, host, source, timeline: 0, newestKey, newestAt: new Date(newestMs).toISOString() }, listRequests: 1 };
}

const IDLE_NOTE =
  'An idle server looks late too: PostgreSQL switches to a new WAL segment at archive_timeout only when WAL was written since the last switch, so a server without writes archives nothing. Keep a little write activity (a heartbeat row updated every minute) so that this age measures archiving, not idleness.';

function lateFinding(settings: WalCheckDeps['settings'], state: WalSourceState & { newest: WalWatermark; ageSeconds: number }, archiveTimeoutSeconds: number): Finding {
  const { group, host, source, newest } = state;
  const since = new Date(Date.parse(newest.newestAt) + state.thresholdSeconds * 1000).toISOString();
  return makeFinding({
    group,
    host,
    source,
    subject: `${group}/${host}/${source}`,
    check: 'wal-archive-late',
    severity: 'fail',
    where: `s3://${settings.bucket}/${newest.newestKey}`,
    since,
    summary: `the newest archived WAL of ${source} on ${host} reached S3 ${minutes(state.ageSeconds)} ago (at ${newest.newestAt}), more than archive_timeout (${archiveTimeoutSeconds} s) + ${settings.walGraceMinutes} min grace: a restore now would lose everything written since`,
    action:
      `On ${host}, as the PostgreSQL superuser: SELECT * FROM pg_stat_archiver (failed_count, last_failed_wal, last_failed_time) and the server log show why archive_command fails; ` +
      `coldseal pitr setup --source ${source} shows whether archive_mode, archive_command and archive_timeout are set (archive_mode needs a restart). ` +
      `Check that the host reaches S3 and that its role carries the coldseal instance policy of group ${group}. While archiving fails PostgreSQL keeps every WAL file in pg_wal: watch its disk. ${IDLE_NOTE}`,
  });
}

const BINLOG_CHECKS = (host: string, source: string, group: string) =>
  `On ${host}, as root: systemctl list-timers 'coldseal*' shows whether the binlog-push timer runs (journalctl on its unit shows its last runs); run coldseal pitr binlog-push --source ${source} by hand to see its error; ` +
  `coldseal pitr setup --source ${source} checks log_bin, binlog_format, server_id, binlog_expire_logs_seconds and the account's privileges. ` +
  `Check that the host reaches S3 and that its role carries the coldseal instance policy of group ${group}. The server keeps closed binary logs only for binlog_expire_logs_seconds: an outage longer than that loses them (the verifier then reports the gap), so act before it runs out.`;

function lateBinlogFinding(settings: WalCheckDeps['settings'], state: WalSourceState & { newest: WalWatermark; ageSeconds: number }, intervalSeconds: number): Finding {
  const { group, host, source, newest } = state;
  const file = parseKey(newest.newestKey);
  return makeFinding({
    group,
    host,
    source,
    subject: `${group}/${host}/${source}`,
    check: 'binlog-archive-late',
    severity: 'fail',
    where: `s3://${settings.bucket}/${newest.newestKey}`,
    since: new Date(Date.parse(newest.newestAt) + state.thresholdSeconds * 1000).toISOString(),
    summary: `the newest archived binary log of ${source} on ${host}${file?.kind === 'binlog' ? `, ${file.binlogFile},` : ''} reached S3 ${minutes(state.ageSeconds)} ago (at ${newest.newestAt}), more than the binlog-push interval (${intervalSeconds} s) + ${settings.walGraceMinutes} min grace: a restore now would lose everything written since`,
    action: BINLOG_CHECKS(host, source, group),
  });
}

function neverBinlogFinding(settings: WalCheckDeps['settings'], state: WalSourceState, why: string, since: Date): Finding {
  const { group, host, source } = state;
  return makeFinding({
    group,
    host,
    source,
    subject: `${group}/${host}/${source}`,
    check: 'binlog-never-archived',
    severity: 'fail',
    where: `s3://${settings.bucket}/${binlogPrefix(group, host, source)} (${why})`,
    since: since.toISOString(),
    summary: `${host} is expected to archive the binary logs of ${source} (point-in-time recovery is enabled for it in group ${group}), but no binary log of it was ever archived`,
    action: `${BINLOG_CHECKS(host, source, group)} If this host does not run ${source}, remove it from the group (its ${settings.tagKey} tag) or move the source to a group of its own.`,
  });
}

/** `since` is this run: the alert state keeps when it was first seen. */
function neverFinding(settings: WalCheckDeps['settings'], state: WalSourceState, why: string, since: Date): Finding {
  const { group, host, source } = state;
  return makeFinding({
    group,
    host,
    source,
    subject: `${group}/${host}/${source}`,
    check: 'wal-never-archived',
    severity: 'fail',
    where: `s3://${settings.bucket}/${WAL_PREFIX}${group}/${host}/${source}/ (${why})`,
    since: since.toISOString(),
    summary: `${host} is expected to archive the WAL of ${source} (point-in-time recovery is enabled for it in group ${group}), but no WAL file of it was ever archived`,
    action:
      `On ${host}, as root: coldseal pitr setup --source ${source} --apply (then restart PostgreSQL if it says so), and check SELECT * FROM pg_stat_archiver. ` +
      `If this host does not run ${source}, remove it from the group (its ${settings.tagKey} tag) or move the source to a group of its own. ${IDLE_NOTE}`,
  });
}

function minutes(seconds: number): string {
  return seconds < 5400 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

/** The hosts the check expects to archive: tagged instances, pinned hosts, and hosts already in the group's archive. */
async function expectedHosts(deps: WalCheckDeps, group: GroupSettings): Promise<Map<string, string>> {
  const hosts = new Map<string, string>();
  try {
    for (const instance of await deps.instances.listGroup(deps.settings.tagKey, group.name)) {
      hosts.set(hostNameFrom(instance.computerName), `instance ${instance.instanceId} (${instance.computerName}), tag ${deps.settings.tagKey}=${group.name}`);
    }
  } catch (error) {
    deps.log.error("cannot list the group's managed instances", { group: group.name, error: (error as Error).message });
  }
  for (const host of group.hosts) if (!hosts.has(host)) hosts.set(host, `host ${host} pinned in the group's settings`);
  for (const prefix of await deps.store.listPrefixes(`${WAL_PREFIX}${group.name}/`)) {
    const host = prefix.slice(`${WAL_PREFIX}${group.name}/`.length, -1);
    if (NAME_PATTERN.test(host) && !hosts.has(host)) hosts.set(host, `host ${host}, found in the group's WAL archive`);
  }
  return hosts;
}

export async function runWalCheck(deps: WalCheckDeps): Promise<WalCheckResult> {
  const { store, settings, log } = deps;
  const now = deps.clock.now();
  const findings: Finding[] = [];
  const sources: WalSourceState[] = [];
  const evaluated = new Set<string>();
  for (const group of settings.groups) {
    const pitrSources = group.pitrSources ?? [];
    if (pitrSources.length === 0) continue;
    const hosts = await expectedHosts(deps, group);
    for (const [host, why] of [...hosts].sort(([a], [b]) => a.localeCompare(b))) {
      for (const { source, archiveTimeoutSeconds, engine: configured } of pitrSources) {
        const engine = configured === 'mysql' ? 'mysql' : 'postgres';
        const thresholdSeconds = archiveTimeoutSeconds + settings.walGraceMinutes * 60;
        const previous = await loadWatermark(store, log, group.name, host, source);
        const { newest, listRequests } = await (engine === 'mysql' ? newestArchivedBinlog : newestArchivedWal)(store, group.name, host, source, previous);
        if (newest && JSON.stringify(newest) !== JSON.stringify(previous)) {
          await store.put(watermarkKey(group.name, host, source), JSON.stringify(newest), 'application/json');
        }
        const ageSeconds = newest ? Math.max(0, (now.getTime() - Date.parse(newest.newestAt)) / 1000) : undefined;
        const state: WalSourceState = { group: group.name, host, source, engine, thresholdSeconds, newest, ageSeconds, listRequests };
        sources.push(state);
        evaluated.add(`${group.name}/${host}/${source}`);
        if (newest && ageSeconds !== undefined) {
          deps.metrics.walArchive({ group: group.name, host, source, ageSeconds });
          if (ageSeconds > thresholdSeconds) findings.push((engine === 'mysql' ? lateBinlogFinding : lateFinding)(settings, { ...state, newest, ageSeconds }, archiveTimeoutSeconds));
        } else {
          findings.push((engine === 'mysql' ? neverBinlogFinding : neverFinding)(settings, state, why, now));
        }
      }
    }
  }
  const plan = await reconcileAlerts(deps, sortFindings(findings), (f) => WAL_CHECKS.has(f.check) && evaluated.has(`${f.group}/${f.host}/${f.source}`));
  const published = hasNews(plan)
    ? await publishAlert(
        deps.notifier,
        alertMessage({ origin: 'monitor, WAL check', plan, footer: [`The WAL check (PostgreSQL WAL and MySQL/MariaDB binary logs) runs every few minutes; an open problem is repeated at most every ${settings.repeatHours} h, and its end is announced.`] }),
        'alert',
      )
    : undefined;
  log.info('WAL check done', { sources: sources.map((s) => ({ id: `${s.group}/${s.host}/${s.source}`, ageSeconds: s.ageSeconds, listRequests: s.listRequests })), findings: findings.map((f) => f.id), published: published?.subject });
  return { sources, findings, plan, published };
}
