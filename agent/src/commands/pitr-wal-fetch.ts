import { isAbsolute } from 'node:path';
import type { Command } from 'commander';
import { WAL_FETCH_EXIT } from '../../../format/exit-codes';
import type { Log } from '../log';
import { runPrefetcher, runWalFetch } from '../pitr/wal-fetch';
import type { GetLog, RunAction } from './options';

export interface WalFetchCommandOptions {
  readonly spool: string;
  readonly prefetch?: boolean;
  /** false with --no-prefetch-start. */
  readonly prefetchStart?: boolean;
}

/**
 * `coldseal pitr wal-fetch --spool DIR %f %p`: PostgreSQL's restore_command during a PITR restore
 * (`coldseal restore` writes the line and the spool's fetch plan). Its exit status is PostgreSQL's
 * contract, not the CLI's table: 0 served, 1 not in the archive, 126 stop recovery
 * (format/exit-codes.ts WAL_FETCH_EXIT); a bad invocation is 126 too, so that a broken
 * restore_command never reads as "the archive ends here".
 */
export function defineWalFetchCommand(pitrCommand: Command, run: RunAction, getLog: GetLog): void {
  pitrCommand
    .command('wal-fetch')
    .description('restore_command of a PITR restore: fetch, verify and decrypt one WAL file into place (exit 0 served, 1 not in the archive, 126 stop recovery)')
    .argument('[walFile]', 'the WAL file name PostgreSQL asks for (%f)')
    .argument('[path]', 'where PostgreSQL wants it (%p)')
    .requiredOption('--spool <dir>', 'the spool directory coldseal restore prepared (fetch plan and prefetch queue)')
    .option('--prefetch', 'run as the background prefetcher of the spool (started by wal-fetch itself)')
    .option('--no-prefetch-start', 'do not start the background prefetcher after serving')
    .action((walFile: string | undefined, path: string | undefined, options: WalFetchCommandOptions) => run(() => runWalFetchCommand(walFile, path, options, getLog())));
}

export async function runWalFetchCommand(walFile: string | undefined, path: string | undefined, options: WalFetchCommandOptions, log: Log): Promise<number> {
  if (!isAbsolute(options.spool)) {
    log.error(`--spool "${options.spool}" must be an absolute path (restore_command runs in the data directory): recovery stops here (exit 126)`, { exitCode: WAL_FETCH_EXIT.ABORT_RECOVERY });
    return WAL_FETCH_EXIT.ABORT_RECOVERY;
  }
  if (options.prefetch) return runPrefetcher(options.spool, log);
  if (!walFile || !path) {
    log.error('wal-fetch needs the file name and the path: restore_command must end in "%f %p"; recovery stops here (exit 126)', { exitCode: WAL_FETCH_EXIT.ABORT_RECOVERY });
    return WAL_FETCH_EXIT.ABORT_RECOVERY;
  }
  return runWalFetch({ spool: options.spool, walFile, destination: path, log, startPrefetcher: options.prefetchStart !== false });
}
