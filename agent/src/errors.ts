import { EXIT, type ExitCode } from '../../format/exit-codes';

export { EXIT, EXIT_CODE_HELP, type ExitCode } from '../../format/exit-codes';

/**
 * An error the user can act on: what went wrong and, separately, what to do. The CLI prints both
 * on one line and exits with the code; the alert quotes both.
 */
export class ColdsealError extends Error {
  override readonly name = 'ColdsealError';
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof ColdsealError ? error.exitCode : EXIT.FAILURE;
}

export function describeError(error: unknown): string {
  if (error instanceof ColdsealError) return error.hint ? `${error.message}. ${error.hint}` : error.message;
  return error instanceof Error ? error.message : String(error);
}
