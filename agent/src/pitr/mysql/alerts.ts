import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PublishCommand } from '@aws-sdk/client-sns';
import type { AgentConfig } from '../../../../format/agent-config';
import type { AgentClients } from '../../aws';
import type { Log } from '../../log';

/**
 * binlog-push's SNS alerts (an archived file that differs, binary logs purged before they were
 * archived), each raised once in REALERT_AFTER_MS however often the timer runs into the same
 * problem, as archive-push does for WAL (../archive-push.ts): a note file per problem under the
 * state directory, its mtime the alert's time. An unwritable note costs a repeated alert, never a
 * missed one.
 */
export const REALERT_AFTER_MS = 6 * 3600 * 1000;

export interface BinlogAlert {
  /** What makes two alerts the same problem (a file name, a lost range): a file name under the state directory. */
  readonly id: string;
  readonly subject: string;
  readonly lines: readonly string[];
}

export async function alertOnce(args: { config: AgentConfig; clients: AgentClients; log: Log; stateDir: string; alert: BinlogAlert; at: Date }): Promise<void> {
  const { config, clients, log, stateDir, alert, at } = args;
  if (!config.alertTopicArn) {
    log.warn('no alertTopicArn is configured: the failure is only in this log', { alert: alert.subject });
    return;
  }
  const dir = join(stateDir, 'alerted');
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => undefined);
  const note = join(dir, alert.id.replace(/[^A-Za-z0-9_.-]/g, '_'));
  const last = await stat(note).then((s) => s.mtimeMs, () => undefined);
  if (last !== undefined && at.getTime() - last < REALERT_AFTER_MS) {
    log.info('alert already sent lately, not repeated', { alert: alert.subject });
    return;
  }
  try {
    await clients.sns.send(new PublishCommand({ TopicArn: config.alertTopicArn, Subject: alert.subject.slice(0, 99), Message: alert.lines.join('\n') }));
    await writeFile(note, `${at.toISOString()}\n`).catch(() => undefined);
  } catch (error) {
    log.error(`could not publish the alert to ${config.alertTopicArn}: ${(error as Error).message}`, { alert: alert.subject });
  }
}
