import { parseLsn, type Lsn } from '../../../../format/wal';
import { parseTargetTime } from './target';

/**
 * What the restored server's log says about its recovery. lc_messages is set to C for the
 * restored copy (config.ts), so these English messages are the server's own (PostgreSQL 15
 * src/backend/access/transam/xlogrecovery.c, xlogarchive.c, xlog.c). Pure.
 */
export interface RecoveryLog {
  /** The last WAL file restore_command delivered. */
  readonly lastRestored?: string;
  readonly restoredCount: number;
  readonly consistentAt?: Lsn;
  /** "recovery stopping before commit of transaction 745, time …": the first transaction NOT replayed. */
  readonly stopping?: { readonly line: string; readonly lsn?: Lsn; readonly time?: string };
  /** "last completed transaction was at log time …": the last commit replayed. */
  readonly lastTransactionTime?: string;
  readonly redoDoneAt?: Lsn;
  readonly newTimeline?: number;
  readonly promoted: boolean;
  /** "could not restore file "X" from archive: child process exited with exit code 126", with restore_command's own error line about X when it logged one. */
  readonly restoreFailure?: { readonly file: string; readonly why: string; readonly detail?: string };
  readonly targetNotReached: boolean;
  /** "recovery has paused" and its DETAIL: the server waits for someone and would never promote on its own. */
  readonly paused?: string;
  readonly fatal?: string;
}

const LSN = '([0-9A-F]{1,8}/[0-9A-F]{1,8})';

export function readRecoveryLog(text: string): RecoveryLog {
  let lastRestored: string | undefined;
  let restoredCount = 0;
  let consistentAt: Lsn | undefined;
  let stopping: RecoveryLog['stopping'];
  let lastTransactionTime: string | undefined;
  let redoDoneAt: Lsn | undefined;
  let newTimeline: number | undefined;
  let promoted = false;
  let restoreFailure: RecoveryLog['restoreFailure'];
  let targetNotReached = false;
  let paused: string | undefined;
  let fatal: string | undefined;
  let previous = '';
  // restore_command (coldseal pitr wal-fetch) logs JSON lines to the server's stderr: its errors say why.
  const fetchErrors = new Map<string, string>();
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as { level?: string; message?: string; walFile?: string };
        if (entry.level === 'error' && entry.walFile && entry.message) fetchErrors.set(entry.walFile, entry.message);
      } catch {
        // not one of ours
      }
      continue;
    }
    if ((m = /restored log file "([^"]+)" from archive/.exec(line))) {
      lastRestored = m[1];
      restoredCount++;
    } else if ((m = new RegExp(`consistent recovery state reached at ${LSN}`).exec(line))) consistentAt = parseLsn(m[1]);
    else if ((m = /(recovery stopping (?:before|after) .*)$/.exec(line))) {
      const lsn = new RegExp(`WAL location \\(LSN\\) "${LSN}"`).exec(m[1]);
      const time = /, time (.+)$/.exec(m[1]);
      stopping = { line: m[1].trim(), ...(lsn ? { lsn: parseLsn(lsn[1]) } : {}), ...(time ? { time: time[1].trim() } : {}) };
    } else if ((m = /last completed transaction was at log time (.+)$/.exec(line))) lastTransactionTime = m[1].trim();
    else if ((m = new RegExp(`redo done at ${LSN}`).exec(line))) redoDoneAt = parseLsn(m[1]);
    else if ((m = /selected new timeline ID: (\d+)/.exec(line))) newTimeline = Number(m[1]);
    else if (/archive recovery complete/.test(line)) promoted = true;
    if ((m = /could not restore file "([^"]+)" from archive: (.*)$/.exec(line)) && /FATAL/.test(line)) {
      // PostgreSQL words exit status 126 as "command not executable" and 127 as "command not found".
      const why = m[2].trim().replace(/^command not executable$/, 'exit status 126').replace(/^command not found$/, 'exit status 127');
      restoreFailure = { file: m[1], why, ...(fetchErrors.has(m[1]) ? { detail: fetchErrors.get(m[1]) } : {}) };
    }
    if (/recovery ended before configured recovery target was reached/.test(line)) targetNotReached = true;
    if (/recovery has paused/.test(line)) paused = /DETAIL:\s+(.*)$/.exec(previous)?.[1] ?? 'recovery has paused';
    if (/\bWARNING:\s/.test(line) || /\bDETAIL:\s/.test(line)) previous = line;
    // Connection attempts refused during recovery are FATAL lines too, of the session, not of the server.
    if ((m = /\bFATAL:\s+(.*)$/.exec(line)) && !/the database system is (starting up|not yet accepting connections)/.test(m[1])) fatal ??= m[1].trim();
  }
  return { lastRestored, restoredCount, consistentAt, stopping, lastTransactionTime, redoDoneAt, newTimeline, promoted, restoreFailure, targetNotReached, ...(paused ? { paused } : {}), fatal };
}

/** A time as the server logs it ("2026-12-06 09:15:00.123456+01") in UTC, or the text itself when it does not parse. */
export function logTimeToUtc(text: string): string {
  try {
    return parseTargetTime(text).text;
  } catch {
    return text;
  }
}
