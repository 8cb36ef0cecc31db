import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PostgresSourceConfig } from '../../../../format/agent-config';
import type { DrillPitr, DrillReceipt } from '../../../../format/manifest';
import { formatLsn, parseLsn, type Lsn } from '../../../../format/wal';
import type { PrivateKey, PublicKey } from '../../../../runtime/pgp';
import type { AgentClients } from '../../aws';
import { describeError } from '../../errors';
import type { Log } from '../../log';
import type { ArchivePolicy } from '../archive';
import { reachableRanges, type ReachableRange } from './plan';
import { baseCandidates, runPitrRestore, type PitrRestoreResult, type WalArchiveAccess } from './run';
import { stopServer } from './server';

/**
 * `coldseal drill --pitr`: for each PITR source of the group, a point-in-time restore to a random
 * WAL position inside its recovery window, into a scratch data directory on this host; the drill
 * passes when recovery promoted at or after that position. The scratch cluster is stopped and
 * removed whatever happened.
 *
 * The target is an LSN, not a time: a time target is reached only when a transaction commits
 * after it, which a quiet server may not have archived, while every archived segment but the
 * newest has a record after any position in it. The target is drawn below the newest segment.
 */
export interface PitrDrillRequest {
  readonly clients: AgentClients;
  readonly bucket: string;
  readonly log: Log;
  readonly group: string;
  readonly trusted: readonly PublicKey[];
  readonly key: PrivateKey;
  /** This host's PostgreSQL (runAs, binDir) runs the scratch cluster. */
  readonly server?: PostgresSourceConfig;
  readonly archive: ArchivePolicy;
  readonly wal: (host: string, source: string) => WalArchiveAccess;
  readonly timeoutMs: number;
  readonly random?: () => number;
}

export type DrillResult = DrillReceipt['results'][number];

/** A position drawn uniformly over the ranges (by length), below each range's newest segment. */
export function drawTarget(ranges: readonly ReachableRange[], random: () => number): { range: ReachableRange; lsn: Lsn } {
  const spans = ranges.map((range) => {
    const segSize = BigInt(range.base.baseBackup.walSegmentSize);
    const top = range.to - segSize > range.from ? range.to - segSize : range.from;
    return { range, length: top - range.from };
  });
  const total = spans.reduce((sum, s) => sum + s.length, 0n);
  let pick = total === 0n ? 0n : BigInt(Math.floor(random() * Number(total)));
  for (const span of spans) {
    if (pick < span.length || span === spans.at(-1)) return { range: span.range, lsn: span.range.from + (pick < span.length ? pick : span.length) };
    pick -= span.length;
  }
  throw new Error('no range to draw from');
}

export async function pitrDrill(request: PitrDrillRequest, host: string, source: string): Promise<DrillResult> {
  const started = Date.now();
  const checks: DrillResult['checks'] = [];
  const { log } = request;
  let pitr: DrillPitr | undefined;
  let manifestKey = `wal/${request.group}/${host}/${source}/`;
  const scratch = await mkdtemp(join(tmpdir(), 'coldseal-pitr-drill-'));
  let result: PitrRestoreResult | undefined;
  try {
    // The PostgreSQL OS user must reach the data directory inside.
    await chmod(scratch, 0o711);
    const wal = request.wal(host, source);
    const { bases } = await baseCandidates({ ...request, host, source });
    const ranges = reachableRanges(bases, await wal.view());
    if (ranges.length === 0) {
      checks.push({ name: 'pitr-window', ok: false, detail: `no base backup of ${host}/${source} can be replayed with the archived WAL (${bases.length} base backup(s))` });
      return { manifestKey, source, artifact: 'pitr', ok: false, durationMs: Date.now() - started, checks };
    }
    const { range, lsn } = drawTarget(ranges, request.random ?? Math.random);
    const newest = ranges.reduce((a, b) => (b.to > a.to ? b : a));
    const window = { fromLsn: formatLsn(ranges[0].from), toLsn: formatLsn(newest.to), toTime: newest.toTime.toISOString() };
    checks.push({ name: 'pitr-window', ok: true, detail: `window ${window.fromLsn} to ${window.toLsn} (archived up to ${window.toTime}); random target LSN ${formatLsn(lsn)}` });
    log.info(`drill: point-in-time restore of ${host}/${source} to LSN ${formatLsn(lsn)} (window ${window.fromLsn} to ${window.toLsn})`);
    pitr = { window, target: { kind: 'lsn', value: formatLsn(lsn) }, timeline: range.timeline, baseManifestKey: range.base.manifestKey, reached: null };
    result = await runPitrRestore({
      clients: request.clients,
      bucket: request.bucket,
      log,
      group: request.group,
      host,
      source,
      key: request.key,
      trusted: request.trusted,
      target: { kind: 'lsn', lsn },
      timeline: 'latest',
      dataDir: join(scratch, 'data'),
      prepareOnly: false,
      keepArchiving: false,
      sourceConfig: request.server,
      archive: request.archive,
      wal: () => wal,
      recoveryTimeoutMs: request.timeoutMs,
      stopOnFailure: true,
    });
    manifestKey = result.plan.base.manifestKey;
    const reached = result.reached!;
    pitr = {
      ...pitr,
      baseManifestKey: result.plan.base.manifestKey,
      timeline: result.plan.timeline,
      reached: { lsn: reached.lsn, redoLsn: reached.redoDoneAt ?? null, timeline: reached.timeline, lastTransactionTime: reached.lastTransactionTime ?? null, walFilesRestored: reached.walFilesRestored },
    };
    const replayed = reached.redoDoneAt ?? reached.lsn;
    const ok = parseLsn(replayed) >= lsn;
    checks.push({ name: 'pitr-recovery', ok: true, detail: `base backup ${result.plan.base.stamp}, ${reached.walFilesRestored} WAL files, promoted on timeline ${reached.timeline} in ${reached.seconds.toFixed(1)} s` });
    checks.push({ name: 'pitr-target-reached', ok, detail: `replay ended at ${replayed}${ok ? ', at or after' : ', BEFORE'} the target ${formatLsn(lsn)}${reached.stoppedBy ? ` (${reached.stoppedBy})` : ''}${reached.lastTransactionTime ? `; last transaction ${reached.lastTransactionTime}` : ''}` });
  } catch (error) {
    checks.push({ name: 'pitr-recovery', ok: false, detail: describeError(error) });
  } finally {
    if (result) await stopServer(result.server, 'immediate').catch((error: Error) => checks.push({ name: 'pitr-cleanup', ok: false, detail: `stopping the scratch cluster failed: ${error.message}` }));
    await rm(scratch, { recursive: true, force: true }).catch((error: Error) => checks.push({ name: 'pitr-cleanup', ok: false, detail: `removing ${scratch} failed: ${error.message}` }));
  }
  return { manifestKey, source, artifact: 'pitr', ok: checks.every((c) => c.ok), durationMs: Date.now() - started, checks, ...(pitr ? { pitr } : {}) };
}
