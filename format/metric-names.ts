/**
 * CloudWatch names shared by the Lambdas (which emit them as EMF) and the stack (alarms,
 * dashboard). No dependencies, so the CDK app can import it without the Lambda runtime.
 */
export const METRICS_NAMESPACE = 'Coldseal';

export const SERVICE = { verifier: 'coldseal-verifier', monitor: 'coldseal-monitor' } as const;

export const METRIC = {
  backupAgeHours: 'BackupAgeHours',
  backupSizeBytes: 'BackupSizeBytes',
  backupDurationSeconds: 'BackupDurationSeconds',
  verificationStatus: 'VerificationStatus',
  groupMaxBackupAgeHours: 'GroupMaxBackupAgeHours',
  groupSourcesOverRpo: 'GroupSourcesOverRpo',
  groupFailedVerifications: 'GroupFailedVerifications',
  heartbeat: 'MonitorHeartbeat',
  findings: 'Findings',
  hashedBytes: 'HashedBytes',
  /** Verifier, per group (dimension Group): bytes the group stores in the data bucket, every tier and class, its PITR archive and drill receipts included. */
  groupStoredBytes: 'GroupStoredBytes',
  /** Monitor, per PITR source and host: age of the newest archived WAL file (the recovery point achieved). */
  walArchiveAgeSeconds: 'WalArchiveAgeSeconds',
  /** Agent (archive-push), per PITR source and host: WAL files PostgreSQL has marked .ready and not yet handed over. */
  walReadyBacklog: 'WalReadyBacklog',
  /** Agent (archive-push), per PITR source and host: pg_stat_archiver.failed_count since the server's stats reset. */
  walArchiverFailedCount: 'WalArchiverFailedCount',
  /** Agent (archive-push): WAL files archived by one call. */
  walFilesArchived: 'WalFilesArchived',
  /** Agent (binlog-push), per PITR source and host: closed binary logs on the server not yet archived after the run (0 when it caught up). */
  binlogBacklog: 'BinlogBacklog',
  /** Agent (binlog-push): binary log files archived by one run. */
  binlogFilesArchived: 'BinlogFilesArchived',
} as const;

/** The namespace the agent publishes its own PITR metrics in (hosts may PutMetricData here and nowhere else). */
export const AGENT_METRICS_NAMESPACE = 'Coldseal/Agent';

/** Powertools adds "service" (its serviceName) to every metric's dimensions. */
export const DIMENSION = { group: 'Group', host: 'Host', source: 'Source', service: 'service' } as const;
