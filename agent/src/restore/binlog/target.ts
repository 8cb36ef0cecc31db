import { canonicalGtidState, formatBinlogPosition, parseBinlogPosition, type BinlogFlavor, type BinlogPosition } from '../../../../format/binlog';
import { ColdsealError, EXIT } from '../../errors';
import { parseTargetTime } from '../pitr/target';

/**
 * Where a MySQL/MariaDB point-in-time restore stops. Pure: parsed from the command line, turned
 * into mariadb-binlog's stop options by plan.ts.
 *
 * Time semantics: binary log events carry whole seconds (the event header's timestamp), and
 * mariadb-binlog --stop-datetime stops at the first event stamped at or after its argument
 * (https://mariadb.com/kb/en/mariadb-binlog-options/). An event stamped S happened somewhere in
 * [S, S+1), so only events stamped before the second of T surely happened before T: a restore to T
 * replays every transaction whose events are stamped before floor(T), i.e. everything committed
 * before floor(T), and nothing at or after it. For a T on a whole second that is exactly "before
 * T"; for T = 10:00:03.250 commits stamped 10:00:03 (which may be before or after 10:00:03.250)
 * are left out rather than risk replaying one that came after T.
 */
export type BinlogTarget =
  | { readonly kind: 'time'; /** As given, ISO 8601 UTC with ms. */ readonly requested: string; /** floor(requested) to the second, ISO 8601 UTC: replay stops at the first event stamped at or after it. */ readonly stopAt: string }
  | { readonly kind: 'position'; readonly position: BinlogPosition }
  | { readonly kind: 'gtid'; /** Canonical text (format/binlog.ts). */ readonly gtid: string }
  | { readonly kind: 'latest' };

export interface BinlogTargetOptions {
  readonly toTime?: string;
  readonly toPosition?: string;
  readonly toGtid?: string;
  readonly toLatest?: boolean;
}

export function parseBinlogTarget(options: BinlogTargetOptions, flavor: BinlogFlavor = 'mariadb'): BinlogTarget {
  const given = [options.toTime !== undefined && '--to-time', options.toPosition !== undefined && '--to-position', options.toGtid !== undefined && '--to-gtid', options.toLatest && '--to-latest'].filter(Boolean);
  if (given.length !== 1) {
    throw new ColdsealError(
      EXIT.USAGE,
      given.length ? `give one recovery target, not ${given.join(' and ')}` : 'a point-in-time restore needs a target',
      "Use --to-time '2026-12-06 10:15:00+01', --to-position mariadb-bin.000042:1234, --to-gtid 0-1-4711 or --to-latest",
    );
  }
  if (options.toTime !== undefined) {
    const { micros } = parseTargetTime(options.toTime);
    const ms = Number(micros / 1000n);
    return { kind: 'time', requested: new Date(ms).toISOString(), stopAt: new Date(Math.floor(ms / 1000) * 1000).toISOString() };
  }
  if (options.toPosition !== undefined) {
    try {
      return { kind: 'position', position: parseBinlogPosition(options.toPosition) };
    } catch (error) {
      throw new ColdsealError(EXIT.USAGE, `--to-position: ${(error as Error).message}`, 'Take it from SHOW MASTER STATUS, SHOW BINLOG EVENTS or coldseal list');
    }
  }
  if (options.toGtid !== undefined) {
    let gtid: string;
    try {
      gtid = canonicalGtidState(options.toGtid, flavor);
    } catch (error) {
      throw new ColdsealError(EXIT.USAGE, `--to-gtid: ${(error as Error).message}`, flavor === 'mariadb' ? 'Give a MariaDB GTID (domain-server-sequence, e.g. 0-1-4711; one per domain, comma-separated), e.g. from SELECT @@gtid_binlog_pos' : 'Give a MySQL GTID set (uuid:1-100)');
    }
    if (gtid === '') throw new ColdsealError(EXIT.USAGE, '--to-gtid is empty', 'Give a GTID, e.g. 0-1-4711');
    return { kind: 'gtid', gtid };
  }
  return { kind: 'latest' };
}

/** mariadb-binlog --stop-datetime's argument: the time as it reads it (its process runs with TZ=UTC). */
export function stopDatetimeArgument(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

export function describeBinlogTarget(target: BinlogTarget): string {
  switch (target.kind) {
    case 'time':
      return target.requested === target.stopAt
        ? `${target.requested} (every transaction committed before it)`
        : `${target.requested} (every transaction committed before ${target.stopAt}: the binary log stamps whole seconds, so commits stamped ${target.stopAt.slice(11, 19)} are left out)`;
    case 'position':
      return `position ${formatBinlogPosition(target.position)} (every event that starts before it)`;
    case 'gtid':
      return `GTID ${target.gtid} (that transaction included)`;
    case 'latest':
      return 'the end of the archive';
  }
}
