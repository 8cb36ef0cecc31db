import type { GroupSettings } from '../../format/lambda-settings';
import { makeFinding, type Finding } from './findings';

/**
 * Is a source fresh: a valid backup exists, and the newest is within the group's RPO. The monitor
 * asks every few hours from the listing alone; the verifier asks from the backups that checked out.
 */

/** What freshness needs of a source's newest valid backup. */
export interface NewestBackup {
  readonly stamp: string;
  readonly finishedAt: string;
}

export interface FreshnessInput {
  readonly group: GroupSettings;
  readonly host: string;
  readonly source: string;
  /** The source's newest valid backup; undefined when it has none. */
  readonly newest: NewestBackup | undefined;
  readonly now: Date;
  readonly bucket: string;
  /** For hosts known only from settings: a missing first backup is a finding. */
  readonly expected: boolean;
}

/** An age in words: hours, or days beyond two. */
export function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 ? `${(h / 24).toFixed(1)} days` : `${h.toFixed(1)} h`;
}

/** What a source's findings say about where they are: the subject, its backups and the command that runs one now. */
export function sourceSubject(input: Pick<FreshnessInput, 'group' | 'host' | 'source' | 'bucket'>): { at: { group: string; host: string; source: string }; subject: string; where: string; trigger: string } {
  const { group, host, source } = input;
  return {
    at: { group: group.name, host, source },
    subject: `${group.name}/${host}/${source}`,
    where: `s3://${input.bucket}/backups/*/${group.name}/${host}/${source}/`,
    trigger: `coldseal trigger --group ${group.name} --host ${host}`,
  };
}

/** never-backed-up (when the source is expected) and rpo findings. */
export function freshnessFindings(input: FreshnessInput): Finding[] {
  const { group, host, source, newest, now } = input;
  const findings: Finding[] = [];
  const { at, subject, where, trigger } = sourceSubject(input);
  if (!newest) {
    if (input.expected) {
      findings.push(makeFinding({ ...at, where, subject, check: 'never-backed-up', severity: 'fail', since: now.toISOString(), summary: `no valid backup of ${source} from ${host} exists`, action: `Check that ${host} runs the agent (SSM Run Command history of the coldseal document) and that its config lists source "${source}"; then run ${trigger}.` }));
    }
    return findings;
  }
  const age = now.getTime() - Date.parse(newest.finishedAt);
  if (age > group.rpoHours * 3_600_000) {
    findings.push(makeFinding({ ...at, where, subject, check: 'rpo', severity: 'fail', since: new Date(Date.parse(newest.finishedAt) + group.rpoHours * 3_600_000).toISOString(), summary: `newest valid backup is ${hours(age)} old (${newest.stamp}); the RPO is ${group.rpoHours} h`, action: `Check the schedule and SSM Run Command history for ${host}; is the instance running and online in SSM? Then run ${trigger}.` }));
  }
  return findings;
}
