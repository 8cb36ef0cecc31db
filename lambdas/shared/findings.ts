/**
 * A finding is one problem, said so that a person can act on it: what, where, since when, what to
 * do. Its id is stable across runs (check + subject), which is what alert de-duplication keys on.
 */

export const CHECKS = {
  'manifest-signature': 'Manifest signature',
  'manifest-invalid': 'Manifest unreadable or off-schema',
  'manifest-location': 'Manifest stored under another source',
  'ciphertext-missing': 'Ciphertext missing',
  'ciphertext-size': 'Ciphertext size',
  'ciphertext-sha256': 'Ciphertext SHA-256',
  'not-openpgp': 'Not an OpenPGP message',
  recipients: 'Recipients',
  'dump-exit-status': 'Dump exit status',
  'completion-marker': 'Completion marker',
  'object-lock': 'Object Lock retention',
  'not-read-verified': 'Archived, never read-verified',
  'verification-pending': 'Not yet hashed',
  rpo: 'Backup older than RPO',
  'never-backed-up': 'Never backed up',
  'wal-archive-late': 'WAL archive late',
  'wal-never-archived': 'WAL never archived',
  'empty-dump': 'Empty dump',
  'size-drop': 'Sudden size drop',
  'rpo-missed': 'Recovery point objective missed',
  'rto-exceeded': 'Recovery time over objective',
  'retention-count': 'Copies per tier',
  orphan: 'Orphan ciphertext',
  'drill-failed': 'Restore drill failed',
  'drill-stale': 'No recent restore drill',
  'drill-invalid': 'Drill receipt signature',
  'command-failed': 'Backup command failed',
  'replica-missing': 'Replica missing',
  'replica-pending': 'Replica pending',
  'replication-failed': 'Replication failed',
  'replica-unlisted': 'Replica not listed',
  'instance-not-reporting': 'Instance stopped reporting to SSM',
  'wal-signature': 'WAL record signature',
  'wal-record': 'WAL record',
  'wal-sha256': 'WAL object size / SHA-256',
  'wal-recipients': 'WAL recipients',
  'wal-gap': 'WAL archive gap',
  'wal-timeline': 'WAL timeline history',
  'wal-no-window': 'No recovery window',
  'wal-pending': 'WAL not yet hashed',
  'binlog-archive-late': 'Binary log archive late',
  'binlog-never-archived': 'Binary log never archived',
  'binlog-signature': 'Binary log record signature',
  'binlog-record': 'Binary log record',
  'binlog-sha256': 'Binary log object size / SHA-256',
  'binlog-recipients': 'Binary log recipients',
  'binlog-gap': 'Binary log archive gap',
  'binlog-pending': 'Binary log not yet hashed',
} as const;

export type Check = keyof typeof CHECKS;
export type Severity = 'fail' | 'warn';

export interface Finding {
  readonly id: string;
  readonly check: Check;
  readonly severity: Severity;
  readonly group?: string;
  readonly host?: string;
  readonly source?: string;
  readonly tier?: string;
  /** The S3 key (or other resource) the finding is about. */
  readonly where: string;
  /** One line: what is wrong. */
  readonly summary: string;
  /** Since when the problem exists (ISO time), as far as the evidence tells. */
  readonly since: string;
  /** What to do about it. */
  readonly action: string;
  readonly detail?: string;
  /**
   * Said once: announced when first seen, never repeated, and once announced it no longer sets
   * the report's status (the report still lists it); closed quietly. For what recurs and needs no
   * action, such as a dump exit status the agent tolerated.
   */
  readonly once?: boolean;
}

export type Status = 'OK' | 'WARN' | 'FAIL';

export function statusOf(findings: readonly Pick<Finding, 'severity'>[]): Status {
  if (findings.some((f) => f.severity === 'fail')) return 'FAIL';
  return findings.length > 0 ? 'WARN' : 'OK';
}

export function subjectOf(f: Pick<Finding, 'group' | 'host' | 'source'>): string {
  return [f.group, f.host, f.source].filter(Boolean).join('/');
}

export function makeFinding(input: Omit<Finding, 'id'> & { subject: string }): Finding {
  const { subject, ...rest } = input;
  return { id: `${input.check}:${subject}`, ...rest };
}

export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) => (a.severity === b.severity ? a.id.localeCompare(b.id) : a.severity === 'fail' ? -1 : 1));
}
