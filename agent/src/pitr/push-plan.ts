import { join } from 'node:path';
import { parseWalFileName } from '../../../format/wal';

/**
 * Push-ahead, the pure part. PostgreSQL runs archive_command once per WAL file, one at a time,
 * and Node's start-up alone (~0.3 s) would cap archiving at a few files a second. So one
 * archive-push call uploads the file PostgreSQL asked for AND the oldest other files it has marked
 * ready (pg_wal/archive_status/<file>.ready), in parallel, and leaves a "pushed" marker for each of
 * those; when PostgreSQL then asks for one of them, the wrapper script (archive-wrapper.ts) finds
 * its marker, removes it and reports success without starting Node (as pgBackRest's async
 * archive-push and WAL-G's background uploader do).
 *
 * Markers live under the cluster's system identifier (`<state>/<system id>/pushed/<file>`), so a
 * cluster re-initialised, or another cluster configured with the same source and state directory,
 * never takes a marker it did not earn: its files are named alike (timeline 1 restarts at
 * 000000010000000000000001) but its system identifier differs.
 */

/** The default state directory root: one directory per source below it. */
export const DEFAULT_STATE_ROOT = '/var/lib/coldseal/pitr';

export function defaultStateDir(source: string): string {
  return join(DEFAULT_STATE_ROOT, source);
}

export function markerDir(stateDir: string, systemIdentifier: string): string {
  if (!/^\d{1,20}$/.test(systemIdentifier)) throw new Error(`system identifier "${systemIdentifier}" is not a decimal number`);
  return join(stateDir, systemIdentifier, 'pushed');
}

export const READY_SUFFIX = '.ready';

export interface PushPlanInput {
  /** The file PostgreSQL asked for (%f). */
  readonly requested: string;
  /** Names in pg_wal/archive_status (any, as listed). */
  readonly statusFiles: readonly string[];
  /** Names in the marker directory. */
  readonly markers: readonly string[];
  /** Files one call uploads at most, the requested one included. */
  readonly pushAhead: number;
}

export interface PushPlan {
  /** Other ready files to upload now, in PostgreSQL's own order. */
  readonly ahead: string[];
  /** Markers whose file is no longer ready (archived since by other means, or removed): to delete. */
  readonly staleMarkers: string[];
  /** Ready files before this call. */
  readonly readyCount: number;
  /** Whether the requested file is one of them (it is when PostgreSQL asks). */
  readonly requestedReady: boolean;
}

function isWalFileName(name: string): boolean {
  try {
    parseWalFileName(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * PostgreSQL's archiver order (since 14, src/backend/postmaster/pgarch.c, ready_file_comparator):
 * timeline history files first, then by name, which for WAL names is oldest first.
 */
export function archiverOrder(a: string, b: string): number {
  const ha = a.endsWith('.history');
  const hb = b.endsWith('.history');
  if (ha !== hb) return ha ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function planPush(input: PushPlanInput): PushPlan {
  const ready = input.statusFiles
    .filter((n) => n.endsWith(READY_SUFFIX))
    .map((n) => n.slice(0, -READY_SUFFIX.length))
    .filter(isWalFileName);
  const readySet = new Set(ready);
  const markers = new Set(input.markers.filter(isWalFileName));
  const ahead = ready
    .filter((n) => n !== input.requested && !markers.has(n))
    .sort(archiverOrder)
    .slice(0, Math.max(0, input.pushAhead - 1));
  const staleMarkers = [...markers].filter((n) => !readySet.has(n) && n !== input.requested).sort();
  return { ahead, staleMarkers, readyCount: readySet.size, requestedReady: readySet.has(input.requested) };
}
