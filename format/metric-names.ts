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
} as const;

/** Powertools adds "service" (its serviceName) to every metric's dimensions. */
export const DIMENSION = { group: 'Group', host: 'Host', source: 'Source', service: 'service' } as const;
