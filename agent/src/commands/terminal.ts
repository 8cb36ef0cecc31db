import { createInterface } from 'node:readline/promises';
import { ColdsealError, EXIT } from '../errors';

/** What restore asks and prints on the operator's terminal. */

/** The question on the terminal; without one, refuse rather than hang (and never guess "yes"). */
export function terminalConfirm(input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): (question: string) => Promise<boolean> {
  return async (question) => {
    if (!input.isTTY) {
      throw new ColdsealError(EXIT.REFUSED, `${question.replace(/\s*Continue\? \[y\/N\]\s*$/, '')} There is no terminal to confirm on`, 'Nothing was changed. Pass --yes to proceed (a safety dump is still taken), or run the command in a terminal');
    }
    const rl = createInterface({ input, output });
    try {
      const answer = await rl.question(question);
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line as typed, to print "run this later" (it never holds a secret: we refuse those on argv). */
export function rerunCommand(argv: readonly string[] = process.argv.slice(2)): string {
  return ['coldseal', ...argv.map(shellQuote)].join(' ');
}
