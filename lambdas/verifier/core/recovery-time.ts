import type { GroupSettings } from '../../../format/lambda-settings';
import type { DrillReceipt, DrillTimings } from '../../../format/manifest';
import { isArchiveClass, retrievalTime, SUGGESTED_RETRIEVAL_TIER, type ArchiveClass, type RetrievalTier } from '../../../format/retrieval';
import { formatBytes } from '../../../runtime/byte-size';
import { makeFinding, type Finding } from '../../shared/findings';
import { sourceSubject } from '../../shared/freshness';

/**
 * How long restoring a source's newest backup would take, measured rather than promised: the last
 * restore drill's throughput (ciphertext bytes over its wall time) scaled to the newest backup's
 * size, plus, when that backup sits in an archive class, the documented retrieval time of the
 * tier the restore command suggests (format/retrieval.ts). Compared with the group's optional
 * rtoHours: over it is a WARN naming what dominates (the size of the backup, the Glacier
 * retrieval, or the database's load speed) and what would help.
 *
 * Scaling is linear in bytes: a restore streams, so its time grows with what it reads, and the
 * load grows with the data. With stage timings (drill receipt `timings`) the scaled time is split
 * into download + decrypt ("size"), load and checks by the share each stage was busy; without
 * them the receipt's durationMs is one number and the estimate says it cannot tell apart.
 * Without a usable drill there is no estimate, and the figures say so: a guess is not a measure.
 */

const HOUR_MS = 3_600_000;

/** One artifact a drill restored, with the bytes it read (timings.ciphertextBytes, or the drilled manifest's artifact). */
export interface DrilledArtifact {
  readonly source: string;
  readonly artifact: string;
  readonly ok: boolean;
  readonly durationMs: number;
  /** The drilled artifact's ciphertext bytes from its manifest; timings.ciphertextBytes wins when present. */
  readonly ciphertextBytes?: number;
  readonly timings?: DrillTimings;
  /** A point-in-time drill replays logs after the load: its time is not a restore of the dump alone. */
  readonly pointInTime?: boolean;
}

/** The group's newest drill receipt, as the report needs it. */
export interface DrillEvidence {
  readonly stamp: string;
  readonly host: string;
  readonly finishedAt: string;
  readonly results: readonly DrilledArtifact[];
  /** Set when the drill read from the offsite replica: its throughput is the replica region's. */
  readonly readFrom?: string;
}

/** The newest backup of the source: its size and where its objects are stored. */
export interface NewestBackupFacts {
  readonly stamp: string;
  readonly ciphertextBytes: number;
  /** StorageClass of each of its objects (from the listing). */
  readonly storageClasses: readonly string[];
}

/**
 * A signed, opened drill receipt as evidence: each result with the bytes it read (its timings, or
 * the drilled manifest's artifact as `artifactBytes` finds it: the sweep has every good manifest).
 */
export function drillEvidence(receipt: DrillReceipt, artifactBytes: (manifestKey: string, artifact: string) => number | undefined): DrillEvidence {
  return {
    stamp: receipt.stamp,
    host: receipt.host,
    finishedAt: receipt.finishedAt,
    results: receipt.results.map((r) => {
      const bytes = artifactBytes(r.manifestKey, r.artifact);
      return { source: r.source, artifact: r.artifact, ok: r.ok, durationMs: r.durationMs, ...(bytes === undefined ? {} : { ciphertextBytes: bytes }), ...(r.timings ? { timings: r.timings } : {}), ...(r.pitr || r.binlogPitr ? { pointInTime: true } : {}) };
    }),
    ...(receipt.readFrom ? { readFrom: `s3://${receipt.readFrom.bucket} (${receipt.readFrom.region})` } : {}),
  };
}

export interface RecoveryTimeInput {
  readonly group: GroupSettings;
  readonly host: string;
  readonly source: string;
  readonly bucket: string;
  readonly newest: NewestBackupFacts | undefined;
  readonly drill: DrillEvidence | undefined;
  readonly now: Date;
  /** The retrieval tier assumed for an archived backup; the restore command's suggestion by default. */
  readonly retrievalTier?: RetrievalTier;
}

export type Dominant = 'size' | 'retrieval' | 'load' | 'checks' | 'restore';

/** The retrieval an archived newest backup needs first. */
export interface RetrievalFigure {
  readonly storageClass: ArchiveClass;
  readonly tier: RetrievalTier;
  /** The documented wait, in words. */
  readonly wait: string;
}

export interface RecoveryTimeFigures {
  readonly rtoHours: number | null;
  /** What the drill measured; null without a usable drill. */
  readonly measured: {
    readonly drill: string;
    readonly host: string;
    readonly ageDays: number;
    /** Whether the throughput is this source's own, or the group's other sources' (this one was not drilled). */
    readonly from: 'this source' | 'other sources';
    readonly bytes: number;
    readonly seconds: number;
    readonly bytesPerSecond: number;
    /** Summed stage times of the drilled artifacts (seconds), when every one recorded them. */
    readonly stages: { readonly download: number; readonly decrypt: number | null; readonly load: number; readonly checks: number } | null;
    readonly readFrom?: string;
  } | null;
  readonly estimate: {
    readonly hours: number;
    /** Where the hours go: retrieval, and the scaled restore split by stage when timings allow. */
    readonly parts: Partial<Record<Dominant, number>>;
    readonly dominant: Dominant;
    readonly retrieval: RetrievalFigure | null;
  } | null;
  /** Why there is no estimate, or what it rests on, in one sentence. */
  readonly note: string;
}

export interface RecoveryTimeResult {
  readonly figures: RecoveryTimeFigures;
  readonly findings: Finding[];
}

const round2 = (n: number) => Math.round(n * 100) / 100;
const bytesOf = (r: DrilledArtifact) => r.timings?.ciphertextBytes ?? r.ciphertextBytes ?? 0;

/** What dominates, in words, and what would help. */
function advice(dominant: Dominant, retrieval: RetrievalFigure | null, host: string): { what: string; help: string } {
  switch (dominant) {
    case 'retrieval': {
      const r = retrieval!;
      const faster = r.storageClass === 'GLACIER' ? 'Expedited retrieval (1–5 minutes, at a higher price per GB) or ' : '';
      return { what: `the ${r.tier} retrieval from ${r.storageClass} (${r.wait})`, help: `${faster}keeping each tier's newest copy in S3 Standard or Glacier Instant Retrieval longer (a later lifecycle transition) removes the wait.` };
    }
    case 'size':
      return { what: 'reading and decrypting the backup (its size)', help: `A smaller backup (a higher zstd level, excluding bulky tables that can be rebuilt, or splitting the source into sources restored in parallel), or a restore host with more bandwidth and cores than the drill host ${host}.` };
    case 'load':
      return { what: "the database's load speed", help: 'A restore host with faster disks and more cores (pg_restore runs jobs in parallel), or point-in-time recovery onto a standby for a tighter objective.' };
    case 'checks':
      return { what: 'the checks after the load', help: "The drill's checks are not part of an emergency restore; if they grow, limit them to the tables that matter." };
    case 'restore':
      return { what: 'the restore as a whole (this drill receipt has no stage timings to tell reading, decrypting and loading apart)', help: 'Run a drill with an agent that records stage timings to see which stage to speed up; meanwhile a smaller backup or a faster restore host helps either way.' };
  }
}

export function recoveryTime(input: RecoveryTimeInput): RecoveryTimeResult {
  const { group, newest, drill, now } = input;
  const rtoHours = group.rtoHours ?? null;
  const findings: Finding[] = [];
  const result = (figures: RecoveryTimeFigures): RecoveryTimeResult => ({ figures, findings });
  if (!newest) return result({ rtoHours, measured: null, estimate: null, note: 'no good backup to restore' });
  if (!drill) return result({ rtoHours, measured: null, estimate: null, note: `no restore drill of group ${group.name} was found: restore time is not measured, so it is not estimated` });

  const usable = drill.results.filter((r) => r.ok && !r.pointInTime && r.durationMs > 0 && bytesOf(r) > 0);
  const own = usable.filter((r) => r.source === input.source);
  const basis = own.length ? own : usable;
  if (basis.length === 0) {
    const why = drill.results.some((r) => !r.ok) ? 'failed' : 'restored nothing whose size it knows';
    return result({ rtoHours, measured: null, estimate: null, note: `the newest restore drill (${drill.stamp}) ${why}: restore time is not measured, so it is not estimated` });
  }
  const bytes = basis.reduce((n, r) => n + bytesOf(r), 0);
  const ms = basis.reduce((n, r) => n + r.durationMs, 0);
  const timed = basis.every((r) => r.timings);
  const stages = timed
    ? {
        download: basis.reduce((n, r) => n + r.timings!.downloadMs, 0) / 1000,
        // null: not timed apart from the read, so it is inside download (format/manifest.ts drillTimingsSchema).
        decrypt: basis.some((r) => r.timings!.decryptMs === null) ? null : basis.reduce((n, r) => n + (r.timings!.decryptMs ?? 0), 0) / 1000,
        load: basis.reduce((n, r) => n + r.timings!.loadMs, 0) / 1000,
        checks: basis.reduce((n, r) => n + r.timings!.checksMs, 0) / 1000,
      }
    : null;
  const measured = {
    drill: drill.stamp,
    host: drill.host,
    ageDays: round2((now.getTime() - Date.parse(drill.finishedAt)) / (24 * HOUR_MS)),
    from: own.length ? ('this source' as const) : ('other sources' as const),
    bytes,
    seconds: round2(ms / 1000),
    bytesPerSecond: Math.round(bytes / (ms / 1000)),
    stages: stages && { download: round2(stages.download), decrypt: stages.decrypt === null ? null : round2(stages.decrypt), load: round2(stages.load), checks: round2(stages.checks) },
    ...(drill.readFrom ? { readFrom: drill.readFrom } : {}),
  };

  // Linear in bytes: the drill's wall time per byte, times the newest backup's bytes.
  const scaledHours = (ms * (newest.ciphertextBytes / bytes)) / HOUR_MS;
  const parts: Partial<Record<Dominant, number>> = {};
  if (stages) {
    const wallS = ms / 1000;
    // Checks run after the load, alone; the streamed stages overlap and share the rest by how busy each was.
    const checksShare = Math.min(1, stages.checks / wallS);
    const streamed = stages.download + (stages.decrypt ?? 0) + stages.load;
    const rest = scaledHours * (1 - checksShare);
    parts.checks = round2(scaledHours * checksShare);
    parts.size = round2(streamed > 0 ? (rest * (stages.download + (stages.decrypt ?? 0))) / streamed : rest);
    parts.load = round2(streamed > 0 ? (rest * stages.load) / streamed : 0);
  } else parts.restore = round2(scaledHours);

  const archived = [...new Set(newest.storageClasses.filter(isArchiveClass))];
  const storageClass: ArchiveClass | undefined = archived.includes('DEEP_ARCHIVE') ? 'DEEP_ARCHIVE' : archived[0];
  let retrieval: RetrievalFigure | null = null;
  if (storageClass) {
    const wanted = input.retrievalTier ?? SUGGESTED_RETRIEVAL_TIER;
    // Expedited does not exist for DEEP_ARCHIVE: a restore would have to take Standard.
    const tier = retrievalTime(storageClass, wanted) ? wanted : SUGGESTED_RETRIEVAL_TIER;
    const time = retrievalTime(storageClass, tier)!;
    retrieval = { storageClass, tier, wait: time.text };
    parts.retrieval = round2(time.maxHours);
  }
  const hours = round2(scaledHours + (parts.retrieval ?? 0));
  const dominant = (Object.entries(parts) as [Dominant, number][]).sort((a, b) => b[1] - a[1])[0][0];
  const scale = newest.ciphertextBytes / bytes;
  const note = `${formatBytes(newest.ciphertextBytes)} at the ${formatBytes(measured.bytesPerSecond)}/s drill ${drill.stamp} measured on ${measured.from === 'this source' ? 'this source' : "the group's other sources (this one was not drilled)"}${scale > 2 || scale < 0.5 ? ` (scaled ${scale.toFixed(1)}×)` : ''}${retrieval ? `, plus up to ${retrieval.wait} of ${retrieval.tier} retrieval from ${retrieval.storageClass}` : ''}${drill.readFrom ? `; read from the offsite replica ${drill.readFrom}` : ''}`;

  if (rtoHours !== null && hours > rtoHours) {
    const { at, subject, where } = sourceSubject({ group, host: input.host, source: input.source, bucket: input.bucket });
    const { what, help } = advice(dominant, retrieval, drill.host);
    const breakdown = (Object.entries(parts) as [Dominant, number][]).map(([k, h]) => `${k} ${h.toFixed(2)} h`).join(', ');
    findings.push(
      makeFinding({
        ...at,
        where,
        subject,
        check: 'rto-exceeded',
        severity: 'warn',
        since: now.toISOString(),
        summary: `restoring the newest backup (${newest.stamp}, ${formatBytes(newest.ciphertextBytes)}) is estimated at ${hours.toFixed(1)} h, over the ${rtoHours} h RTO; ${what} dominates`,
        detail: `${note}.\nBreakdown: ${breakdown}.`,
        action: help,
      }),
    );
  }
  return result({ rtoHours, measured, estimate: { hours, parts, dominant, retrieval }, note });
}
