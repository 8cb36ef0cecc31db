/**
 * MySQL/MariaDB binary logs as coldseal names and chains them: file names, positions and GTID
 * states. Pure and dependency-free: the agent (archive, restore, list), the keyless verifier and
 * the monitor all judge continuity with these functions.
 *
 * A server writes `<basename>.<NNNNNN>` files in sequence; FLUSH BINARY LOGS (or max_binlog_size,
 * or a restart) closes one with a Rotate (or Stop) event and opens the next. Transactions never
 * span two files, which is what lets restore replay file by file through one client session.
 *
 * GTID states (what the server has logged up to a point):
 * - MariaDB: a list of `domain-server-seq`, the last GTID per (domain, server id) pair, exactly as
 *   the Gtid_list event at the head of every binary log file holds it
 *   (https://mariadb.com/kb/en/gtid_list_event/). A file's end state is its Gtid_list updated with
 *   each GTID event in it; the next file's Gtid_list must equal it, or something is missing.
 * - MySQL 8: a GTID set `uuid:1-100:102,uuid2:1-5`, as the Previous_gtids event at the head of
 *   every file holds it (https://dev.mysql.com/doc/refman/8.0/en/replication-gtids-concepts.html).
 *   A file's end state is its Previous_gtids plus the GTIDs it holds.
 * Both are kept in canonical text (sorted, merged) so that continuity is text equality.
 */

export type BinlogFlavor = 'mariadb' | 'mysql';

/** A binary log file name: basename plus a zero-padded sequence of at least 6 digits. */
const BINLOG_FILE_PATTERN = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})\.(\d{6,9})$/;

export interface BinlogFileName {
  readonly basename: string;
  readonly sequence: number;
  readonly name: string;
}

export function parseBinlogFileName(name: string): BinlogFileName {
  const match = BINLOG_FILE_PATTERN.exec(name);
  if (!match) throw new Error(`"${name}" is not a binary log file name (expected <basename>.<6+ digits>, e.g. mysql-bin.000042)`);
  return { basename: match[1], sequence: Number(match[2]), name };
}

export function isBinlogFileName(name: string): boolean {
  return BINLOG_FILE_PATTERN.test(name);
}

/** The file name of `sequence` beside `like` (same basename and padding, as the server names them). */
export function binlogFileName(basename: string, sequence: number): string {
  if (!Number.isInteger(sequence) || sequence < 1 || sequence > 999_999_999) throw new Error(`binary log sequence ${sequence} is outside 1–999999999`);
  return `${basename}.${String(sequence).padStart(6, '0')}`;
}

/** A place in the binary log: the file and the byte offset of the next event (SHOW MASTER STATUS, CHANGE MASTER TO). */
export interface BinlogPosition {
  readonly file: string;
  readonly position: number;
}

export function compareBinlogPositions(a: BinlogPosition, b: BinlogPosition): number {
  const fa = parseBinlogFileName(a.file);
  const fb = parseBinlogFileName(b.file);
  if (fa.basename !== fb.basename) throw new Error(`binary log positions of two basenames (${fa.basename}, ${fb.basename}) cannot be compared`);
  return fa.sequence - fb.sequence || a.position - b.position;
}

/** "mysql-bin.000042:1234", the form `--to-position` takes and messages print. */
export function formatBinlogPosition(p: BinlogPosition): string {
  return `${p.file}:${p.position}`;
}

export function parseBinlogPosition(text: string): BinlogPosition {
  const match = /^(.+):(\d+)$/.exec(text.trim());
  if (!match || !isBinlogFileName(match[1])) throw new Error(`"${text}" is not a binary log position (expected <file>:<offset>, e.g. mysql-bin.000042:1234)`);
  return { file: match[1], position: Number(match[2]) };
}

// ---------------------------------------------------------------------------------------------
// MariaDB GTIDs

export interface MariadbGtid {
  readonly domain: number;
  readonly server: number;
  readonly seq: bigint;
}

const MARIADB_GTID = /^(\d{1,10})-(\d{1,10})-(\d{1,20})$/;

export function parseMariadbGtid(text: string): MariadbGtid {
  const match = MARIADB_GTID.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a MariaDB GTID (expected domain-server-sequence, e.g. 0-1-42)`);
  return { domain: Number(match[1]), server: Number(match[2]), seq: BigInt(match[3]) };
}

export function formatMariadbGtid(g: MariadbGtid): string {
  return `${g.domain}-${g.server}-${g.seq}`;
}

/** A MariaDB GTID list ("0-1-42,1-2-7"; empty text is the empty list), one entry per (domain, server). */
export function parseMariadbGtidList(text: string): MariadbGtid[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const entries = trimmed.split(',').map(parseMariadbGtid);
  const seen = new Set<string>();
  for (const e of entries) {
    const k = `${e.domain}-${e.server}`;
    if (seen.has(k)) throw new Error(`GTID list "${text}" names domain ${e.domain} server ${e.server} twice`);
    seen.add(k);
  }
  return entries;
}

function canonicalMariadb(list: readonly MariadbGtid[]): string {
  return [...list]
    .sort((a, b) => a.domain - b.domain || a.server - b.server)
    .map(formatMariadbGtid)
    .join(',');
}

/** The state after `gtid` was logged: its (domain, server) entry takes its sequence number. */
export function mariadbStateAfter(state: readonly MariadbGtid[], gtid: MariadbGtid): MariadbGtid[] {
  return [...state.filter((e) => !(e.domain === gtid.domain && e.server === gtid.server)), gtid];
}

/**
 * The newest GTID per domain of a state (what gtid_binlog_pos and mariadb-dump --gtid print): for
 * each domain the entry with the highest sequence number.
 */
export function mariadbPositionOf(state: readonly MariadbGtid[]): MariadbGtid[] {
  const best = new Map<number, MariadbGtid>();
  for (const e of state) {
    const cur = best.get(e.domain);
    if (!cur || e.seq > cur.seq) best.set(e.domain, e);
  }
  return [...best.values()].sort((a, b) => a.domain - b.domain);
}

/**
 * Whether every transaction of `position` (a per-domain GTID position, e.g. a dump's) is within
 * `state`: in each domain of the position, the state's newest sequence number is at least its.
 */
export function mariadbStateCovers(state: readonly MariadbGtid[], position: readonly MariadbGtid[]): boolean {
  const newest = new Map(mariadbPositionOf(state).map((g) => [g.domain, g.seq]));
  return position.every((p) => (newest.get(p.domain) ?? -1n) >= p.seq);
}

// ---------------------------------------------------------------------------------------------
// MySQL 8 GTID sets

/** A MySQL GTID set as uuid → sorted, merged, inclusive intervals of transaction numbers. */
export type MysqlGtidSet = ReadonlyMap<string, ReadonlyArray<readonly [bigint, bigint]>>;

export function parseMysqlGtidSet(text: string): MysqlGtidSet {
  const result = new Map<string, Array<[bigint, bigint]>>();
  const trimmed = text.replace(/\s+/g, '');
  if (trimmed === '') return result;
  for (const part of trimmed.split(',')) {
    const [uuid, ...ranges] = part.split(':');
    if (!/^[0-9a-fA-F-]{36}$/.test(uuid) || ranges.length === 0) throw new Error(`"${part}" is not a MySQL GTID set member (expected uuid:1-100[:…])`);
    const list = result.get(uuid.toLowerCase()) ?? [];
    for (const r of ranges) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(r);
      if (!m) throw new Error(`"${r}" in "${part}" is not a transaction interval (expected N or N-M)`);
      const lo = BigInt(m[1]);
      const hi = BigInt(m[2] ?? m[1]);
      if (hi < lo) throw new Error(`interval ${r} in "${part}" runs backwards`);
      list.push([lo, hi]);
    }
    result.set(uuid.toLowerCase(), list);
  }
  for (const [uuid, list] of result) result.set(uuid, mergeIntervals(list));
  return result;
}

function mergeIntervals(list: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  const sorted = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: Array<[bigint, bigint]> = [];
  for (const [lo, hi] of sorted) {
    const last = merged[merged.length - 1];
    if (last && lo <= last[1] + 1n) last[1] = hi > last[1] ? hi : last[1];
    else merged.push([lo, hi]);
  }
  return merged;
}

export function formatMysqlGtidSet(set: MysqlGtidSet): string {
  return [...set.keys()]
    .sort()
    .filter((uuid) => (set.get(uuid) ?? []).length > 0)
    .map((uuid) => `${uuid}:${(set.get(uuid) ?? []).map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(':')}`)
    .join(',');
}

export function mysqlGtidSetUnion(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const result = new Map<string, Array<[bigint, bigint]>>();
  for (const set of [a, b]) for (const [uuid, list] of set) result.set(uuid, [...(result.get(uuid) ?? []), ...list.map(([lo, hi]) => [lo, hi] as [bigint, bigint])]);
  for (const [uuid, list] of result) result.set(uuid, mergeIntervals(list));
  return result;
}

/** Whether `set` holds every transaction of `subset`. */
export function mysqlGtidSetContains(set: MysqlGtidSet, subset: MysqlGtidSet): boolean {
  for (const [uuid, list] of subset) {
    const have = set.get(uuid) ?? [];
    for (const [lo, hi] of list) if (!have.some(([a, b]) => a <= lo && hi <= b)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Both flavours

/** The canonical text of a GTID state, so that two states compare as text; throws naming the text when it does not parse. */
export function canonicalGtidState(text: string, flavor: BinlogFlavor): string {
  return flavor === 'mariadb' ? canonicalMariadb(parseMariadbGtidList(text)) : formatMysqlGtidSet(parseMysqlGtidSet(text));
}

/** Whether `state` (a file's end state) holds every transaction of `position` (a dump's GTID position or a --to-gtid target). */
export function gtidStateCovers(state: string, position: string, flavor: BinlogFlavor): boolean {
  return flavor === 'mariadb'
    ? mariadbStateCovers(parseMariadbGtidList(state), parseMariadbGtidList(position))
    : mysqlGtidSetContains(parseMysqlGtidSet(state), parseMysqlGtidSet(position));
}
