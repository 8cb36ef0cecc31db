import { hostname } from 'node:os';
import { mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AgentConfig, MysqlSourceConfig } from '../../../../format/agent-config';
import { mysqlPitrSchema } from '../../../../format/agent-config';
import { binlogFileName, parseBinlogFileName } from '../../../../format/binlog';
import { gapBetween, type WindowBinlog } from '../../../../format/binlog-window';
import { hostNameFrom } from '../../../../format/layout';
import { mapLimit } from '../../../../runtime/concurrency';
import type { AgentClients } from '../../aws';
import { loadKeys } from '../../backup/run';
import { runMysql } from '../../db/mysql';
import { ColdsealError, describeError, EXIT, exitCodeOf, type ExitCode } from '../../errors';
import { interruptedBy, onInterrupt } from '../../interrupt';
import { pidAlive } from '../../local-host';
import type { Log } from '../../log';
import { chooseCompression } from '../../pipeline/compression';
import { prepareEncryptor } from '../../pipeline/encrypt';
import { defaultStateDir } from '../push-plan';
import { alertOnce } from './alerts';
import { binlogMetricData, publishBinlogMetrics } from './binlog-metrics';
import { archiveBinlogFile, BinlogIntegrityError, spoolUploadClient, type BinlogArchiveContext, type BinlogUploadResult } from './binlog-upload';
import { openPitrMysqlConnection, type PitrMysqlConnection } from './connection';
import { BinlogPlanError, EMPTY_PUSH_STATE, nextPushState, planBinlogPush, type ArchivedBinlogMark, type BinlogPushPlan, type BinlogPushState, type ServerBinlog } from './push-plan';
import { binlogTool, fetchBinlogFromServer } from './server-fetch';

/**
 * `coldseal pitr binlog-push --source <name>`, run every pitr.intervalMinutes by a systemd timer:
 * FLUSH BINARY LOGS (so a quiet server still closes a file each interval: the recovery point is
 * one interval plus the upload), SHOW BINARY LOGS, then every closed file not yet archived
 * (push-plan.ts) is read (from the binlog directory, or over the client protocol) and archived
 * (binlog-upload.ts), `concurrency` at a time. One run per source at a time (a lock file in the
 * state directory); the state file remembers the last archived file so that the next run starts
 * after it and notices files purged before they were archived.
 *
 * Exit 0 only when every closed file is archived and nothing was lost. Files purged before they
 * were archived: the files that remain are archived anyway (the window restarts from the next
 * dump), then the run fails (INTEGRITY) naming the lost range, and alerts.
 */

export const BINLOG_STATE_FILE = 'binlog-state.json';
const LOCK_FILE = 'binlog-push.lock';

export interface BinlogPushOptions {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly source: MysqlSourceConfig;
  readonly stateDir?: string;
  readonly now?: () => Date;
}

export interface BinlogPushResult {
  readonly exitCode: ExitCode;
  readonly archived: readonly string[];
  readonly alreadyArchived: readonly string[];
  readonly backlog: number;
  readonly open: string;
}

export async function runBinlogPush(options: BinlogPushOptions): Promise<BinlogPushResult> {
  const { config, source } = options;
  const now = options.now ?? (() => new Date());
  const host = config.host ?? hostNameFrom(hostname());
  if (!source.pitr?.enabled) {
    throw new ColdsealError(EXIT.CONFIG, `source ${source.name} does not have "pitr": { "enabled": true }`, 'Enable point-in-time recovery on the source in the configuration, then run coldseal pitr setup');
  }
  const pitr = mysqlPitrSchema.parse(source.pitr);
  const stateDir = options.stateDir ?? defaultStateDir(source.name);
  await mkdir(stateDir, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    throw new ColdsealError(EXIT.CONFIG, `cannot create the state directory ${stateDir}: ${error.code ?? error.message}`, 'Run binlog-push as root (the timer does), or pass --state-dir');
  });
  const release = await acquireLock(join(stateDir, LOCK_FILE), source.name);
  try {
    return await push({ ...options, now, host, pitr, stateDir });
  } finally {
    await release();
  }
}

async function push(args: BinlogPushOptions & { now: () => Date; host: string; pitr: ReturnType<typeof mysqlPitrSchema.parse>; stateDir: string }): Promise<BinlogPushResult> {
  const { config, clients, log, source, now, host, pitr, stateDir } = args;
  const started = Date.now();
  // A run killed mid-file leaves its spool behind; nothing else writes there (we hold the lock).
  const spoolDir = join(stateDir, 'spool');
  await rm(spoolDir, { recursive: true, force: true });
  await mkdir(spoolDir, { recursive: true, mode: 0o700 });

  const state = await readState(join(stateDir, BINLOG_STATE_FILE), log);
  // Keys first: a key problem fails the run before the server is touched (no FLUSH, no option file).
  const keys = await loadKeys(config, clients);
  const compression = chooseCompression(config.compression);
  const encryptor = await prepareEncryptor(config.encryption.implementation, keys.recipients);
  let connection: PitrMysqlConnection;
  try {
    connection = await openPitrMysqlConnection(source, clients);
  } catch (error) {
    encryptor.close();
    throw error;
  }
  let plan: BinlogPushPlan;
  let serverVersion: string;
  let binlogDir: string;
  try {
    const server = await readServer(connection.conn, source.name);
    serverVersion = server.version;
    binlogDir = pitr.binlogDir ?? dirname(server.basenamePath);
    try {
      plan = planBinlogPush(server.files, state);
    } catch (error) {
      if (!(error instanceof BinlogPlanError)) throw error;
      const hint = 'Nothing was archived. If the server was reset or replaced, give it a new source name (its archive starts afresh) and take a backup';
      await alertOnce({
        config,
        clients,
        log,
        stateDir,
        at: now(),
        alert: {
          id: `plan-${state.last?.file ?? 'none'}`,
          subject: `coldseal BINLOG INTEGRITY: ${config.group}/${host}/${source.name}`,
          lines: [`Binary log archiving of source ${source.name} on host ${host} (group ${config.group}) stopped at ${now().toISOString()}:`, '', error.message, '', `${hint}.`],
        },
      });
      throw new ColdsealError(EXIT.INTEGRITY, `source ${source.name}: ${error.message}`, hint);
    }
  } catch (error) {
    await connection.close();
    encryptor.close();
    throw error;
  }

  const controller = new AbortController();
  const stopOnInterrupt = onInterrupt(() => controller.abort());
  const total = plan.toArchive.reduce((sum, f) => sum + f.size, 0);
  let done = 0;
  let filesDone = 0;
  const ctx: BinlogArchiveContext = {
    config,
    clients,
    log,
    host,
    source: source.name,
    keys,
    trustedSigningKeys: [keys.signingKey.toPublic()],
    encryptor,
    // Files are compressed side by side: one zstd thread each.
    compression: compression.algorithm === 'zstd' ? { ...compression, threads: 1 } : compression,
    spoolDir,
    now,
    signal: controller.signal,
    onBytes: (bytes) => {
      done += bytes;
      log.progress({ label: `binlog-push ${source.name}`, bytes: done, elapsedSeconds: (Date.now() - started) / 1000, detail: `${filesDone}/${plan.toArchive.length} files, ${Math.round((100 * done) / Math.max(1, total))}%` });
    },
  };
  log.info('binlog-push', { source: source.name, open: plan.open, closed: plan.closed.length, toArchive: plan.toArchive.map((f) => f.name), read: pitr.read, last: plan.last?.file ?? null });

  const s3 = spoolUploadClient(config);
  const tool = binlogTool(serverVersion);
  let outcomes: Array<{ ok: true; result: BinlogUploadResult } | { ok: false; error: unknown }>;
  try {
    outcomes = await mapLimit(plan.toArchive, pitr.concurrency, async (file: ServerBinlog) => {
      try {
        const path = pitr.read === 'server' ? await fetchBinlogFromServer(connection.conn, tool, file.name, spoolDir, controller.signal) : join(binlogDir, file.name);
        try {
          const result = await archiveBinlogFile(ctx, s3, { path, binlogFile: file.name, expectedBytes: file.size });
          filesDone++;
          log.info(result.outcome, { binlogFile: file.name, key: result.key, bytes: result.facts.bytes, ciphertextBytes: result.ciphertextBytes, transactions: result.facts.transactions, gtidEnd: result.facts.gtidEnd, closedAt: result.facts.closedAt });
          return { ok: true as const, result };
        } finally {
          if (pitr.read === 'server') await rm(path, { force: true });
        }
      } catch (error) {
        log.error(`${file.name} was not archived: ${describeError(error)}`, { binlogFile: file.name, exitCode: exitCodeOf(error) });
        return { ok: false as const, error };
      }
    });
  } finally {
    log.endProgress();
    stopOnInterrupt();
    encryptor.close();
    s3.destroy();
    await connection.close();
  }

  const results = new Map<string, BinlogUploadResult>();
  for (const o of outcomes) if (o.ok) results.set(o.result.binlogFile, o.result);
  for (const r of results.values()) {
    const { basename, sequence } = parseBinlogFileName(r.binlogFile);
    const next = binlogFileName(basename, sequence + 1);
    // The server names the next file in the Rotate event: another name means the sequence was tampered with or renamed.
    if (r.facts.endsWith === 'rotate' && r.facts.rotatesTo !== next) log.warn(`${r.binlogFile} rotates to ${r.facts.rotatesTo ?? '(none)'}, not ${next}: the archive's sequence does not follow the server's`, { binlogFile: r.binlogFile });
  }
  const marks = new Map<string, ArchivedBinlogMark>(
    [...results.values()].map((r) => [r.binlogFile, { file: r.binlogFile, flavor: r.facts.flavor, serverId: r.facts.serverId, gtidEnd: r.facts.gtidEnd, closedAt: r.facts.closedAt }]),
  );
  const nextState = nextPushState(plan, state, marks);
  await writeState(join(stateDir, BINLOG_STATE_FILE), nextState);

  const archived = [...results.values()].filter((r) => r.outcome === 'archived').map((r) => r.binlogFile);
  const alreadyArchived = [...results.values()].filter((r) => r.outcome === 'already-archived').map((r) => r.binlogFile);
  const failures = outcomes.flatMap((o, i) => (o.ok ? [] : [{ file: plan.toArchive[i]!.name, error: o.error }]));
  const backlog = failures.length;
  const lost = lostRange(plan, results);
  log.info('binlog-push done', {
    source: source.name,
    archived: archived.length,
    alreadyArchived: alreadyArchived.length,
    failed: failures.length,
    backlog,
    last: nextState.last?.file ?? null,
    recoveryPoint: nextState.last?.closedAt ?? null,
    seconds: Math.round((Date.now() - started) / 10) / 100,
    maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  });

  try {
    await publishBinlogMetrics(config, { group: config.group, host, source: source.name }, { backlog, filesArchived: archived.length }, now(), AbortSignal.timeout(20_000));
  } catch (error) {
    log.warn(`could not publish the binlog metrics: ${(error as Error).message}`, { source: source.name, metrics: binlogMetricData({ group: config.group, host, source: source.name }, { backlog, filesArchived: archived.length }, now()).map((d) => d.MetricName) });
  }

  const where = `${config.group}/${host}/${source.name}`;
  const integrity = failures.flatMap((f) => (f.error instanceof BinlogIntegrityError ? [f.error] : []));
  for (const error of integrity) {
    await alertOnce({
      config,
      clients,
      log,
      stateDir,
      at: now(),
      alert: {
        id: `integrity-${error.binlogFile}`,
        subject: `coldseal BINLOG INTEGRITY: ${where}`,
        lines: [
          `Binary log archiving of source ${source.name} on host ${host} (group ${config.group}) found an archived binary log that differs from the server's, at ${now().toISOString()}.`,
          '',
          `${error.binlogFile} (s3://${config.bucket}/${error.key}):`,
          `  ${describeError(error)}`,
          '',
          'Nothing was overwritten. The file is not archived until the cause is fixed: do not purge it from the server.',
        ],
      },
    });
  }
  const signal = interruptedBy();
  if (signal && failures.length > 0) {
    throw new ColdsealError(
      EXIT.INTERRUPTED,
      `source ${source.name}: interrupted by ${signal}: ${archived.length + alreadyArchived.length} of ${plan.toArchive.length} closed binary log(s) archived, ${failures.length} left for the next run`,
      'Nothing is half written: an interrupted upload leaves no object, and the server keeps the files',
    );
  }
  if (lost) {
    await alertOnce({
      config,
      clients,
      log,
      stateDir,
      at: now(),
      alert: {
        id: `lost-${lost.id}`,
        subject: `coldseal BINLOG LOST: ${where}`,
        lines: [
          `Binary logs of source ${source.name} on host ${host} (group ${config.group}) were removed from the server before they were archived, found at ${now().toISOString()}.`,
          '',
          lost.description,
          '',
          `${archived.length + alreadyArchived.length} later file(s) were archived, so the recovery window goes on from the next dump: take a backup now (coldseal backup --source ${source.name}).`,
          'Keep binary logs on the server longer than the archive interval plus a margin (binlog_expire_logs_seconds; coldseal pitr setup checks it).',
        ],
      },
    });
    throw new ColdsealError(
      EXIT.INTEGRITY,
      `source ${source.name}: ${lost.description}`,
      `The ${archived.length + alreadyArchived.length} file(s) still on the server were archived; no point in the lost range can be restored. Take a backup now (coldseal backup --source ${source.name}): the recovery window restarts from it. Then keep logs longer (binlog_expire_logs_seconds) than the archive interval plus a margin`,
    );
  }
  if (failures.length > 0) {
    const first = failures.find((f) => f.error instanceof BinlogIntegrityError) ?? failures[0]!;
    const code = exitCodeOf(first.error);
    throw new ColdsealError(
      code === EXIT.FAILURE && failures.every((f) => exitCodeOf(f.error) === EXIT.FAILURE) ? EXIT.FAILURE : code,
      `source ${source.name}: ${failures.length} of ${plan.toArchive.length} closed binary log(s) not archived (${failures.map((f) => f.file).join(', ')}): ${describeError(first.error)}`,
      `${archived.length + alreadyArchived.length} archived. The server keeps the others; the next run (the timer) archives them once the cause is fixed`,
    );
  }
  return { exitCode: EXIT.OK, archived, alreadyArchived, backlog, open: plan.open };
}

/** The server's binary logs, after closing the current one. */
async function readServer(conn: Parameters<typeof runMysql>[0], sourceName: string): Promise<{ version: string; basenamePath: string; files: ServerBinlog[] }> {
  // FLUSH BINARY LOGS needs RELOAD (MariaDB ≥ 10.5: RELOAD or BINLOG ADMIN); SHOW BINARY LOGS needs
  // REPLICATION CLIENT / BINLOG MONITOR (MariaDB KB "FLUSH", "SHOW BINARY LOGS").
  const lines = await runMysql(conn, "FLUSH BINARY LOGS; SELECT 'coldseal', @@version, IFNULL(@@log_bin_basename, ''); SHOW BINARY LOGS;", `source ${sourceName}: FLUSH BINARY LOGS and SHOW BINARY LOGS`).catch((error: Error) => {
    const binlogOff = /not using binary logging|1381/i.test(error.message);
    throw new ColdsealError(
      EXIT.SOURCE,
      binlogOff ? `source ${sourceName}: binary logging is off on the server (${error.message})` : error.message,
      binlogOff ? 'Turn on log_bin (coldseal pitr setup says how), restart the server, then take a backup' : 'Check that the server runs and that the source\'s user has RELOAD and REPLICATION CLIENT (BINLOG MONITOR on MariaDB); coldseal pitr setup checks them',
    );
  });
  const head = lines.find((l) => l.startsWith('coldseal\t'));
  if (!head) throw new ColdsealError(EXIT.SOURCE, `source ${sourceName}: the server's answer to SELECT @@version was not understood`, 'Check the mysql client');
  const [, version = '', basenamePath = ''] = head.split('\t');
  const files = lines.filter((l) => l !== head).map((l) => {
    const [name = '', size = ''] = l.split('\t');
    return { name, size: Number(size) };
  });
  for (const f of files) if (!Number.isInteger(f.size)) throw new ColdsealError(EXIT.SOURCE, `source ${sourceName}: SHOW BINARY LOGS answered "${f.name}" without a size`, 'Check the mysql client');
  return { version, basenamePath, files };
}

/** Files purged before they were archived (or logged transactions no archived file holds), in words. */
function lostRange(plan: BinlogPushPlan, results: ReadonlyMap<string, BinlogUploadResult>): { id: string; description: string } | null {
  if (!plan.last) return null;
  const last = plan.last;
  const nextName = plan.firstAfterPurge ?? plan.toArchive[0]?.name;
  const next = nextName ? results.get(nextName) : undefined;
  const before: WindowBinlog = { binlogFile: last.file, flavor: last.flavor, gtidStart: '', gtidEnd: last.gtidEnd, openedAt: last.closedAt, closedAt: last.closedAt, endsWith: 'rotate', lastCommitAt: null };
  if (next) {
    const f = next.facts;
    const gap = gapBetween(before, { binlogFile: next.binlogFile, flavor: f.flavor, gtidStart: f.gtidStart, gtidEnd: f.gtidEnd, openedAt: f.openedAt, closedAt: f.closedAt, endsWith: f.endsWith, lastCommitAt: f.lastCommitAt });
    if (!gap) return null;
    const how = gap.reason === 'missing-files' ? ' (purged on the server before they were archived)' : '';
    return { id: `${gap.after}-${gap.before}`, description: `${gap.description}${how}` };
  }
  if (plan.purged.length === 0) return null;
  const missing = plan.purged.join('–');
  return {
    id: `${last.file}-${plan.firstAfterPurge}`,
    description: `binary log ${missing} ${plan.purged.length === 1 ? 'is' : 'are'} not in the archive (purged on the server before they were archived): transactions committed after ${last.closedAt} (GTID after ${last.gtidEnd || 'none'}) up to the opening of ${plan.firstAfterPurge} cannot be replayed`,
  };
}

async function readState(path: string, log: Log): Promise<BinlogPushState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_PUSH_STATE;
    throw new ColdsealError(EXIT.CONFIG, `cannot read the binlog-push state ${path}: ${(error as Error).message}`, 'Check the state directory\'s permissions');
  }
  try {
    const state = JSON.parse(text) as BinlogPushState;
    if (state.formatVersion !== 1 || !Array.isArray(state.ahead)) throw new Error('unknown layout');
    return state;
  } catch (error) {
    // The archive itself says what it holds (412 answers): losing the state costs re-reading files, not data.
    log.warn(`the binlog-push state ${path} is unreadable (${(error as Error).message}): every closed file on the server is read again`, { path });
    return EMPTY_PUSH_STATE;
  }
}

async function writeState(path: string, state: BinlogPushState): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, path);
}

/** One run per source: a lock file holding the runner's pid; a dead runner's lock (SIGKILL, crash) is taken over. */
async function acquireLock(path: string, sourceName: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ColdsealError(EXIT.CONFIG, `cannot create the lock file ${path}: ${(error as Error).message}`, 'Check the state directory\'s permissions');
      }
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
      throw new ColdsealError(EXIT.REFUSED, `another binlog-push of source ${sourceName} is running (pid ${pid})`, `Nothing was done: that run archives the same files. If pid ${pid} is not coldseal, remove ${path}`);
    }
    await unlink(path).catch(() => undefined);
  }
  throw new ColdsealError(EXIT.REFUSED, `could not take the lock ${path} of source ${sourceName}`, 'Another binlog-push keeps taking it: run one at a time');
}
