import { canonicalGtidState, formatBinlogPosition, gtidStateCovers, parseBinlogFileName, type BinlogFlavor } from './binlog';
import type { BinlogRecord } from './binlog-record';
import type { BinlogPositionRecord } from './manifest';

/**
 * The recovery window of a MySQL/MariaDB PITR source: which points in time its kept dumps and its
 * binary log archive can reach, and which holes break it. Pure: `coldseal list`, `coldseal
 * restore` and the keyless verifier feed it the dumps' positions (manifests) and the archived
 * files' signed records.
 *
 * - A dump reaches any time from its position's `readAt` (at or after its snapshot) up to the
 *   `closedAt` of the last file of the unbroken chain that starts at the file its position names.
 * - A chain breaks where a file is missing (sequence numbers jump) or where a file's head GTID
 *   state is not the previous file's end state (transactions were logged that no archived file
 *   holds: a purge, a RESET MASTER, another server writing under the same name).
 * - The window's `from`/`to` is the range that ends furthest, started by the oldest dump whose
 *   chain gets there; older ranges cut off by a gap are in `ranges`.
 * - `to.time` is the recovery point achieved: everything committed before it is archived.
 * - Times are compared as text: pass ISO 8601 UTC with milliseconds (Date.toISOString()), as the
 *   records and manifests hold them.
 */

/** What the window needs of one archived file: its verified record. */
export type WindowBinlog = Pick<BinlogRecord, 'binlogFile' | 'flavor' | 'gtidStart' | 'gtidEnd' | 'openedAt' | 'closedAt' | 'endsWith' | 'lastCommitAt'>;

export interface WindowDump {
  /** What names the dump to a person: its manifest key. */
  readonly id: string;
  /** The database (artifact) the position belongs to. */
  readonly database: string;
  readonly position: BinlogPositionRecord;
}

export interface BinlogWindowPoint {
  readonly time: string;
  /** "file:offset" at a `from` end (the dump's position); the file at a `to` end. */
  readonly position: string;
  /** GTID state there (canonical text; "" when none was logged yet). */
  readonly gtid: string;
  /** The dump this range starts from (`from` ends only). */
  readonly dump?: string;
  readonly database?: string;
}

export interface BinlogRange {
  readonly from: BinlogWindowPoint;
  readonly to: BinlogWindowPoint;
}

export interface BinlogGap {
  /** The last archived file before the hole, and the first after it. */
  readonly after: string;
  readonly before: string;
  /** Missing file names, first and last; equal to `after`/`before`'s neighbours; empty when no file is missing but the GTID states do not chain. */
  readonly missing: readonly string[];
  /** The hole in time: from the close of `after` to the opening of `before`. Transactions committed in it are lost. */
  readonly fromTime: string;
  readonly toTime: string;
  /** GTID state before and after the hole. */
  readonly gtidBefore: string;
  readonly gtidAfter: string;
  readonly reason: 'missing-files' | 'gtid-discontinuity';
  /** One sentence naming the lost range, for FAILs and refusals. */
  readonly description: string;
}

export interface BinlogDumpReach {
  readonly dump: string;
  readonly database: string;
  readonly from: BinlogWindowPoint;
  /** Null when the file the dump's position names is not archived (yet, or lost). */
  readonly to: BinlogWindowPoint | null;
  /** Files replay would read from the dump's position to `to`, in order. */
  readonly files: readonly string[];
  /** The gap that ends this dump's reach before the newest archived file, if one does. */
  readonly brokenBy: BinlogGap | null;
  /** Why the reach is empty or doubtful (position file missing, GTID position not in its file). */
  readonly problems: readonly string[];
}

export interface BinlogWindow {
  /** Null when no dump reaches any point (no dump, or none whose position file is archived). */
  readonly from: BinlogWindowPoint | null;
  readonly to: BinlogWindowPoint | null;
  /** Every disjoint reachable range, oldest first. */
  readonly ranges: readonly BinlogRange[];
  /** Holes in the archive from the oldest dump's position on. */
  readonly gaps: readonly BinlogGap[];
  readonly reaches: readonly BinlogDumpReach[];
  /** The newest archived file (reachable or not): how current the archive is. */
  readonly newest: WindowBinlog | null;
  readonly notes: readonly string[];
}

function sequenceOf(file: string): number {
  return parseBinlogFileName(file).sequence;
}

/** The hole between two archived files of one basename (b later than a), or null when b continues a. */
export function gapBetween(a: WindowBinlog, b: WindowBinlog): BinlogGap | null {
  const sa = parseBinlogFileName(a.binlogFile);
  const sb = parseBinlogFileName(b.binlogFile);
  const flavor: BinlogFlavor = b.flavor;
  if (sb.sequence !== sa.sequence + 1) {
    const width = a.binlogFile.length - sa.basename.length - 1;
    const name = (n: number) => `${sa.basename}.${String(n).padStart(width, '0')}`;
    const missing = sb.sequence - sa.sequence - 1 === 1 ? [name(sa.sequence + 1)] : [name(sa.sequence + 1), name(sb.sequence - 1)];
    const files = `binary log ${missing.join('–')} ${missing.length === 1 ? 'is' : 'are'} not in the archive`;
    // Equal non-empty states on both sides: the missing files held no GTID transaction (a quiet
    // interval's rotations), yet what they held cannot be shown, so the hole stays a hole.
    const quiet = a.gtidEnd !== '' && canonicalGtidState(a.gtidEnd, flavor) === canonicalGtidState(b.gtidStart, flavor);
    return {
      after: a.binlogFile,
      before: b.binlogFile,
      missing,
      fromTime: a.closedAt,
      toTime: b.openedAt,
      gtidBefore: a.gtidEnd,
      gtidAfter: b.gtidStart,
      reason: 'missing-files',
      description: quiet
        ? `${files}: the GTID state is ${a.gtidEnd} on both sides, so no GTID transaction is lost, but what was logged between ${a.closedAt} and ${b.openedAt} cannot be replayed or checked`
        : `${files}: transactions committed between ${a.closedAt} and ${b.openedAt} (GTID after ${a.gtidEnd || 'none'} up to ${b.gtidStart || 'none'}) cannot be replayed`,
    };
  }
  if (canonicalGtidState(a.gtidEnd, flavor) !== canonicalGtidState(b.gtidStart, flavor)) {
    return {
      after: a.binlogFile,
      before: b.binlogFile,
      missing: [],
      fromTime: a.closedAt,
      toTime: b.openedAt,
      gtidBefore: a.gtidEnd,
      gtidAfter: b.gtidStart,
      reason: 'gtid-discontinuity',
      description: `${b.binlogFile} does not continue ${a.binlogFile}: its GTID state at the head is ${b.gtidStart || 'empty'}, the previous file ended at ${a.gtidEnd || 'empty'} (transactions logged between ${a.closedAt} and ${b.openedAt} are in no archived file)`,
    };
  }
  return null;
}

export interface BinlogWindowInput {
  readonly dumps: readonly WindowDump[];
  /** Archived files of one source (any order; other basenames than the dumps' are ignored with a note). */
  readonly files: readonly WindowBinlog[];
}

export function binlogWindow(input: BinlogWindowInput): BinlogWindow {
  const notes: string[] = [];
  const basenames = new Set(input.dumps.map((d) => parseBinlogFileName(d.position.file).basename));
  const newestDumpBase = [...input.dumps].sort((a, b) => b.position.readAt.localeCompare(a.position.readAt))[0];
  const byBase = new Map<string, WindowBinlog[]>();
  for (const f of input.files) {
    const base = parseBinlogFileName(f.binlogFile).basename;
    // push, not a spread copy: a month of 5-minute files is 8640, and copying made this quadratic.
    const list = byBase.get(base) ?? [];
    list.push(f);
    byBase.set(base, list);
  }
  for (const base of byBase.keys()) {
    if (!basenames.has(base) && input.dumps.length > 0) notes.push(`archived binary logs named ${base}.* belong to no kept dump's position and are not part of the window`);
  }
  // Equal times (a second's resolution, or times estimated from listings): the later file of a basename is the newer.
  const allFiles = [...input.files].sort((a, b) => b.closedAt.localeCompare(a.closedAt) || (parseBinlogFileName(a.binlogFile).basename === parseBinlogFileName(b.binlogFile).basename ? sequenceOf(b.binlogFile) - sequenceOf(a.binlogFile) : 0));
  const newest = allFiles[0] ?? null;

  const reaches: BinlogDumpReach[] = [];
  const gapsByKey = new Map<string, BinlogGap>();
  for (const dump of input.dumps) {
    const base = parseBinlogFileName(dump.position.file).basename;
    const files = [...(byBase.get(base) ?? [])].sort((a, b) => sequenceOf(a.binlogFile) - sequenceOf(b.binlogFile));
    const from: BinlogWindowPoint = { time: dump.position.readAt, position: formatBinlogPosition(dump.position), gtid: dump.position.gtid, dump: dump.id, database: dump.database };
    const startIndex = files.findIndex((f) => f.binlogFile === dump.position.file);
    const problems: string[] = [];
    if (startIndex < 0) {
      const later = files.find((f) => sequenceOf(f.binlogFile) > sequenceOf(dump.position.file));
      problems.push(
        later
          ? `${dump.position.file}, where dump ${dump.id} (${dump.database}) starts, is not in the archive (the archive goes on at ${later.binlogFile})`
          : `${dump.position.file}, where dump ${dump.id} (${dump.database}) starts, is not archived yet`,
      );
      reaches.push({ dump: dump.id, database: dump.database, from, to: null, files: [], brokenBy: null, problems });
      continue;
    }
    const start = files[startIndex];
    if (dump.position.gtid && !gtidStateCovers(start.gtidEnd, dump.position.gtid, start.flavor)) {
      problems.push(`dump ${dump.id} (${dump.database}) records GTID position ${dump.position.gtid}, which ${start.binlogFile} (ending at ${start.gtidEnd || 'empty'}) does not reach`);
    }
    const chain = [start];
    let brokenBy: BinlogGap | null = null;
    for (let i = startIndex + 1; i < files.length; i++) {
      const gap = gapBetween(files[i - 1], files[i]);
      if (gap) {
        brokenBy = gap;
        gapsByKey.set(`${gap.after}>${gap.before}`, gap);
        break;
      }
      chain.push(files[i]);
    }
    const last = chain[chain.length - 1];
    // closedAt is a binary log event time, in whole seconds: a file closed in the second the dump
    // read its position (e.g. 58.000 against 58.400) may have closed after it.
    if (last.closedAt < `${dump.position.readAt.slice(0, 19)}.000Z`) {
      problems.push(`the archive of ${base} ends at ${last.closedAt}, before dump ${dump.id} (${dump.database}) read its position at ${dump.position.readAt}: no point after the dump is archived yet`);
      reaches.push({ dump: dump.id, database: dump.database, from, to: null, files: [], brokenBy, problems });
      continue;
    }
    reaches.push({
      dump: dump.id,
      database: dump.database,
      from,
      to: { time: last.closedAt, position: last.binlogFile, gtid: last.gtidEnd },
      files: chain.map((f) => f.binlogFile),
      brokenBy,
      problems,
    });
  }

  // Every hole from the oldest dump's start file on, not only those that end some dump's chain:
  // a hole after an earlier one (or at a dump's own start file) loses transactions too.
  for (const dump of input.dumps) {
    const base = parseBinlogFileName(dump.position.file).basename;
    const startSequence = sequenceOf(dump.position.file);
    const files = [...(byBase.get(base) ?? [])].sort((a, b) => sequenceOf(a.binlogFile) - sequenceOf(b.binlogFile));
    for (let i = 1; i < files.length; i++) {
      if (sequenceOf(files[i].binlogFile) <= startSequence) continue;
      const gap = gapBetween(files[i - 1], files[i]);
      if (gap) gapsByKey.set(`${gap.after}>${gap.before}`, gap);
    }
  }

  const usable = reaches.filter((r): r is BinlogDumpReach & { to: BinlogWindowPoint } => r.to !== null);
  const sorted = [...usable].sort((a, b) => a.from.time.localeCompare(b.from.time));
  const ranges: Array<{ from: BinlogWindowPoint; to: BinlogWindowPoint }> = [];
  for (const r of sorted) {
    const prev = ranges[ranges.length - 1];
    if (prev && r.from.time <= prev.to.time) {
      if (r.to.time > prev.to.time) prev.to = r.to;
    } else {
      ranges.push({ from: r.from, to: r.to });
    }
  }
  const furthest = [...ranges].sort((a, b) => b.to.time.localeCompare(a.to.time))[0];
  if (input.dumps.length === 0) notes.push('no kept dump records a binary log position: nothing to replay from');
  if (newestDumpBase && !byBase.has(parseBinlogFileName(newestDumpBase.position.file).basename)) notes.push(`no binary log of ${parseBinlogFileName(newestDumpBase.position.file).basename} is archived yet`);
  return {
    from: furthest?.from ?? null,
    to: furthest?.to ?? null,
    ranges,
    gaps: [...gapsByKey.values()].sort((a, b) => a.fromTime.localeCompare(b.fromTime)),
    reaches,
    newest,
    notes,
  };
}

/**
 * The dump a restore to `time` starts from: the newest whose reach holds the time. Null with the
 * reason when none does, naming the lost range when the time falls in a hole.
 */
export function dumpForTime(window: BinlogWindow, time: string, database?: string): { reach: BinlogDumpReach } | { refusal: string } {
  const candidates = window.reaches
    .filter((r) => (database === undefined || r.database === database) && r.to !== null && r.from.time <= time && time <= r.to.time)
    .sort((a, b) => b.from.time.localeCompare(a.from.time));
  if (candidates[0]) return { reach: candidates[0] };
  // Past the newest archived file nothing is lost yet, only not archived: "outside the window", not an older hole.
  const archived = window.newest !== null && time <= window.newest.closedAt;
  const hole = window.gaps.find((g) => g.fromTime <= time && time <= g.toTime) ?? (archived ? window.gaps.filter((g) => g.fromTime <= time).pop() : undefined);
  const span = window.ranges.map((r) => `${r.from.time} – ${r.to.time}`).join(', ') || 'none';
  if (hole) return { refusal: `${time} cannot be recovered: ${hole.description}. Reachable: ${span}` };
  return { refusal: `${time} is outside the recovery window${database ? ` of database ${database}` : ''} (reachable: ${span})` };
}

/** The ranges a refusal names ("from – to, …"). */
function reachableSpan(window: BinlogWindow): string {
  return window.ranges.map((r) => `${r.from.time} – ${r.to.time}`).join(', ') || 'none';
}

/**
 * The dump a restore to a binary log position starts from: the newest whose own position is at or
 * before the target and whose unbroken chain holds the target's file. `plaintextBytes` says how
 * long each archived file is (a position past the end of its file is refused).
 */
export function dumpForPosition(
  window: BinlogWindow,
  target: { readonly file: string; readonly position: number },
  sizes: ReadonlyMap<string, number>,
  database?: string,
): { reach: BinlogDumpReach } | { refusal: string } {
  const text = formatBinlogPosition(target);
  const base = parseBinlogFileName(target.file).basename;
  const candidates = window.reaches
    .filter((r) => (database === undefined || r.database === database) && r.to !== null && parseBinlogFileName(r.from.position.replace(/:\d+$/, '')).basename === base)
    .filter((r) => {
      const [file, offset] = [r.from.position.replace(/:\d+$/, ''), Number(/:(\d+)$/.exec(r.from.position)?.[1] ?? 0)];
      const after = sequenceOf(target.file) > sequenceOf(file) || (target.file === file && target.position >= offset);
      return after && r.files.includes(target.file);
    })
    .sort((a, b) => b.from.time.localeCompare(a.from.time));
  const size = sizes.get(target.file);
  if (candidates[0]) {
    if (size !== undefined && target.position > size) return { refusal: `position ${text} is past the end of ${target.file} (${size} bytes)` };
    return { reach: candidates[0] };
  }
  const hole = window.gaps.find((g) => g.missing.length > 0 && sequenceOf(g.missing[0]) <= sequenceOf(target.file) && sequenceOf(target.file) <= sequenceOf(g.missing[g.missing.length - 1]));
  if (hole) return { refusal: `${text} cannot be recovered: ${hole.description}. Reachable: ${reachableSpan(window)}` };
  const broken = window.reaches.find((r) => r.brokenBy && sequenceOf(r.brokenBy.before) <= sequenceOf(target.file));
  if (broken?.brokenBy) return { refusal: `${text} cannot be recovered: ${broken.brokenBy.description}. Reachable: ${reachableSpan(window)}` };
  return { refusal: `position ${text} is outside the recovery window${database ? ` of database ${database}` : ''} (before the first dump's position, or not archived; reachable: ${reachableSpan(window)})` };
}

/**
 * The dump a restore to a GTID position starts from: the newest whose GTID position the target
 * covers (it holds no transaction after the target) and whose chain reaches a file that holds the
 * target. `stopFile` is the first file of the reach whose end state covers the target; null when
 * the dump is exactly at the target (nothing to replay).
 */
export function dumpForGtid(
  window: BinlogWindow,
  target: string,
  files: readonly WindowBinlog[],
  database?: string,
): { reach: BinlogDumpReach; stopFile: string | null } | { refusal: string } {
  const byName = new Map(files.map((f) => [f.binlogFile, f]));
  let sawBefore = false;
  const candidates = window.reaches
    .filter((r) => (database === undefined || r.database === database) && r.to !== null)
    .sort((a, b) => b.from.time.localeCompare(a.from.time));
  for (const reach of candidates) {
    const flavor = byName.get(reach.files[0])?.flavor ?? 'mariadb';
    if (!gtidStateCovers(target, reach.from.gtid, flavor)) {
      sawBefore = true;
      continue;
    }
    // Nothing to replay: the dump is exactly at the target.
    if (gtidStateCovers(reach.from.gtid, target, flavor)) return { reach, stopFile: null };
    const stop = reach.files.find((f) => gtidStateCovers(byName.get(f)!.gtidEnd, target, flavor));
    if (stop) return { reach, stopFile: stop };
  }
  const hole = window.gaps[0];
  if (hole && candidates.length > 0) return { refusal: `GTID ${target} cannot be recovered: it is in no file of an unbroken chain from a dump (${window.gaps.map((g) => g.description).join('; ')}). Reachable: ${reachableSpan(window)}` };
  return {
    refusal: `GTID ${target} is outside the recovery window${database ? ` of database ${database}` : ''} (${sawBefore ? 'every dump is past it, or ' : ''}no archived file holds it yet; reachable: ${reachableSpan(window)}${window.to ? `, up to GTID ${window.to.gtid}` : ''})`,
  };
}
