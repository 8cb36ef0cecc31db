import { Command, CommanderError } from 'commander';
import { defineBackupCommand } from './commands/backup';
import { defineDrillCommand } from './commands/drill';
import { defineListCommand } from './commands/list';
import { defineRestoreCommand } from './commands/restore';
import { defineStatusCommand } from './commands/status';
import { defineVerifyCommand } from './commands/verify';
import { defineKeysCommand } from './commands/keys';
import { defineTriggerCommand } from './commands/trigger';
import { definePitrCommand } from './commands/pitr';
import { defineWalFetchCommand } from './commands/pitr-wal-fetch';
import { describeError, EXIT, EXIT_CODE_HELP, exitCodeOf } from './errors';
import { createLog, type Log } from './log';
import { nodeVersionNotice } from './node-notice';
import { AGENT_VERSION } from './version';
import { runtimeDescription } from './agent-runtime';

/**
 * A reader that went away (`coldseal --help | head -3`, a closed terminal) is no failure of the
 * agent: what it would still print is dropped, and the command runs on to its own exit code (a
 * backup is not abandoned because its output has no reader). Without this, the write's EPIPE is
 * an unhandled 'error' event that kills the process with a stack trace.
 */
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
    throw error;
  });
}

/** The bin: parses, dispatches, and maps every outcome to an exit code. No logic lives here. */
const program = new Command('coldseal')
  .description('coldseal agent: encrypted, signed, verified database and file backups to S3')
  .version(`${AGENT_VERSION} (${runtimeDescription()})`)
  .option('--json', 'log JSON lines even on a terminal (the default when stdout is not a TTY, e.g. under SSM)')
  .option('--verbose', 'also log debug lines')
  .showHelpAfterError()
  .exitOverride()
  .addHelpText('after', `\nExit codes:\n${EXIT_CODE_HELP.map(([code, text]) => `  ${String(code).padStart(2)}  ${text}`).join('\n')}\n`);

let log: Log | undefined;
const getLog = (): Log => (log ??= createLog({ json: program.opts().json ? true : undefined, verbose: Boolean(program.opts().verbose) }));

async function run(action: () => Promise<number>): Promise<void> {
  // A command whose work stalls with nothing left to wait on would otherwise end with status 0.
  const unfinished = () => {
    getLog().error('the command stopped before it finished (a bug: please report it with the log)', { exitCode: EXIT.FAILURE });
    process.exitCode = EXIT.FAILURE;
  };
  process.once('beforeExit', unfinished);
  const notice = nodeVersionNotice();
  if (notice) getLog().warn(notice);
  try {
    process.exitCode = await action();
  } catch (error) {
    getLog().endProgress();
    getLog().error(describeError(error), { exitCode: exitCodeOf(error) });
    if (exitCodeOf(error) === EXIT.FAILURE && error instanceof Error && error.stack) getLog().debug(error.stack);
    process.exitCode = exitCodeOf(error);
  } finally {
    process.removeListener('beforeExit', unfinished);
  }
}

defineBackupCommand(program, run, getLog);
defineKeysCommand(program, run);
defineListCommand(program, run);
defineStatusCommand(program, run);
defineRestoreCommand(program, run, getLog);
defineVerifyCommand(program, run, getLog);
defineDrillCommand(program, run, getLog);
defineTriggerCommand(program, run, getLog);
defineWalFetchCommand(definePitrCommand(program, run, getLog), run, getLog);

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    return;
  }
  console.error(describeError(error));
  process.exitCode = exitCodeOf(error);
});
