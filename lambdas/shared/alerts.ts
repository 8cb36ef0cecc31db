import { createHash } from 'node:crypto';
import { ALERT_STATE_PREFIX } from '../../format/layout';
import { CHECKS, type Finding, type Status, statusOf, subjectOf } from './findings';
import type { Settings } from '../../format/lambda-settings';
import type { BucketStore, Clock, Log, Notifier } from './ports';

/**
 * Alert de-duplication state: one small JSON object per open problem under state/alerts/ in the
 * data bucket. One object per finding (not one shared file) because the per-manifest verifier,
 * the daily sweep and the monitor run concurrently: creating a finding's object is a conditional
 * write (If-None-Match: *), so exactly one invocation wins and sends the "new" alert, and there is
 * no read-modify-write of a shared document to lose updates. Deleting the object closes the problem.
 * S3 was chosen over SSM parameters (4 KB standard limit, throttled writes) and DynamoDB (one more
 * resource to secure and pay for) since the bucket is already there and already encrypted.
 */
export interface AlertRecord {
  readonly id: string;
  readonly finding: Finding;
  readonly firstSeenAt: string;
  readonly lastAlertedAt: string;
  readonly alertCount: number;
}

export interface AlertPlan {
  /** Problems seen for the first time: announce now. */
  readonly opened: Finding[];
  /** Open problems last announced more than repeatHours ago: announce again. */
  readonly reminded: { finding: Finding; record: AlertRecord }[];
  /** Open problems announced recently, or said once already (Finding.once): stay quiet. */
  readonly quiet: { finding: Finding; record: AlertRecord }[];
  /** Problems this run is authoritative for and no longer sees: announce once, then forget. */
  readonly resolved: AlertRecord[];
}

export function alertStateKey(id: string): string {
  return `${ALERT_STATE_PREFIX}${createHash('sha256').update(id).digest('hex').slice(0, 40)}.json`;
}

export async function loadAlertRecords(store: BucketStore, log: Log): Promise<Map<string, AlertRecord>> {
  const records = new Map<string, AlertRecord>();
  for (const object of await store.list(ALERT_STATE_PREFIX)) {
    const text = await store.getText(object.key);
    if (text === null) continue;
    try {
      const record = JSON.parse(text) as AlertRecord;
      if (typeof record.id === 'string' && alertStateKey(record.id) === object.key) records.set(record.id, record);
    } catch (error) {
      log.warn('ignoring unreadable alert state object', { key: object.key, error: (error as Error).message });
    }
  }
  return records;
}

/** What reconciling needs of a core's dependencies. */
export interface AlertDeps {
  readonly store: BucketStore;
  readonly clock: Clock;
  readonly log: Log;
  readonly settings: Pick<Settings, 'repeatHours'>;
}

/**
 * Compares a run's findings with the open problems: what to announce, repeat, keep quiet about
 * and close.
 * @param covers for a full run (daily sweep, monitor schedule): whether this run looked at what an
 *   open finding is about, so that its absence means "resolved". Omitted for partial runs (one
 *   manifest, one command event), which never resolve anything.
 */
export async function reconcileAlerts(deps: AlertDeps, findings: readonly Finding[], covers?: (finding: Finding) => boolean): Promise<AlertPlan> {
  const { store, clock, log } = deps;
  const repeatHours = deps.settings.repeatHours;
  const now = clock.now();
  const records = await loadAlertRecords(store, log);
  const plan: AlertPlan = { opened: [], reminded: [], quiet: [], resolved: [] };
  const seen = new Set<string>();
  for (const finding of findings) {
    if (seen.has(finding.id)) continue;
    seen.add(finding.id);
    const record = records.get(finding.id);
    if (!record) {
      const fresh: AlertRecord = { id: finding.id, finding, firstSeenAt: now.toISOString(), lastAlertedAt: now.toISOString(), alertCount: 1 };
      const created = await store.put(alertStateKey(finding.id), JSON.stringify(fresh, null, 2), 'application/json', { onlyIfAbsent: true });
      if (created) plan.opened.push(finding);
      else plan.quiet.push({ finding, record: fresh }); // another invocation announced it a moment ago
      continue;
    }
    const sinceAlert = now.getTime() - Date.parse(record.lastAlertedAt);
    if (sinceAlert >= repeatHours * 3600_000 && !finding.once) {
      const updated: AlertRecord = { ...record, finding, lastAlertedAt: now.toISOString(), alertCount: record.alertCount + 1 };
      await store.put(alertStateKey(finding.id), JSON.stringify(updated, null, 2), 'application/json');
      plan.reminded.push({ finding, record: updated });
    } else {
      plan.quiet.push({ finding, record });
    }
  }
  if (covers) {
    for (const record of records.values()) {
      if (seen.has(record.id) || !covers(record.finding)) continue;
      await store.delete(alertStateKey(record.id));
      // Said once: its end is not news either.
      if (!record.finding.once) plan.resolved.push(record);
    }
  }
  log.info('alert state reconciled', {
    opened: plan.opened.map((f) => f.id),
    reminded: plan.reminded.map((r) => r.finding.id),
    resolved: plan.resolved.map((r) => r.id),
    quiet: plan.quiet.length,
  });
  return plan;
}

export function hasNews(plan: AlertPlan): boolean {
  return plan.opened.length + plan.reminded.length + plan.resolved.length > 0;
}

/** SNS subjects: under 100 characters, one line, ASCII so every mail client shows it as written. */
export function subjectLine(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '-');
  return ascii.length <= 99 ? ascii : `${ascii.slice(0, 96)}...`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function findingBlock(tag: string, f: Finding): string[] {
  const where = [subjectOf(f) || undefined, f.tier].filter(Boolean).join(', ');
  const lines = [`${tag} ${f.severity.toUpperCase()} ${CHECKS[f.check]}${where ? ` - ${where}` : ''}`, `  ${f.summary}`, `  where: ${f.where}`, `  since: ${f.since}`];
  if (f.detail) {
    // The end of an error output is where the cause is: when cutting, keep the first line and the tail.
    const detail = f.detail.split('\n');
    const shown = detail.length > MAX_DETAIL_LINES ? [detail[0], '...', ...detail.slice(-(MAX_DETAIL_LINES - 2))] : detail;
    lines.push(...shown.map((l) => `  | ${l}`));
  }
  lines.push(`  do:    ${f.action}`);
  return lines;
}

const MAX_LISTED = 8;
const MAX_DETAIL_LINES = 18;

export interface AlertMessage {
  readonly subject: string;
  readonly body: string;
  readonly status: Status;
}

/**
 * The text of an alert: new and repeated problems first, then resolutions. Kept to one screen:
 * beyond a few findings it points to the full report instead of scrolling.
 */
export function alertMessage(options: { origin: string; plan: AlertPlan; footer?: string[] }): AlertMessage {
  const { plan } = options;
  const active = [...plan.opened, ...plan.reminded.map((r) => r.finding)];
  const status = statusOf(active);
  const parts: string[] = [];
  if (plan.opened.length) parts.push(`${plan.opened.length} new`);
  if (plan.reminded.length) parts.push(`${plan.reminded.length} still open`);
  if (plan.resolved.length) parts.push(`${plan.resolved.length} resolved`);
  const first = active[0] ?? plan.resolved[0]?.finding;
  const headline = first ? `${CHECKS[first.check]}${subjectOf(first) ? ` on ${subjectOf(first)}` : ''}` : '';
  const subject = subjectLine(`coldseal ${active.length ? status : 'RESOLVED'}: ${parts.join(', ')} (${options.origin})${headline ? ` - ${headline}` : ''}`);
  const lines: string[] = [];
  lines.push(...listBlocks(plan, []));
  if (options.footer?.length) lines.push('', ...options.footer);
  return { subject, body: `${lines.join('\n')}\n`, status: active.length ? status : 'OK' };
}

export function listBlocks(plan: AlertPlan, quietFindings: readonly Finding[]): string[] {
  const lines: string[] = [];
  const blocks: [string, Finding][] = [
    ...plan.opened.map((f) => ['NEW', f] as [string, Finding]),
    ...plan.reminded.map((r) => [`OPEN since ${r.record.firstSeenAt.slice(0, 16)}Z`, r.finding] as [string, Finding]),
    ...quietFindings.map((f) => ['OPEN (already alerted)', f] as [string, Finding]),
  ];
  blocks.slice(0, MAX_LISTED).forEach(([tag, f]) => lines.push(...findingBlock(tag, f), ''));
  if (blocks.length > MAX_LISTED) lines.push(`... and ${plural(blocks.length - MAX_LISTED, 'more finding')} in the full report.`, '');
  for (const r of plan.resolved) {
    lines.push(`RESOLVED ${CHECKS[r.finding.check]}${subjectOf(r.finding) ? ` - ${subjectOf(r.finding)}` : ''}: ${r.finding.summary} (open since ${r.firstSeenAt})`);
  }
  return lines;
}

/** Sends the message to the alert topic; returns it (what was published). */
export async function publishAlert(notifier: Notifier, message: AlertMessage, kind: 'alert' | 'report'): Promise<AlertMessage> {
  await notifier.publish(message.subject, message.body, { kind, status: message.status });
  return message;
}

export { plural };
