import { formatBinlogPosition, gtidStateCovers, parseBinlogFileName, parseMariadbGtidList } from '../../../../format/binlog';
import type { BinlogRecord } from '../../../../format/binlog-record';
import { binlogWindow, dumpForGtid, dumpForPosition, dumpForTime, type BinlogDumpReach, type BinlogWindow } from '../../../../format/binlog-window';
import type { BinlogPositionRecord } from '../../../../format/manifest';
import { ColdsealError, EXIT } from '../../errors';
import { describeBinlogTarget, stopDatetimeArgument, type BinlogTarget } from './target';

/**
 * Which dump a MySQL/MariaDB point-in-time restore starts from and which archived binary logs it
 * replays, with mariadb-binlog's start and stop options for each: decided from the signed
 * manifests and the signed records (object metadata) alone, before a byte of a dump or of a
 * binary log is downloaded. Pure. The window, its gaps and each dump's reach are
 * format/binlog-window.ts's.
 */
export interface DumpCandidate {
  readonly manifestKey: string;
  readonly stamp: string;
  /** The database (artifact) dumped. */
  readonly database: string;
  readonly position: BinlogPositionRecord;
}

export interface ArchivedBinlog {
  readonly key: string;
  readonly record: BinlogRecord;
}

/** One binary log file to replay, and how much of it. */
export interface ReplayStep {
  readonly key: string;
  readonly record: BinlogRecord;
  /** --start-position (the dump's offset in its own file). */
  readonly startPosition?: number;
  /** --stop-datetime, as mariadb-binlog reads it in UTC ("YYYY-MM-DD HH:MM:SS"). */
  readonly stopDatetime?: string;
  /** --stop-position: an offset, or a GTID list (MariaDB 10.8+). */
  readonly stopPosition?: string;
}

export interface BinlogPlan {
  readonly dump: DumpCandidate;
  readonly database: string;
  readonly target: BinlogTarget;
  readonly steps: readonly ReplayStep[];
  readonly window: BinlogWindow;
  /** The archive reaches this far from the chosen dump (its chain's end). */
  readonly reach: BinlogDumpReach;
}

/** The window as messages name it. */
export function describeBinlogWindow(window: BinlogWindow): string {
  if (!window.from || !window.to) return `empty${window.notes.length ? `: ${window.notes.join('; ')}` : ''}`;
  const older = window.ranges.length > 1 ? `; also ${window.ranges.slice(0, -1).map((r) => `${r.from.time} – ${r.to.time}`).join(', ')}` : '';
  const gaps = window.gaps.length ? `; lost: ${window.gaps.map((g) => g.description).join('; ')}` : '';
  return `from ${window.from.time} (dump ${window.from.dump}, ${window.from.position}) to ${window.to.time} (end of ${window.to.position}${window.to.gtid ? `, GTID ${window.to.gtid}` : ''})${older}${gaps}`;
}

function chooseDatabase(dumps: readonly DumpCandidate[], database: string | undefined): string {
  const names = [...new Set(dumps.map((d) => d.database))].sort();
  if (database !== undefined) {
    if (!names.includes(database)) throw new ColdsealError(EXIT.NOT_FOUND, `no kept dump of database "${database}" records a binary log position${names.length ? ` (the dumps hold: ${names.join(', ')})` : ''}`, 'Pick one of those with --artifact, or take a dump of it with pitr enabled (coldseal backup)');
    return database;
  }
  if (names.length === 1) return names[0];
  if (names.length === 0) throw new ColdsealError(EXIT.NOT_FOUND, 'no kept dump of this source records a binary log position: a point-in-time restore starts from one', 'Enable pitr on the source (coldseal pitr setup) and run coldseal backup; see coldseal list');
  throw new ColdsealError(EXIT.USAGE, `the dumps of this source hold several databases (${names.join(', ')}): which one?`, 'Say which with --artifact NAME');
}

export function planBinlogRestore(dumps: readonly DumpCandidate[], files: readonly ArchivedBinlog[], target: BinlogTarget, wanted?: string): BinlogPlan {
  const database = chooseDatabase(dumps, wanted);
  const mine = dumps.filter((d) => d.database === database);
  const window = binlogWindow({ dumps: mine.map((d) => ({ id: d.stamp, database: d.database, position: d.position })), files: files.map((f) => f.record) });
  const describe = describeBinlogWindow(window);
  const byName = new Map(files.map((f) => [f.record.binlogFile, f]));
  const refuse = (refusal: string, hole = window.gaps.length > 0 && /cannot be recovered/.test(refusal)): never => {
    throw new ColdsealError(hole ? EXIT.INTEGRITY : EXIT.NOT_FOUND, `${refusal}. The recovery window of ${database} is ${describe}`, hole ? 'Choose a target outside the lost range (coldseal list shows the window); nothing was downloaded' : 'Choose a target inside the window (coldseal list shows it), or --to-latest; nothing was downloaded');
  };
  let reach: BinlogDumpReach;
  let names: string[];
  let stop: Pick<ReplayStep, 'stopDatetime' | 'stopPosition'> = {};
  switch (target.kind) {
    case 'time': {
      const found = dumpForTime(window, target.stopAt, database);
      if ('refusal' in found) refuse(found.refusal.replace(target.stopAt, `${target.requested}${target.requested !== target.stopAt ? ` (replayed to ${target.stopAt}: whole seconds)` : ''}`));
      reach = (found as { reach: BinlogDumpReach }).reach;
      const last = reach.files.findIndex((f) => byName.get(f)!.record.closedAt >= target.stopAt);
      names = reach.files.slice(0, last + 1);
      stop = { stopDatetime: stopDatetimeArgument(target.stopAt) };
      break;
    }
    case 'position': {
      const sizes = new Map(files.map((f) => [f.record.binlogFile, f.record.plaintextBytes]));
      const found = dumpForPosition(window, target.position, sizes, database);
      if ('refusal' in found) refuse(found.refusal);
      reach = (found as { reach: BinlogDumpReach }).reach;
      names = reach.files.slice(0, reach.files.indexOf(target.position.file) + 1);
      stop = { stopPosition: String(target.position.position) };
      break;
    }
    case 'gtid': {
      const found = dumpForGtid(window, target.gtid, files.map((f) => f.record), database);
      if ('refusal' in found) refuse(found.refusal);
      const { reach: r, stopFile } = found as { reach: BinlogDumpReach; stopFile: string | null };
      reach = r;
      names = stopFile === null ? [] : reach.files.slice(0, reach.files.indexOf(stopFile) + 1);
      if (names.length > 0) {
        // mariadb-binlog takes a GTID stop only in a file that holds it: every GTID of a list must be in the same file.
        const before = names.length > 1 ? byName.get(names[names.length - 2])!.record.gtidEnd : reach.from.gtid;
        const flavor = byName.get(names[0])!.record.flavor;
        if (flavor === 'mariadb') {
          const early = parseMariadbGtidList(target.gtid).filter((g) => gtidStateCovers(before, `${g.domain}-${g.server}-${g.seq}`, flavor));
          if (early.length) refuse(`--to-gtid ${target.gtid}: ${early.map((g) => `${g.domain}-${g.server}-${g.seq}`).join(', ')} ${early.length === 1 ? 'is' : 'are'} in an earlier binary log than the rest (${names[names.length - 1]}); give the GTIDs of one file, or one GTID`, false);
        }
      }
      stop = { stopPosition: target.gtid };
      break;
    }
    case 'latest': {
      const usable = window.reaches.filter((r) => r.database === database && r.to !== null).sort((a, b) => b.to!.time.localeCompare(a.to!.time) || b.from.time.localeCompare(a.from.time));
      if (!usable[0]) refuse(`no dump of ${database} can be replayed with the archived binary logs`);
      reach = usable[0];
      // "Latest" is the end of the archive: a hole that ends it early is not silently accepted.
      if (window.newest && reach.brokenBy && window.newest.closedAt > reach.to!.time) {
        refuse(`the archive goes on to ${window.newest.binlogFile} (${window.newest.closedAt}), but replay from any dump stops at ${reach.to!.position} (${reach.to!.time}): ${reach.brokenBy.description}; restore --to-time ${reach.to!.time} to accept that`, true);
      }
      names = [...reach.files];
      break;
    }
  }
  if (reach.problems.length) refuse(`dump ${reach.dump} cannot start a replay: ${reach.problems.join('; ')}`, false);
  const dump = mine.find((d) => d.stamp === reach.dump)!;
  const steps = names.map((name, index): ReplayStep => {
    const file = byName.get(name)!;
    return {
      key: file.key,
      record: file.record,
      ...(index === 0 ? { startPosition: dump.position.position } : {}),
      ...(index === names.length - 1 ? stop : {}),
    };
  });
  return { dump, database, target, steps, window, reach };
}

/** One line for the log: the dump, the files and the stop. */
export function describePlan(plan: BinlogPlan): string {
  const files = plan.steps.map((s) => s.record.binlogFile);
  const range = files.length === 0 ? 'no binary log (the dump is at the target)' : files.length === 1 ? files[0] : `${files[0]} … ${files[files.length - 1]} (${files.length} files)`;
  return `dump ${plan.dump.stamp} of ${plan.database} (position ${formatBinlogPosition(plan.dump.position)}${plan.dump.position.gtid ? `, GTID ${plan.dump.position.gtid}` : ''}), then ${range}, to ${describeBinlogTarget(plan.target)}`;
}

/** The sequence number of a file, for range checks against records that failed. */
export function binlogSequence(file: string): number {
  return parseBinlogFileName(file).sequence;
}
