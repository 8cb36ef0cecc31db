/**
 * Exit codes, in one place. `coldseal --help` prints this table; SSM shows the code as the
 * command's response code, and the monitor's alert quotes it.
 */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  CONFIG: 3,
  SOURCE: 4,
  STORAGE: 5,
  INTEGRITY: 6,
  KEYS: 7,
  NOT_FOUND: 8,
  ARCHIVED: 9,
  PARTIAL: 10,
  REFUSED: 11,
  INTERRUPTED: 12,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODE_HELP: ReadonlyArray<[ExitCode, string]> = [
  [EXIT.OK, 'success'],
  [EXIT.FAILURE, 'unexpected failure (a bug: please report it with the log)'],
  [EXIT.USAGE, 'bad command-line arguments'],
  [EXIT.CONFIG, 'configuration missing or invalid'],
  [EXIT.SOURCE, 'the dump failed: database unreachable, authentication, tool killed or empty output'],
  [EXIT.STORAGE, 'S3 or another AWS service failed (upload, parameter, permissions)'],
  [EXIT.INTEGRITY, 'a backup failed a check: signature, checksum, recipients or completeness'],
  [EXIT.KEYS, 'a key is missing, malformed, or the wrong kind'],
  [EXIT.NOT_FOUND, 'no backup matches'],
  [EXIT.ARCHIVED, 'the backup is archived (Glacier): a restore from archive was started or is pending'],
  [EXIT.PARTIAL, 'some sources succeeded and others failed (see the log)'],
  [EXIT.REFUSED, 'refused to act: the target exists and was not confirmed'],
  [EXIT.INTERRUPTED, 'interrupted by SIGTERM or SIGINT (e.g. an SSM timeout): nothing was committed'],
];

/**
 * PostgreSQL's restore_command contract: 1 means "not in the archive" (the normal end of
 * recovery); a status above 125 makes the startup process stop with FATAL instead of ending
 * recovery, so that S3 being down or a tampered WAL object never promotes the server early
 * (PostgreSQL docs, "Recovering Using a Continuous Archive Backup" and restore_command in
 * "Archive Recovery"). archive_command must stay below 126 for ordinary failures, or the
 * archiver process aborts ("Setting Up WAL Archiving").
 */
export const WAL_FETCH_EXIT = { OK: 0, NOT_IN_ARCHIVE: 1, ABORT_RECOVERY: 126 } as const;
