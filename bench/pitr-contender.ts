import type { BenchCluster } from './pitr-cluster';

/**
 * What the PITR bench asks of each archiver it compares (coldseal, pgBackRest): the
 * archive_command to hand PostgreSQL, a base backup, and a restore of that base backup replayed
 * to a time. Each runs its commands as the postgres user, as on a real host.
 */
export interface PitrContender {
  readonly name: string;
  /** Why this contender cannot run in this build, or undefined when it can. */
  readonly unavailable?: string;
  /** Why the restore part cannot run in this build (the archive part may still run). */
  readonly restoreUnavailable?: string;
  /** The sampler's label for one of this contender's processes (argv), or undefined when not one. */
  label(argv: readonly string[]): string | undefined;
  /** Sets up the repository or bucket for `cluster` (started, archiving disabled) and returns the archive_command. */
  prepare(cluster: BenchCluster): Promise<string>;
  /** A base backup of `cluster`, complete when this resolves (its WAL archived). */
  baseBackup(cluster: BenchCluster): Promise<void>;
  /**
   * Restores the base backup into `workDir`/data (an empty directory owned by postgres) and
   * replays the archive to `targetTime`; resolves with the restored server, started (the bench
   * waits for it to reach the target), and the seconds the restore command itself took.
   */
  restore(targetTime: string, workDir: string): Promise<{ server: BenchCluster; commandSeconds: number }>;
}

/**
 * The label of a command line: `name` and its subcommand words (the words after `script`, or after
 * the program itself, up to the first option or path), e.g. "coldseal pitr archive-push".
 */
export function commandLabel(name: string, argv: readonly string[], from: number): string {
  const words: string[] = [];
  for (const word of argv.slice(from)) {
    if (word.startsWith('-')) continue;
    if (word.includes('/') || word.includes('%') || /^[0-9A-F]{8}/.test(word)) break;
    words.push(word);
    if (words.length === 2) break;
  }
  return [name, ...words].join(' ');
}
