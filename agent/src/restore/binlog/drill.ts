import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binlogWindow, type BinlogRange } from '../../../../format/binlog-window';
import { BINLOG_DIR, WAL_PREFIX } from '../../../../format/layout';
import type { DrillBinlogPitr, DrillReceipt } from '../../../../format/manifest';
import type { PrivateKey, PublicKey } from '../../../../runtime/pgp';
import type { AgentClients } from '../../aws';
import { mysqlDropDatabase, runMysql, sqlString, type MysqlConnection } from '../../db/mysql';
import { describeError } from '../../errors';
import type { Log } from '../../log';
import { listSubPrefixes } from '../../pitr/wal-catalog';
import type { ArchivePolicy } from '../archive';
import { readBinlogRecords, readDumps } from './catalog';
import { binlogSequence } from './plan';
import { runBinlogRestore, type BinlogRestoreResult } from './run';
import type { BinlogTarget } from './target';

/**
 * `coldseal drill --pitr` for a MySQL/MariaDB source: a point-in-time restore to a random second
 * of its recovery window (format/binlog-window.ts), from its dump and archived binary logs, into
 * a scratch database (a new name on the scratch server, dropped afterwards). It passes when the
 * restore succeeded, every transaction replayed committed before the target, and replay went
 * through every file the plan named. The target is a time (what a person restores to); it is
 * drawn on whole seconds from the first whole second after the dump read its position.
 */
export interface BinlogDrillRequest {
  readonly clients: AgentClients;
  readonly bucket: string;
  readonly log: Log;
  readonly group: string;
  readonly trusted: readonly PublicKey[];
  readonly key: PrivateKey;
  readonly scratch: MysqlConnection | undefined;
  readonly archive: ArchivePolicy;
  readonly concurrency: number;
  readonly random?: () => number;
}

export type DrillResult = DrillReceipt['results'][number];

/** Whether (host, source) of the group archives binary logs (wal/<group>/<host>/<source>/binlog/). */
export async function isBinlogArchive(s3: AgentClients['s3'], bucket: string, group: string, host: string, source: string): Promise<boolean> {
  return (await listSubPrefixes(s3, bucket, `${WAL_PREFIX}${group}/${host}/${source}/`)).includes(BINLOG_DIR);
}

const SECOND = 1000;

/** A whole second drawn uniformly over the ranges (by length), each from its first whole second after the dump's position was read. */
export function drawBinlogTime(ranges: readonly BinlogRange[], random: () => number): { range: BinlogRange; time: string } {
  const spans = ranges.map((range) => {
    const from = Math.ceil(Date.parse(range.from.time) / SECOND) * SECOND;
    const to = Math.max(from, Date.parse(range.to.time));
    return { range, from, length: to - from };
  });
  const total = spans.reduce((sum, s) => sum + s.length, 0);
  let pick = Math.floor(random() * total);
  for (const span of spans) {
    if (pick <= span.length || span === spans.at(-1)) {
      const at = Math.floor((span.from + Math.min(pick, span.length)) / SECOND) * SECOND;
      return { range: span.range, time: new Date(at).toISOString() };
    }
    pick -= span.length;
  }
  throw new Error('no range to draw from');
}

export async function binlogPitrDrill(request: BinlogDrillRequest, host: string, source: string): Promise<DrillResult> {
  const started = Date.now();
  const { log } = request;
  const checks: DrillResult['checks'] = [];
  let manifestKey = `${WAL_PREFIX}${request.group}/${host}/${source}/${BINLOG_DIR}/`;
  let binlogPitr: DrillBinlogPitr | undefined;
  const conn = request.scratch;
  if (!conn) {
    checks.push({ name: 'pitr-recovery', ok: false, detail: 'no scratch MySQL/MariaDB server to restore into: configure a mysql source on this host or pass --scratch-mysql URL' });
    return { manifestKey, source, artifact: 'pitr', ok: false, durationMs: Date.now() - started, checks };
  }
  const scratchDb = `coldseal_drill_${randomBytes(4).toString('hex')}`;
  const safetyDir = await mkdtemp(join(tmpdir(), 'coldseal-drill-safety-'));
  let result: BinlogRestoreResult | undefined;
  try {
    const { dumps } = await readDumps(request.clients.s3, request.bucket, request.trusted, { group: request.group, host, source });
    // The newest dump's database is drilled (a drill restores one database of the source).
    const database = dumps.at(-1)?.database;
    const mine = dumps.filter((d) => d.database === database);
    const from = mine.length ? Math.min(...mine.map((d) => binlogSequence(d.position.file))) : 0;
    const { files } = await readBinlogRecords(request.clients.s3, request.bucket, request.trusted, { group: request.group, host, source }, { fromSequence: from });
    const window = binlogWindow({ dumps: mine.map((d) => ({ id: d.stamp, database: d.database, position: d.position })), files: files.map((f) => f.record) });
    if (!window.from || !window.to || window.ranges.length === 0) {
      checks.push({ name: 'pitr-window', ok: false, detail: `no dump of ${host}/${source} can be replayed with the archived binary logs (${dumps.length} dump(s) with a position, ${files.length} file(s) archived)${window.notes.length ? `: ${window.notes.join('; ')}` : ''}` });
      return { manifestKey, source, artifact: 'pitr', ok: false, durationMs: Date.now() - started, checks };
    }
    const { time } = drawBinlogTime(window.ranges, request.random ?? Math.random);
    const target: BinlogTarget = { kind: 'time', requested: time, stopAt: time };
    checks.push({ name: 'pitr-window', ok: true, detail: `window ${window.from.time} to ${window.to.time} (${window.to.position}${window.gaps.length ? `; ${window.gaps.length} hole(s)` : ''}); random target ${time}` });
    log.info(`drill: point-in-time restore of ${host}/${source}/${database} to ${time} into scratch database ${scratchDb}`);
    binlogPitr = { window: { fromTime: window.from.time, toTime: window.to.time }, target: { kind: 'time', value: time }, baseManifestKey: '', startPosition: '', reached: null };
    result = await runBinlogRestore({
      clients: request.clients,
      bucket: request.bucket,
      log,
      group: request.group,
      host,
      source,
      key: request.key,
      trusted: request.trusted,
      target,
      database,
      destination: { conn, database: scratchDb },
      yes: true,
      confirm: () => Promise.resolve(false),
      safety: { dir: safetyDir },
      archive: request.archive,
      concurrency: request.concurrency,
    });
    const { plan, reached } = result;
    manifestKey = plan.dump.manifestKey;
    const startPosition = `${plan.dump.position.file}:${plan.dump.position.position}`;
    binlogPitr = {
      ...binlogPitr,
      baseManifestKey: plan.dump.manifestKey,
      startPosition,
      reached: { position: reached.position ?? startPosition, gtid: reached.gtid, lastCommitAt: reached.lastCommitAt, binlogFilesReplayed: reached.files, transactionsReplayed: reached.transactions },
    };
    const tables = await runMysql(conn, `select count(*) from information_schema.tables where table_schema = ${sqlString(scratchDb)};`, `counting the tables of ${scratchDb}`);
    checks.push({ name: 'pitr-recovery', ok: true, detail: `dump ${plan.dump.stamp}, then ${reached.files} binary log file(s), ${reached.transactions} transaction(s) in ${reached.seconds.toFixed(1)} s into ${scratchDb} (${tables[0] ?? '?'} tables)` });
    const before = reached.lastCommitAt === null || reached.lastCommitAt < target.stopAt;
    const all = reached.files === plan.steps.length;
    checks.push({ name: 'pitr-target-reached', ok: before && all, detail: `replayed ${reached.files} of ${plan.steps.length} planned file(s) to ${reached.position ?? 'the dump\'s position'}${reached.lastCommitAt ? `; last commit ${reached.lastCommitAt}${before ? ', before' : ', NOT before'} the target ${target.stopAt}` : ''}` });
  } catch (error) {
    checks.push({ name: 'pitr-recovery', ok: false, detail: describeError(error) });
  } finally {
    await mysqlDropDatabase(conn, scratchDb).catch((error: Error) => checks.push({ name: 'pitr-cleanup', ok: false, detail: `dropping the scratch database ${scratchDb} failed: ${error.message}` }));
    await rm(safetyDir, { recursive: true, force: true });
  }
  return { manifestKey, source, artifact: 'pitr', ok: checks.every((c) => c.ok), durationMs: Date.now() - started, checks, ...(binlogPitr ? { binlogPitr } : {}) };
}
