import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { currentRuntime, type AgentRuntime } from '../agent-runtime';

/**
 * The command line that runs this same agent again, for the commands PostgreSQL runs for us
 * (archive_command, restore_command) and the prefetcher: the self-contained executable alone
 * (its argv[1] is only how it was invoked, perhaps a relative name); else the same Node binary,
 * the same Node options (tsx's `--import tsx` when run from source, nothing for the bundle), the
 * same script. Quoted for /bin/sh by shellCommand, which PostgreSQL runs these commands with.
 */
export function selfInvocation(runtime: AgentRuntime = currentRuntime()): string[] {
  if (runtime.executable) return [runtime.execPath];
  const script = runtime.script;
  if (!script) throw new Error('cannot tell which script is running this agent (process.argv[1] is empty)');
  return [runtime.execPath, ...absoluteExecArgv(runtime.execArgv), resolve(script)];
}

/**
 * PostgreSQL runs archive_command and restore_command in the data directory, where a bare
 * `--import tsx` would not resolve (Node resolves it from the working directory): such a module is
 * named by its file URL, as resolved from here.
 */
function absoluteExecArgv(args: readonly string[]): string[] {
  const fromHere = createRequire(join(process.cwd(), 'noop.js'));
  const absolute = (specifier: string) => {
    if (/^(?:[./]|file:|node:|data:)/.test(specifier)) return specifier;
    try {
      return pathToFileURL(fromHere.resolve(specifier)).href;
    } catch {
      return specifier;
    }
  };
  return args.map((arg, i) => {
    const inline = /^(--import|--require|-r|--loader|--experimental-loader)=(.*)$/.exec(arg);
    if (inline) return `${inline[1]}=${absolute(inline[2]!)}`;
    return i > 0 && /^(--import|--require|-r|--loader|--experimental-loader)$/.test(args[i - 1]!) ? absolute(arg) : arg;
  });
}

/** Single-quotes a word for /bin/sh (a ' inside becomes '\''). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}
