import { ColdsealError, EXIT } from '../../errors';
import type { ArchivePolicy, ArchiveClient } from '../archive';
import { runRestore, type RestoreResult } from '../restore';
import type { SafetyDumpPolicy } from '../safety-dump';
import type { MysqlTarget } from '../targets/mysql';
import { readBinlogRecords, readDumps } from './catalog';
import { BinlogPrefetcher } from './fetch';
import { binlogSequence, describeBinlogWindow, describePlan, planBinlogRestore, type BinlogPlan } from './plan';
import { replayBinlogs, type ReplayOutcome } from './replay';
import { describeBinlogTarget, type BinlogTarget } from './target';
import type { LogRestoreSource } from '../log-restore';

/**
 * `coldseal restore --source S --to-time T | --to-position | --to-gtid | --to-latest --target
 * mysql://…/db` for a MySQL/MariaDB source: plan from manifests and records only (plan.ts), then
 * the dump goes into a staging database the way every MySQL restore does (targets/mysql.ts,
 * mysql-staging.ts), the archived binary logs are replayed into it (replay.ts), and only then does
 * it replace the target, new or existing (with the safety dump and the question `restore` always
 * has). A failure anywhere drops the staging database: the target stays as it was.
 */
export interface BinlogRestoreRequest extends LogRestoreSource {
  readonly target: BinlogTarget;
  /** The database (artifact) of the dumps; needed when they hold several. */
  readonly database?: string;
  /** The server and (optionally) the name to restore under; the dumped database's name by default. */
  readonly destination: MysqlTarget;
  readonly yes: boolean;
  readonly confirm: (question: string) => Promise<boolean>;
  readonly safety: SafetyDumpPolicy;
  readonly archive: ArchivePolicy;
  readonly archiveClient?: ArchiveClient;
  /** Binary logs fetched ahead (mysql pitr.concurrency). */
  readonly concurrency: number;
}

export interface BinlogRestoreResult {
  readonly plan: BinlogPlan;
  readonly host: string;
  readonly restore: RestoreResult;
  readonly reached: ReplayOutcome;
  readonly database: string;
}

/** Decides, before any dump or binary log is downloaded; throws the refusal otherwise. */
export async function planFromArchive(request: Pick<BinlogRestoreRequest, 'clients' | 'bucket' | 'log' | 'group' | 'host' | 'source' | 'trusted' | 'target' | 'database'>): Promise<{ plan: BinlogPlan; host: string }> {
  const { clients, bucket, log, group, source, trusted, target } = request;
  const { host, dumps } = await readDumps(clients.s3, bucket, trusted, { group, host: request.host, source });
  const relevant = dumps.filter((d) => request.database === undefined || d.database === request.database);
  // Only files a candidate dump could start from are read (one HeadObject each).
  const early = target.kind === 'time' ? relevant.filter((d) => d.position.readAt <= target.stopAt) : relevant;
  const from = (early.length ? early : relevant.length ? relevant : dumps).map((d) => binlogSequence(d.position.file));
  const range = { fromSequence: from.length ? Math.min(...from) : 0, ...(target.kind === 'position' ? { toSequence: binlogSequence(target.position.file) } : {}) };
  const { files, failures } = await readBinlogRecords(clients.s3, bucket, trusted, { group, host, source }, range);
  let plan: BinlogPlan;
  try {
    plan = planBinlogRestore(dumps, files, target, request.database);
  } catch (error) {
    if (failures.length === 0 || !(error instanceof ColdsealError)) throw error;
    throw new ColdsealError(
      EXIT.INTEGRITY,
      `${failures.map((f) => `binary log ${f.binlogFile} (s3://${bucket}/${f.key}): ${f.message}`).join('; ')}; without ${failures.length === 1 ? 'it' : 'them'}: ${error.message}`,
      'Do not trust those objects: find out who wrote or changed them (CloudTrail data events). Restore to a target before them; nothing was downloaded',
      { cause: error },
    );
  }
  const last = plan.steps.at(-1);
  for (const f of failures) {
    if (last && binlogSequence(f.binlogFile) <= binlogSequence(last.record.binlogFile)) {
      throw new ColdsealError(EXIT.INTEGRITY, `binary log ${f.binlogFile} (s3://${bucket}/${f.key}): ${f.message}`, 'Restore to a target before it; nothing was downloaded');
    }
    log.warn(`binary log ${f.binlogFile} (after the target) failed its record check: ${f.message}`, { binlogFile: f.binlogFile });
  }
  log.info(`recovery window of ${plan.database}: ${describeBinlogWindow(plan.window)}`);
  return { plan, host };
}

export async function runBinlogRestore(request: BinlogRestoreRequest): Promise<BinlogRestoreResult> {
  const { clients, bucket, log } = request;
  const { plan, host } = await planFromArchive(request);
  log.info(`point-in-time restore: ${describePlan(plan)}`, { manifest: `s3://${bucket}/${plan.dump.manifestKey}`, files: plan.steps.length });
  const prefetcher = new BinlogPrefetcher(clients.s3, bucket, plan.steps, request.concurrency);
  let reached: ReplayOutcome | undefined;
  try {
    // Fetching starts now: the first files are proven while the dump loads.
    await prefetcher.start();
    const restore = await runRestore({
      clients,
      bucket,
      log,
      selector: { group: request.group, host, source: request.source, at: plan.dump.manifestKey },
      artifact: plan.database,
      key: request.key,
      trusted: request.trusted,
      target: {
        kind: 'mysql',
        target: request.destination,
        beforeSwap: async (staging) => {
          log.info(`dump ${plan.dump.stamp} is in ${staging}; replaying ${plan.steps.length} binary log file(s) to ${describeBinlogTarget(plan.target)}`);
          reached = await replayBinlogs({ conn: request.destination.conn, staging, sourceDatabase: plan.database, steps: plan.steps, prefetcher, key: request.key, gtidStart: plan.dump.position.gtid, log });
        },
      },
      yes: request.yes,
      confirm: request.confirm,
      safety: request.safety,
      archive: request.archive,
      archiveClient: request.archiveClient,
    });
    return { plan, host, restore, reached: reached!, database: request.destination.database ?? plan.database };
  } finally {
    await prefetcher.close();
  }
}
