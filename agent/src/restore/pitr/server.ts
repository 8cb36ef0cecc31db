import { spawn } from 'node:child_process';
import { pidAlive } from '../../local-host';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatLsn } from '../../../../format/wal';
import { asUser } from '../../db/as-user';
import { ColdsealError, EXIT } from '../../errors';
import type { Log } from '../../log';
import { readRecoveryLog, logTimeToUtc, type RecoveryLog } from './recovery-log';

/**
 * The restored server: started with pg_ctl as the PostgreSQL OS user, watched until recovery ends
 * (pg_is_in_recovery() turns false after promotion) or the server dies, and asked where it got.
 */
export interface RestoredServer {
  readonly binDir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly logFile: string;
  readonly runAs?: string;
}

export interface RecoveryReached {
  /** pg_current_wal_lsn() after promotion. */
  readonly lsn: string;
  /** Where replay ended ("redo done at"). */
  readonly redoDoneAt?: string;
  readonly timeline: number;
  /** The last transaction replayed (UTC), when the log or the server says. */
  readonly lastTransactionTime?: string;
  /** "recovery stopping before commit of transaction …, time …" when a target stopped it. */
  readonly stoppedBy?: string;
  readonly walFilesRestored: number;
  readonly seconds: number;
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    child.once('error', (error) => resolvePromise({ code: null, stdout, stderr: `${stderr}${error.message}` }));
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

export async function startServer(server: RestoredServer, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // No -w: pg_ctl would give up after 60 s while a long replay is still going; we watch it ourselves.
  const { command, args } = asUser(server.runAs, join(server.binDir, 'pg_ctl'), ['-D', server.dataDir, '-l', server.logFile, '-W', 'start']);
  const result = await run(command, args, env);
  if (result.code !== 0) throw new ColdsealError(EXIT.FAILURE, `pg_ctl could not start the restored server: ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' / ')}`, `See ${server.logFile}`);
}

export async function stopServer(server: RestoredServer, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  const { command, args } = asUser(server.runAs, join(server.binDir, 'pg_ctl'), ['-D', server.dataDir, '-m', mode, '-w', 'stop']);
  const result = await run(command, args);
  if (result.code !== 0 && !/No such file|is not running|PID file .* does not exist/i.test(result.stderr + result.stdout)) {
    throw new ColdsealError(EXIT.FAILURE, `pg_ctl could not stop the restored server in ${server.dataDir}: ${(result.stderr || result.stdout).trim()}`);
  }
}

/** One SQL query over the restored server's socket, as its OS user (peer authentication); null while it refuses connections. */
export async function queryServer(server: RestoredServer, sql: string): Promise<string | null> {
  const { command, args } = asUser(server.runAs, join(server.binDir, 'psql'), ['-X', '-w', '-A', '-t', '-q', '-h', server.socketDir, '-p', String(server.port), '-d', 'postgres', '-c', sql]);
  const result = await run(command, args, { ...process.env, PGCONNECT_TIMEOUT: '5', PGUSER: process.env.PGUSER ?? server.runAs ?? 'postgres' });
  return result.code === 0 ? result.stdout.trim() : null;
}

async function postmasterAlive(dataDir: string): Promise<boolean | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return pidAlive(pid);
}

async function readLog(server: RestoredServer): Promise<string> {
  return readFile(server.logFile, 'utf8').catch(() => '');
}

export function logTail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Waits until recovery has ended (promoted) or the server died. A death is reported with the tail
 * of its log and what it means: a restore_command that stopped recovery (exit ≥ 126: a WAL object
 * failed its checks or S3 was unreachable), or a target the archive does not reach.
 */
export async function waitForRecovery(server: RestoredServer, options: { log: Log; walSegmentSize: number; timeoutMs?: number; pollMs?: number; onAbort?: (file: string) => string }): Promise<RecoveryReached> {
  const started = Date.now();
  const poll = options.pollMs ?? 500;
  let seenAlive = false;
  let lastShown = '';
  for (;;) {
    const alive = await postmasterAlive(server.dataDir);
    if (alive) seenAlive = true;
    const text = await readLog(server);
    const parsed = readRecoveryLog(text);
    if (!alive && (seenAlive || Date.now() - started > 20_000)) throw died(server, text, parsed, options.onAbort);
    if (alive && parsed.paused) {
      options.log.endProgress();
      throw new ColdsealError(
        EXIT.FAILURE,
        `recovery paused before the target and would not go on by itself: ${parsed.paused}. Last lines of the server's log:\n${logTail(text)}\n`,
        `The server in ${server.dataDir} is running, paused, not promoted: change the setting in its postgresql.conf and restart it (pg_ctl -D ${server.dataDir} restart), or stop it and remove the directory`,
      );
    }
    // Asked only once the server says it accepts connections: every refused attempt is a FATAL line in its log.
    if (alive && /database system is ready to accept/.test(text)) {
      const inRecovery = await queryServer(server, 'select pg_is_in_recovery()');
      if (inRecovery === 'f') {
        options.log.endProgress();
        return reached(server, parsed, started);
      }
    }
    if (parsed.lastRestored && parsed.lastRestored !== lastShown) {
      lastShown = parsed.lastRestored;
      options.log.progress({ label: 'replaying WAL', bytes: parsed.restoredCount * options.walSegmentSize, elapsedSeconds: (Date.now() - started) / 1000, detail: `${parsed.restoredCount} files restored, last ${parsed.lastRestored}` });
    }
    if (options.timeoutMs !== undefined && Date.now() - started > options.timeoutMs) {
      options.log.endProgress();
      throw new ColdsealError(EXIT.FAILURE, `recovery did not end within ${Math.round(options.timeoutMs / 1000)} s (last WAL file restored: ${parsed.lastRestored ?? 'none'})`, `The server in ${server.dataDir} is still replaying; its log is ${server.logFile}`);
    }
    await new Promise((r) => setTimeout(r, poll));
  }
}

async function reached(server: RestoredServer, parsed: RecoveryLog, started: number): Promise<RecoveryReached> {
  const row = (await queryServer(server, "select pg_current_wal_lsn(), substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), coalesce(to_char(pg_last_xact_replay_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', '')")) ?? '';
  const [lsn, timelineHex, replayTime] = row.split('|');
  // The log is reread: the promotion lines come just before the server accepts writes.
  const final = readRecoveryLog(await readLog(server));
  const log = final.promoted ? final : parsed;
  return {
    lsn: lsn || (log.redoDoneAt !== undefined ? formatLsn(log.redoDoneAt) : 'unknown'),
    redoDoneAt: log.redoDoneAt !== undefined ? formatLsn(log.redoDoneAt) : undefined,
    timeline: timelineHex ? Number.parseInt(timelineHex, 16) : (log.newTimeline ?? 0),
    lastTransactionTime: log.lastTransactionTime ? logTimeToUtc(log.lastTransactionTime) : replayTime || undefined,
    stoppedBy: log.stopping?.line,
    walFilesRestored: log.restoredCount,
    seconds: (Date.now() - started) / 1000,
  };
}

function died(server: RestoredServer, text: string, parsed: RecoveryLog, onAbort?: (file: string) => string): ColdsealError {
  const tail = logTail(text);
  const where = `The server in ${server.dataDir} is stopped and was not promoted: nothing in it is usable as is. Its log: ${server.logFile}`;
  if (parsed.restoreFailure) {
    const what = onAbort?.(parsed.restoreFailure.file) ?? 'Restore to an earlier target (--to-time/--to-lsn before it), or run coldseal verify to see what is damaged';
    return new ColdsealError(
      EXIT.INTEGRITY,
      `recovery stopped: restore_command could not deliver WAL file ${parsed.restoreFailure.file} (${parsed.restoreFailure.why}${parsed.restoreFailure.detail ? `: ${parsed.restoreFailure.detail}` : ''}); PostgreSQL did not promote. Last lines of the server's log:\n${tail}\n`,
      `${what}. ${where}`,
    );
  }
  if (parsed.targetNotReached) {
    return new ColdsealError(
      EXIT.NOT_FOUND,
      `recovery replayed the whole archive (${parsed.restoredCount} WAL files, last ${parsed.lastRestored ?? 'none'}) without reaching the target: no transaction ${parsed.lastTransactionTime ? `after ${logTimeToUtc(parsed.lastTransactionTime)} ` : ''}is archived past it. Last lines of the server's log:\n${tail}\n`,
      `Choose an earlier target, or --to-latest. ${where}`,
    );
  }
  return new ColdsealError(EXIT.FAILURE, `the restored server stopped during recovery${parsed.fatal ? `: ${parsed.fatal}` : ''}. Last lines of its log:\n${tail}\n`, where);
}
