import { z } from 'zod';

/**
 * The daily verification report's JSON, written by the verifier and read by the monitor: for
 * machines, so its schema is versioned and only grows. (The HTML for people is rendered in
 * lambdas/verifier/core/report-builder.ts.)
 */
export const REPORT_SCHEMA = 'coldseal-verification-report/1';

const findingSchema = z.object({
  id: z.string(),
  check: z.string(),
  severity: z.enum(['fail', 'warn']),
  group: z.string().optional(),
  host: z.string().optional(),
  source: z.string().optional(),
  tier: z.string().optional(),
  where: z.string(),
  summary: z.string(),
  since: z.string(),
  action: z.string(),
  detail: z.string().optional(),
  /** When this finding was first reported, from the alert state. */
  firstSeenAt: z.string().optional(),
  new: z.boolean(),
  /** Said once: announced when first seen, then listed without setting the status (optional: added in the same schema version). */
  once: z.boolean().optional(),
});

const walPoint = z.object({ lsn: z.string(), time: z.string(), timeline: z.number() });
const walRange = z.object({ from: walPoint.extend({ baseBackup: z.string() }), to: walPoint.extend({ segment: z.string() }) });

/**
 * One PITR source on one host (optional in the report: added in the same schema version), with the
 * recovery window of format/recovery-window.ts: `window` is the reachable range that ends furthest
 * (from a kept base backup's stop to the newest WAL reachable from it without a hole), `ranges`
 * every reachable range; `recoveryPoint` is the end of the window, its archive time and age (the
 * recovery point a restore achieves today). Each gap names the missing segments and the part of
 * the window it breaks.
 */
const pitrSourceSchema = z.object({
  /** Absent on rows written before MySQL sources had rows of their own. */
  engine: z.literal('postgres').optional(),
  group: z.string(),
  host: z.string(),
  source: z.string(),
  status: z.enum(['OK', 'WARN', 'FAIL']),
  archiveTimeoutSeconds: z.number(),
  systemIdentifier: z.string().nullable(),
  walSegmentSize: z.number().nullable(),
  baseBackups: z.number(),
  window: walRange.nullable(),
  ranges: z.array(walRange),
  gaps: z.array(
    z.object({
      from: z.string(),
      to: z.string(),
      timeline: z.number(),
      segments: z.number(),
      breaksAt: z.string(),
      resumesAt: z.string(),
      lastBefore: z.object({ segment: z.string(), archivedAt: z.string() }).nullable(),
      brokenBases: z.array(z.string()),
      nextBase: z.object({ stamp: z.string(), stoppedAt: z.string() }).nullable(),
    }),
  ),
  timelines: z.array(z.number()),
  recoveryPoint: z.object({ segment: z.string(), archivedAt: z.string(), ageSeconds: z.number() }).nullable(),
  /** The newest archived segment's time, reachable or not. */
  newestArchivedAt: z.string().nullable(),
  /** What the window assumes (timelines followed by name only, base backups left out). */
  notes: z.array(z.string()),
  /** WAL objects listed, checked (record, recipients) and hashed in this run, still waiting for a hash, and failed. */
  objects: z.object({ total: z.number(), checked: z.number(), hashed: z.number(), hashedBytes: z.number(), pending: z.number(), failed: z.number() }),
});
export type PitrSourceReport = z.infer<typeof pitrSourceSchema>;

const binlogStart = z.object({ time: z.string(), position: z.string(), gtid: z.string(), dump: z.string(), database: z.string() });
const binlogEnd = z.object({ time: z.string(), file: z.string(), gtid: z.string() });
const binlogRange = z.object({ from: binlogStart, to: binlogEnd });

/**
 * One MySQL/MariaDB PITR source on one host, with the window of format/binlog-window.ts: `window`
 * runs from a kept dump's binary log position to the newest file reachable from it without a hole;
 * `recoveryPoint` is that file's close (everything committed before it is archived) and its age.
 * Each gap names the missing files (or the GTID states that do not chain), the lost time, the
 * dumps whose reach it ends and the first dump after it.
 */
const binlogSourceSchema = z.object({
  engine: z.literal('mysql'),
  group: z.string(),
  host: z.string(),
  source: z.string(),
  status: z.enum(['OK', 'WARN', 'FAIL']),
  /** The binlog-push interval. */
  archiveTimeoutSeconds: z.number(),
  flavor: z.enum(['mariadb', 'mysql']).nullable(),
  serverIds: z.array(z.number()),
  dumps: z.number(),
  window: binlogRange.nullable(),
  ranges: z.array(binlogRange),
  gaps: z.array(
    z.object({
      after: z.string(),
      before: z.string(),
      missing: z.array(z.string()),
      fromTime: z.string(),
      toTime: z.string(),
      gtidBefore: z.string(),
      gtidAfter: z.string(),
      reason: z.enum(['missing-files', 'gtid-discontinuity']),
      description: z.string(),
      brokenDumps: z.array(z.string()),
      nextDump: z.object({ stamp: z.string(), readAt: z.string() }).nullable(),
    }),
  ),
  recoveryPoint: z.object({ file: z.string(), closedAt: z.string(), ageSeconds: z.number() }).nullable(),
  newest: z.object({ file: z.string(), closedAt: z.string(), archivedAt: z.string().nullable() }).nullable(),
  notes: z.array(z.string()),
  objects: z.object({ total: z.number(), checked: z.number(), hashed: z.number(), hashedBytes: z.number(), pending: z.number(), failed: z.number() }),
});
export type BinlogSourceReport = z.infer<typeof binlogSourceSchema>;

const historyPoint = z.object({ stamp: z.string(), tier: z.string(), bytes: z.number(), ciphertextBytes: z.number(), durationSeconds: z.number() });

export const reportSchema = z.object({
  schema: z.literal(REPORT_SCHEMA),
  generatedAt: z.string(),
  bucket: z.string(),
  status: z.enum(['OK', 'WARN', 'FAIL']),
  counts: z.object({ fail: z.number(), warn: z.number(), new: z.number(), resolved: z.number(), backups: z.number(), sources: z.number() }),
  findings: z.array(findingSchema),
  resolved: z.array(z.object({ id: z.string(), summary: z.string(), firstSeenAt: z.string() })),
  sources: z.array(
    z.object({
      group: z.string(),
      host: z.string(),
      source: z.string(),
      status: z.enum(['OK', 'WARN', 'FAIL']),
      newest: z.object({ stamp: z.string(), finishedAt: z.string(), ageHours: z.number(), bytes: z.number(), durationSeconds: z.number() }).nullable(),
      copies: z.record(z.string(), z.number()),
      history: z.array(historyPoint),
      /** Backups by offsite replica state; null when the deployment has no replica (optional: added in the same schema version). */
      replica: z.object({ replicated: z.number(), pending: z.number(), missing: z.number() }).nullable().optional(),
    }),
  ),
  /** PostgreSQL rows (no engine, or "postgres") and MySQL/MariaDB rows (engine "mysql"). */
  pitr: z.array(z.union([binlogSourceSchema, pitrSourceSchema])).optional(),
  drills: z.array(
    z.object({
      group: z.string(),
      host: z.string(),
      stamp: z.string(),
      ok: z.boolean(),
      ageDays: z.number(),
      /** Where the drill read the backup: the offsite replica (`s3://bucket (region)`), or absent for the data bucket (optional: added in the same schema version). */
      readFrom: z.string().optional(),
    }),
  ),
  verification: z.object({ hashedBytes: z.number(), hashedObjects: z.number(), pendingObjects: z.number(), verifiedArtifacts: z.number(), archivedArtifacts: z.number(), seconds: z.number() }),
});
export type Report = z.infer<typeof reportSchema>;
