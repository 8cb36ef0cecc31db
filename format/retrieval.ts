/**
 * Reading an object archived in S3 Glacier Flexible Retrieval (GLACIER) or S3 Glacier Deep Archive
 * (DEEP_ARCHIVE) needs a retrieval (RestoreObject) first, with a tier that trades time for cost.
 * The times are the ones AWS documents in "Understanding archive retrieval options"
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects-retrieval-options.html):
 * GLACIER Expedited 1–5 minutes, Standard 3–5 hours, Bulk 5–12 hours; DEEP_ARCHIVE Standard
 * within 12 hours, Bulk within 48 hours, no Expedited. The restore command asks for a tier
 * (agent/src/restore/archive.ts) and suggests Standard; the recovery-time estimate of the report
 * takes the documented upper bound, since an RTO is a promise about the worst usual case.
 */
export type RetrievalTier = 'Expedited' | 'Standard' | 'Bulk';
export const RETRIEVAL_TIERS: readonly RetrievalTier[] = ['Expedited', 'Standard', 'Bulk'];

/** The tier the restore command suggests when a backup is archived (its "--retrieval-tier Standard" hint). */
export const SUGGESTED_RETRIEVAL_TIER: RetrievalTier = 'Standard';

export type ArchiveClass = 'GLACIER' | 'DEEP_ARCHIVE';

export interface RetrievalTime {
  /** The documented range in words, as the restore command prints it. */
  readonly text: string;
  /** The documented upper bound, in hours. */
  readonly maxHours: number;
}

const TIMES: Readonly<Record<ArchiveClass, Partial<Record<RetrievalTier, RetrievalTime>>>> = {
  GLACIER: {
    Expedited: { text: '1–5 minutes', maxHours: 5 / 60 },
    Standard: { text: '3–5 hours', maxHours: 5 },
    Bulk: { text: '5–12 hours', maxHours: 12 },
  },
  DEEP_ARCHIVE: {
    Standard: { text: 'up to 12 hours', maxHours: 12 },
    Bulk: { text: 'up to 48 hours', maxHours: 48 },
  },
};

/** Undefined when the class has no such tier (Expedited from DEEP_ARCHIVE). */
export function retrievalTime(storageClass: ArchiveClass, tier: RetrievalTier): RetrievalTime | undefined {
  return TIMES[storageClass][tier];
}

export function isArchiveClass(storageClass: string): storageClass is ArchiveClass {
  return storageClass === 'GLACIER' || storageClass === 'DEEP_ARCHIVE';
}
