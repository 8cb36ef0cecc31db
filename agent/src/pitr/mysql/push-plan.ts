import { binlogFileName, parseBinlogFileName, type BinlogFlavor } from '../../../../format/binlog';

/**
 * binlog-push, the pure part: which of the server's binary logs (SHOW BINARY LOGS, after FLUSH
 * BINARY LOGS) one run archives, given what the previous runs recorded in the state file.
 *
 * - The newest file is the one the server writes: never archived (it is not closed).
 * - Every older file after the last archived one, except those already archived ahead of a
 *   failure, is archived. Without state (first run, lost state) every closed file is: the
 *   conditional PutObject tells what the archive already holds (412, same content).
 * - A file between the last archived one and the oldest still on the server was purged before it
 *   was archived: its transactions are lost to the archive. The run still archives what remains
 *   (the window restarts from the next dump) and fails naming the lost files.
 */

export interface ServerBinlog {
  readonly name: string;
  readonly size: number;
}

/** What the state file remembers of the newest file of the unbroken archived sequence. */
export interface ArchivedBinlogMark {
  readonly file: string;
  readonly flavor: BinlogFlavor;
  readonly serverId: number;
  readonly gtidEnd: string;
  readonly closedAt: string;
}

export interface BinlogPushState {
  readonly formatVersion: 1;
  readonly last: ArchivedBinlogMark | null;
  /** Files archived beyond `last` while an earlier one failed: not archived again. */
  readonly ahead: readonly ArchivedBinlogMark[];
}

export const EMPTY_PUSH_STATE: BinlogPushState = { formatVersion: 1, last: null, ahead: [] };

export interface BinlogPushPlan {
  /** The file the server writes now. */
  readonly open: string;
  /** Closed files still on the server, oldest first. */
  readonly closed: readonly ServerBinlog[];
  readonly toArchive: readonly ServerBinlog[];
  /** The state's last file when it applies (same basename), else null. */
  readonly last: ArchivedBinlogMark | null;
  /** Files purged before they were archived: first and last (one name when one file). */
  readonly purged: readonly string[];
  /** The oldest file on the server after the purged ones. */
  readonly firstAfterPurge: string | null;
}

export class BinlogPlanError extends Error {}

export function planBinlogPush(listed: readonly ServerBinlog[], state: BinlogPushState): BinlogPushPlan {
  if (listed.length === 0) throw new BinlogPlanError('SHOW BINARY LOGS lists no file: binary logging is off on this server');
  const files = [...listed].sort((a, b) => parseBinlogFileName(a.name).sequence - parseBinlogFileName(b.name).sequence);
  const basename = parseBinlogFileName(files[0]!.name).basename;
  const other = files.find((f) => parseBinlogFileName(f.name).basename !== basename);
  if (other) throw new BinlogPlanError(`SHOW BINARY LOGS lists files of two basenames (${files[0]!.name}, ${other.name})`);
  const open = files[files.length - 1]!;
  const closed = files.slice(0, -1);
  const last = state.last && parseBinlogFileName(state.last.file).basename === basename ? state.last : null;
  const ahead = new Set(state.ahead.map((m) => m.file));
  if (!last) return { open: open.name, closed, toArchive: closed.filter((f) => !ahead.has(f.name)), last: null, purged: [], firstAfterPurge: null };

  const lastSeq = parseBinlogFileName(last.file).sequence;
  if (parseBinlogFileName(open.name).sequence <= lastSeq) {
    throw new BinlogPlanError(
      `the server's newest binary log is ${open.name}, but ${last.file} was archived already: the server's logs were reset (RESET MASTER) or another server writes under this source's name`,
    );
  }
  const toArchive = closed.filter((f) => parseBinlogFileName(f.name).sequence > lastSeq && !ahead.has(f.name));
  const oldestAfter = files.find((f) => parseBinlogFileName(f.name).sequence > lastSeq)!;
  const oldestSeq = parseBinlogFileName(oldestAfter.name).sequence;
  const purged = oldestSeq === lastSeq + 1 ? [] : oldestSeq === lastSeq + 2 ? [binlogFileName(basename, lastSeq + 1)] : [binlogFileName(basename, lastSeq + 1), binlogFileName(basename, oldestSeq - 1)];
  return { open: open.name, closed, toArchive, last, purged, firstAfterPurge: purged.length > 0 ? oldestAfter.name : null };
}

/**
 * The state after a run: `last` moves along the unbroken run of archived files that follows it
 * (or, after a purge or without state, that starts at the oldest closed file); files archived past
 * a failure are kept in `ahead`, with what `last` needs of them, until `last` reaches them.
 */
export function nextPushState(plan: BinlogPushPlan, state: BinlogPushState, archived: ReadonlyMap<string, ArchivedBinlogMark>): BinlogPushState {
  const marks = new Map<string, ArchivedBinlogMark>(state.ahead.map((m) => [m.file, m]));
  for (const [name, mark] of archived) marks.set(name, mark);
  let last = plan.purged.length === 0 ? plan.last : null;
  if (!last) {
    const first = plan.firstAfterPurge ?? plan.closed[0]?.name;
    last = (first !== undefined ? marks.get(first) : undefined) ?? plan.last;
  }
  if (last) {
    const { basename, sequence } = parseBinlogFileName(last.file);
    for (let seq = sequence + 1; ; seq++) {
      const mark = marks.get(binlogFileName(basename, seq));
      if (!mark) break;
      last = mark;
    }
  }
  const lastSeq = last ? parseBinlogFileName(last.file).sequence : 0;
  const ahead = [...marks.values()].filter((m) => parseBinlogFileName(m.file).sequence > lastSeq).sort((a, b) => a.file.localeCompare(b.file));
  return { formatVersion: 1, last, ahead };
}
