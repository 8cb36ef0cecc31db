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
