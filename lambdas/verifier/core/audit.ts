import type { GroupSettings } from '../../../format/lambda-settings';
import type { Manifest } from '../../../format/manifest';
import type { RecoveryPointReport, RecoveryTimeReport, RetentionReport } from '../../../format/verification-report';
import type { Finding } from '../../shared/findings';
import type { BinlogPitrRow } from './binlog-pitr';
import type { DrillSummary } from './drills';
import type { HistoryEntry } from './fleet';
import type { ListedBackup } from './inventory';
import type { PitrRow } from './pitr';
import { recoveryPoint, type LogArchiveCoverage } from './recovery-point';
import { drillEvidence, recoveryTime, type DrillEvidence } from './recovery-time';
import type { ReplicaState } from './replica';
import { retentionCounts } from './retention-count';

/**
 * The three answers per source an auditor asks for (recovery point, recovery time, retention),
 * put together from what the sweep already holds: the source's good backups (its history), its
 * PITR row, the group's newest drill receipt, the listing's storage classes and each backup's
 * replica state. The figures are the cores' (recovery-point.ts, recovery-time.ts,
 * retention-count.ts); this file only feeds them.
 */

export interface SourceAudit {
  readonly recoveryPoint: RecoveryPointReport;
  readonly recoveryTime: RecoveryTimeReport;
  readonly retention: RetentionReport;
  readonly findings: Finding[];
}

/** A PITR row's reachable ranges as the recovery point sees them (WAL and binary log rows share the shape). */
export function logCoverage(row: PitrRow | BinlogPitrRow | undefined): LogArchiveCoverage | undefined {
  if (!row) return undefined;
  const ranges = row.ranges.map((r) => ({ from: r.from.time, to: r.to.time }));
  if (row.engine === 'mysql') return { kind: 'binlog', ranges, newestArchivedAt: row.newest?.archivedAt ?? row.newest?.closedAt ?? null };
  return { kind: 'wal', ranges, newestArchivedAt: row.newestArchivedAt };
}

/** The group's newest drill as evidence of restore speed, sizes taken from the sweep's good manifests. */
export function groupDrillEvidence(drill: DrillSummary | undefined, manifests: ReadonlyMap<string, Manifest>): DrillEvidence | undefined {
  if (!drill) return undefined;
  return drillEvidence(drill.receipt, (key, name) => manifests.get(key)?.artifacts.find((a) => a.name === name)?.ciphertextBytes);
}

export function auditSource(input: {
  readonly group: GroupSettings;
  readonly host: string;
  readonly source: string;
  readonly bucket: string;
  readonly history: readonly HistoryEntry[];
  readonly pitr: PitrRow | BinlogPitrRow | undefined;
  readonly drill: DrillEvidence | undefined;
  /** The listed backups, by manifest key: where the newest backup's objects are stored. */
  readonly listed: ReadonlyMap<string, ListedBackup>;
  /** Replica state per manifest key; undefined without a replica. */
  readonly replica: ReadonlyMap<string, ReplicaState | undefined> | undefined;
  readonly now: Date;
}): SourceAudit {
  const { group, host, source, bucket, history, now } = input;
  const point = recoveryPoint({ group, host, source, bucket, history, log: logCoverage(input.pitr), now });
  const newest = history[history.length - 1];
  const time = recoveryTime({
    group,
    host,
    source,
    bucket,
    now,
    drill: input.drill,
    newest: newest && { stamp: newest.stamp, ciphertextBytes: newest.ciphertextBytes, storageClasses: input.listed.get(newest.manifestKey)?.artifacts.map((a) => a.storageClass) ?? [] },
  });
  const counts = retentionCounts({
    group,
    history: history.map((e) => ({ stamp: e.stamp, tier: e.tier, finishedAt: e.finishedAt, ...(input.replica ? { replica: input.replica.get(e.manifestKey) } : {}) })),
    now,
    calendar: group.calendar,
    runsPerDay: group.runsPerDay,
    replicaConfigured: input.replica !== undefined,
  });
  return {
    recoveryPoint: { ...point.figures, misses: [...point.figures.misses] },
    recoveryTime: time.figures,
    retention: { ...counts, tiers: [...counts.tiers], copies: history.map((e) => ({ at: e.finishedAt, tier: e.tier })) },
    findings: [...point.findings, ...time.findings],
  };
}
