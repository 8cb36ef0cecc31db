import { ColdsealError, EXIT } from '../errors';
import { isComplete, type BackupEntry } from './listing';

/**
 * The latest complete backup of one source. Stamps are compared only within one (group, host,
 * source): a source name used on two hosts is two histories, and asking for "latest" without the
 * host is refused rather than answered with whichever host backed up last.
 */
export function latestOf(entries: readonly BackupEntry[], where: { group: string; host?: string; source: string }): BackupEntry {
  const candidates = entries.filter((e) => isComplete(e) && e.group === where.group && e.source === where.source && (!where.host || e.host === where.host));
  const hosts = [...new Set(candidates.map((e) => e.host))].sort();
  if (hosts.length > 1) {
    throw new ColdsealError(EXIT.USAGE, `source "${where.source}" of group ${where.group} is backed up by several hosts (${hosts.join(', ')})`, 'Say which one with --host');
  }
  const latest = candidates.reduce<BackupEntry | undefined>((best, e) => (!best || e.stamp > best.stamp ? e : best), undefined);
  if (!latest) {
    const incomplete = entries.filter((e) => !isComplete(e) && e.group === where.group && e.source === where.source && (!where.host || e.host === where.host)).length;
    throw new ColdsealError(
      EXIT.NOT_FOUND,
      `no complete backup of source "${where.source}"${where.host ? ` on host ${where.host}` : ''} in group ${where.group}${incomplete ? ` (${incomplete} incomplete, without a manifest)` : ''}`,
      'List what exists with: coldseal list',
    );
  }
  return latest;
}
