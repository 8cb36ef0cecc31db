import { resolve } from 'node:path';

/**
 * The command line that runs this same agent again, for the commands PostgreSQL runs for us
 * (archive_command, restore_command): the same Node binary, the same Node options (tsx's
 * `--import tsx` when run from source, nothing for the bundle), the same script. Quoted for
 * /bin/sh, which PostgreSQL runs these commands with.
 */
export function selfInvocation(): string[] {
  const script = process.argv[1];
  if (!script) throw new Error('cannot tell which script is running this agent (process.argv[1] is empty)');
  return [process.execPath, ...process.execArgv, resolve(script)];
}

/** Single-quotes a word for /bin/sh (a ' inside becomes '\''). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}
