import { parseLsn, segmentNumberOf } from '../format/wal';
import type { BenchCluster } from './pitr-cluster';

/**
 * The WAL the PITR bench makes and watches: the same burst for every contender, autocommitted
 * copies of a seed table of 200k rows (half md5 hex, half repetitive text, so zstd has about the
 * work real row data gives it; ~35 MB of WAL a copy), then pg_switch_wal so the last segment is
 * complete. Copying rows instead of computing them (two md5 a row) writes WAL about twice as fast
 * here: the archivers face the fastest WAL this server writes.
 */
export const WAL_SEGMENT_BYTES = 16 * 1024 * 1024;

export interface Burst {
  /** The first segment the burst wrote into and the last one (switched out by pg_switch_wal). */
  firstSegment: string;
  lastSegment: string;
  /** Segments from the first to the last, both included. */
  segments: number;
  walBytes: number;
  /** From the first insert to pg_switch_wal's return. */
  seconds: number;
  rows: number;
  startedAt: number;
  endedAt: number;
}

const SEED_ROWS = 200_000;

/** The bench's tables live in their own database, which coldseal's logical dump beside the base backup leaves out. */
export const BENCH_DATABASE = 'bench';

export function createBenchTables(cluster: BenchCluster, tables: readonly string[]): void {
  cluster.psql(`create database ${BENCH_DATABASE}`);
  for (const table of tables) cluster.psql(`create table ${table} (id bigint, at timestamptz, token text, message text)`, BENCH_DATABASE);
  cluster.psql(
    `create table seed as
       select g::bigint as id, now() as at, md5(g::text) || md5((g * 31)::text) as token,
              'user ' || (g % 5000) || ' did action ' || (g % 37) || ' on item ' || (g % 100000) as message
       from generate_series(1, ${SEED_ROWS}) g`,
    BENCH_DATABASE,
  );
}

/** Inserts into `table` until at least `mb` MB of WAL were written, then switches the WAL file. */
export async function walBurst(cluster: BenchCluster, table: string, mb: number): Promise<Burst> {
  const c = await cluster.client(BENCH_DATABASE);
  try {
    const start = (await c.query<{ lsn: string; file: string }>('select pg_current_wal_lsn()::text as lsn, pg_walfile_name(pg_current_wal_lsn()) as file')).rows[0];
    const startLsn = parseLsn(start.lsn);
    const target = BigInt(Math.round(mb * 1024 * 1024));
    const startedAt = Date.now();
    let rows = 0;
    for (;;) {
      await c.query(`insert into ${table} select * from seed`);
      rows += SEED_ROWS;
      const now = (await c.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0];
      if (parseLsn(now.lsn) - startLsn >= target) break;
    }
    // pg_switch_wal returns the end of the segment it completed: pg_walfile_name of that boundary
    // LSN names the completed segment (docs, "Backup Control Functions", pg_walfile_name).
    const end = (await c.query<{ lsn: string; file: string }>('select l::text as lsn, pg_walfile_name(l) as file from pg_switch_wal() l')).rows[0];
    const endedAt = Date.now();
    const segments = Number(segmentNumberOf(end.file, WAL_SEGMENT_BYTES) - segmentNumberOf(start.file, WAL_SEGMENT_BYTES)) + 1;
    return { firstSegment: start.file, lastSegment: end.file, segments, walBytes: Number(parseLsn(end.lsn) - startLsn), seconds: (endedAt - startedAt) / 1000, rows, startedAt, endedAt };
  } finally {
    await c.end();
  }
}

export interface BacklogSample {
  /** Seconds since the watch started. */
  t: number;
  ready: number;
  archivedCount: number;
  failedCount: number;
}

interface ArchiverRow {
  archived_count: string;
  last_archived_wal: string | null;
  failed_count: string;
  last_failed_wal: string | null;
}

/**
 * Samples the .ready backlog and pg_stat_archiver every `intervalMs` from now on; `until(segment)`
 * resolves with the time the archiver reported `segment` (or a later one) archived. PostgreSQL
 * hands .ready files over oldest first (pgarch.c, pgarch_readyXlog), so the last segment archived
 * means every earlier one is.
 */
export async function watchArchiver(cluster: BenchCluster, intervalMs = 500) {
  const c = await cluster.client();
  const t0 = Date.now();
  const samples: BacklogSample[] = [];
  let last: ArchiverRow | undefined;
  let failure: string | undefined;
  let busy = false;
  const sample = async () => {
    if (busy) return;
    busy = true;
    try {
      const ready = cluster.readyCount();
      last = (await c.query<ArchiverRow>('select archived_count, last_archived_wal, failed_count, last_failed_wal from pg_stat_archiver')).rows[0];
      samples.push({ t: (Date.now() - t0) / 1000, ready, archivedCount: Number(last.archived_count), failedCount: Number(last.failed_count) });
    } catch (error) {
      failure = (error as Error).message;
    } finally {
      busy = false;
    }
  };
  await sample();
  const failedAtStart = samples[0].failedCount;
  const timer = setInterval(() => void sample(), intervalMs);
  return {
    t0,
    samples,
    failedSinceStart: () => (samples.at(-1)?.failedCount ?? failedAtStart) - failedAtStart,
    /** Resolves with the wall-clock ms at which `segment` was seen archived; rejects after `timeoutSeconds`. */
    async until(segment: string, timeoutSeconds: number): Promise<number> {
      const deadline = Date.now() + timeoutSeconds * 1000;
      for (;;) {
        // A 50 ms poll for the end itself: the 0.5 s samples would round every time up by up to 0.5 s.
        const row = (await c.query<ArchiverRow>('select archived_count, last_archived_wal, failed_count, last_failed_wal from pg_stat_archiver')).rows[0];
        const archived = row.last_archived_wal;
        // Only segment names compare: a .backup or .history file archived last says nothing of the order.
        if (archived && /^[0-9A-F]{24}$/.test(archived) && archived >= segment) return Date.now();
        if (failure) throw new Error(`sampling pg_stat_archiver failed: ${failure}`);
        if (Date.now() > deadline) {
          throw new Error(`${cluster.name}: ${segment} not archived within ${timeoutSeconds} s (last archived ${archived ?? 'none'}, ${Number(row.failed_count) - failedAtStart} failures, last failed ${row.last_failed_wal ?? 'none'}, ${cluster.readyCount()} .ready); server log:\n${cluster.logTail()}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop(): Promise<void> {
      clearInterval(timer);
      while (busy) await new Promise((r) => setTimeout(r, 10));
      await c.end();
    },
  };
}

/** Segments from `first` to `last`, both included (16 MB segments, one timeline). */
export function segmentsBetween(first: string, last: string): number {
  return Number(segmentNumberOf(last, WAL_SEGMENT_BYTES) - segmentNumberOf(first, WAL_SEGMENT_BYTES)) + 1;
}
