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

/**
 * What an auditor asks of each source (optional in the report: added in the same schema version).
 * The figures are computed in lambdas/verifier/core/recovery-point.ts, recovery-time.ts and
 * retention-count.ts; their meaning is documented there.
 */
const gapEnd = z.object({ at: z.string(), what: z.string() });
const recoveryGap = z.object({ from: gapEnd, to: gapEnd, hours: z.number() });
const recoveryPointSchema = z.object({
  rpoHours: z.number(),
  windowDays: z.number(),
  newestBackup: z.object({ stamp: z.string(), finishedAt: z.string(), ageHours: z.number() }).nullable(),
  log: z.object({ kind: z.enum(['wal', 'binlog']), reachableTo: z.string().nullable(), ageHours: z.number().nullable(), newestArchivedAt: z.string().nullable() }).nullable(),
  current: z.object({ at: z.string(), ageHours: z.number(), by: z.enum(['backup', 'log']) }).nullable(),
  worstGap: recoveryGap.nullable(),
  misses: z.array(recoveryGap),
});
const dominant = z.enum(['size', 'retrieval', 'load', 'checks', 'restore']);
const recoveryTimeSchema = z.object({
  rtoHours: z.number().nullable(),
  measured: z
    .object({
      drill: z.string(),
      host: z.string(),
      ageDays: z.number(),
      from: z.enum(['this source', 'other sources']),
      bytes: z.number(),
      seconds: z.number(),
      bytesPerSecond: z.number(),
      /** decrypt is null when the drill did not time it apart from the read (it is then inside download). */
      stages: z.object({ download: z.number(), decrypt: z.number().nullable(), load: z.number(), checks: z.number() }).nullable(),
      readFrom: z.string().optional(),
    })
    .nullable(),
  estimate: z
    .object({
      hours: z.number(),
      parts: z.partialRecord(dominant, z.number()),
      dominant,
      retrieval: z.object({ storageClass: z.enum(['GLACIER', 'DEEP_ARCHIVE']), tier: z.enum(['Expedited', 'Standard', 'Bulk']), wait: z.string() }).nullable(),
    })
    .nullable(),
  note: z.string(),
});
const stampAt = z.object({ stamp: z.string(), finishedAt: z.string() });
const retentionSchema = z.object({
  tiers: z.array(
    z.object({
      tier: z.string(),
      retentionDays: z.number().nullable(),
      promised: z.number().nullable(),
      exist: z.number(),
      inWindow: z.number(),
      short: z.number(),
      oldest: stampAt.nullable(),
      newest: stampAt.nullable(),
      replica: z.object({ replicated: z.number(), pending: z.number(), missing: z.number(), unknown: z.number(), holdsSame: z.boolean() }).nullable(),
    }),
  ),
  oldestRestorable: stampAt.extend({ tier: z.string() }).nullable(),
  /** Every good copy (its finish time and tier), for the recovery window picture. */
  copies: z.array(z.object({ at: z.string(), tier: z.string() })),
});
export type RecoveryPointReport = z.infer<typeof recoveryPointSchema>;
export type RecoveryTimeReport = z.infer<typeof recoveryTimeSchema>;
export type RetentionReport = z.infer<typeof retentionSchema>;

const storageRowSchema = z.object({ group: z.string(), tier: z.string(), storageClass: z.string(), objects: z.number(), bytes: z.number() });
/**
 * What the vault holds and costs (optional: added in the same schema version), from the bucket
 * listing, priced as lambdas/verifier/core/storage-cost.ts says; `history` is the stored daily
 * snapshots (state/storage/), bytes per group and storage class, oldest first, today last.
 */
const storageSchema = z.object({
  region: z.string(),
  /** Where the prices come from and from when ("AWS Price List API, fetched …", or the committed table and its date). */
  priceNote: z.string(),
  priceOrigin: z.enum(['price-list', 'price-list-cache', 'table', 'none']),
  rows: z.array(storageRowSchema),
  cost: z
    .object({
      currency: z.literal('USD'),
      priceSource: z.string(),
      priceAsOf: z.string(),
      storage: z.number(),
      requests: z.number(),
      transitions: z.number(),
      monitoring: z.number(),
      replication: z.number(),
      total: z.number(),
      byGroup: z.record(z.string(), z.number()),
      byClass: z.record(z.string(), z.number()),
      unpriced: z.array(z.object({ storageClass: z.string(), bytes: z.number() })),
    })
    .nullable(),
  requests: z.object({ tier1: z.number(), tier2: z.number(), assumptions: z.array(z.string()) }),
  trend: z.object({
    since: z.string().nullable(),
    groups: z.array(z.object({ group: z.string(), bytes: z.number(), bytesThen: z.number().nullable(), change: z.number().nullable() })),
    monthlyCost: z.object({ now: z.number().nullable(), then: z.number().nullable(), change: z.number().nullable() }),
  }),
  history: z.array(z.object({ date: z.string(), bytes: z.record(z.string(), z.record(z.string(), z.number())) })),
  /** The offsite replica is in another bucket the verifier does not list: its storage is not in these figures. */
  replicaNote: z.string().optional(),
  /**
   * The offsite replica's bucket, listed once a sweep in its own region (optional: added in the
   * same schema version): its rows, priced at that region's prices; `problem` (and no rows) when
   * the listing was refused. Its cost is not in `cost.total` above, which is the data bucket's.
   */
  replica: z
    .object({
      bucket: z.string(),
      region: z.string(),
      listed: z.boolean(),
      problem: z.string().optional(),
      priceNote: z.string(),
      priceOrigin: z.enum(['price-list', 'price-list-cache', 'table', 'none']),
      rows: z.array(storageRowSchema),
      cost: z.object({ priceSource: z.string(), priceAsOf: z.string(), storage: z.number(), requests: z.number(), transitions: z.number(), monitoring: z.number(), total: z.number(), byGroup: z.record(z.string(), z.number()), byClass: z.record(z.string(), z.number()), unpriced: z.array(z.object({ storageClass: z.string(), bytes: z.number() })) }).nullable(),
      trend: z.object({
        since: z.string().nullable(),
        groups: z.array(z.object({ group: z.string(), bytes: z.number(), bytesThen: z.number().nullable(), change: z.number().nullable() })),
        monthlyCost: z.object({ now: z.number().nullable(), then: z.number().nullable(), change: z.number().nullable() }),
      }),
      /** Bytes per group and storage class per stored snapshot (the same days as `history`; a day without a replica listing is left out). */
      history: z.array(z.object({ date: z.string(), bytes: z.record(z.string(), z.record(z.string(), z.number())) })),
    })
    .optional(),
});
export type StorageReport = z.infer<typeof storageSchema>;

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
      /** How old the newest restorable point is, and the worst gap in 30 days, against rpoHours (optional: added in the same schema version). */
      recoveryPoint: recoveryPointSchema.optional(),
      /** The restore time estimated from the last drill, against rtoHours (optional: added in the same schema version). */
      recoveryTime: recoveryTimeSchema.optional(),
      /** Copies per tier against what the retention settings promise (optional: added in the same schema version). */
      retention: retentionSchema.optional(),
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
  storage: storageSchema.optional(),
  verification: z.object({ hashedBytes: z.number(), hashedObjects: z.number(), pendingObjects: z.number(), verifiedArtifacts: z.number(), archivedArtifacts: z.number(), seconds: z.number() }),
});
export type Report = z.infer<typeof reportSchema>;
