import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { installAdvice, notFoundPhrase, osReleasePath, parseOsRelease, postgresMajor, toolRequirement, type OsRelease, type ToolNeed } from '../../format/host-tools';
import { ColdsealError, EXIT, type ExitCode } from './errors';

/**
 * What the agent tells a host that lacks a database client tool, or has one too old: the tool,
 * what was found, what is needed, and the install line for this host's distribution
 * (format/host-tools.ts). Short, and the install line ends the message, where the monitor's
 * tail of the command's output keeps it.
 */
let cached: { os: OsRelease | undefined } | undefined;

/** This host's /etc/os-release, read once; undefined when there is none. */
export function hostOsRelease(): OsRelease | undefined {
  if (!cached) {
    let os: OsRelease | undefined;
    try {
      os = parseOsRelease(readFileSync(osReleasePath(process.env), 'utf8'));
    } catch {
      os = undefined;
    }
    cached = { os };
  }
  return cached.os;
}

/** A tool that could not be started because it does not exist (spawn ENOENT, or runuser's 127). */
export class MissingToolError extends ColdsealError {
  constructor(
    readonly what: string,
    readonly need: ToolNeed,
    exitCode: ExitCode = EXIT.SOURCE,
    /** The other way out, after the install line. */
    readonly orElse = "or set the source's binDir",
  ) {
    super(exitCode, `${what}: ${notFoundPhrase(need.tool)} (needed: ${toolRequirement(need)})`, `${installAdvice(hostOsRelease(), need)}, ${orElse}`);
  }

  /** The same error with more known about what is needed (the server's version, read since). */
  with(need: Partial<ToolNeed>): MissingToolError {
    return new MissingToolError(this.what, { ...this.need, ...need }, this.exitCode, this.orElse);
  }
}

/** runuser (runAs) reports a tool it cannot find as status 127 with this line. */
export function missingUnderRunuser(stderr: string): string | undefined {
  return /failed to execute (\S+): No such file or directory/.exec(stderr)?.[1];
}

/**
 * Refuses a PostgreSQL client tool older than what it must work with (pg_dump: the server's major,
 * which pg_dump itself refuses only once the dump has started; pg_restore: the major of the
 * pg_dump that made the archive, whose format an older pg_restore cannot read): undefined when it
 * is new enough or either version cannot be read.
 */
export function postgresToolTooOld(
  what: string,
  tool: string,
  toolVersionLine: string,
  serverVersion: string,
  against: { readonly words: (version: string) => string; readonly cannot: string; readonly exitCode: ExitCode; readonly nothing: string; readonly orElse: string; readonly majorOf?: string } = {
    words: (version) => `the server, PostgreSQL ${version}`,
    cannot: 'cannot dump it',
    exitCode: EXIT.SOURCE,
    nothing: 'nothing was dumped',
    orElse: "or set the source's binDir to a newer one",
  },
): ColdsealError | undefined {
  const have = postgresMajor(toolVersionLine);
  const server = postgresMajor(serverVersion);
  if (have === undefined || server === undefined || have >= server) return undefined;
  const name = tool.split('/').pop() ?? tool;
  const found = toolVersionLine.replace(/^.*\(PostgreSQL\)\s*/, '').trim();
  const need: ToolNeed = { tool, postgresMajor: Math.ceil(server), postgresMajorOf: against.majorOf };
  return new ColdsealError(
    against.exitCode,
    `${what}: ${name} ${found}${tool.includes('/') ? ` (${tool})` : ''} is older than ${against.words(serverVersion.replace(/^.*\(PostgreSQL\)\s*/, '').split(' ')[0])}, and ${against.cannot} (needed: ${toolRequirement(need)}); ${against.nothing}`,
    `${installAdvice(hostOsRelease(), need)}, ${against.orElse}`,
  );
}

/** `tool --version`'s first line; a tool that does not exist is a MissingToolError with `exitCode`. */
export function toolVersionLine(tool: string, what: string, need: Omit<ToolNeed, 'tool'>, exitCode: ExitCode, orElse?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(tool, ['--version'], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout.trim().split('\n')[0]);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return reject(new MissingToolError(what, { ...need, tool }, exitCode, orElse));
      reject(new ColdsealError(exitCode, `${what}: ${tool} --version failed: ${(stderr || error.message).trim().split('\n')[0]}`));
    });
  });
}

/**
 * Before a PostgreSQL restore downloads anything: pg_restore is here and can read the archive (of
 * the dumping pg_dump's major or newer).
 */
export async function checkPgRestore(binDir: string | undefined, archiveTool: { readonly name: string; readonly version: string }): Promise<void> {
  const tool = binDir ? `${binDir.replace(/\/$/, '')}/pg_restore` : 'pg_restore';
  const dumpedBy = postgresMajor(archiveTool.version);
  const what = 'restore';
  // A --target restore takes the tools from PATH; a drill's scratch server from the source's binDir.
  const orElse = binDir ? "or set the source's binDir to a newer one" : 'or put a newer one first on PATH';
  const majorOf = `the major of the ${archiveTool.name} that made the archive`;
  const version = await toolVersionLine(tool, what, { postgresMajor: dumpedBy === undefined ? undefined : Math.ceil(dumpedBy), postgresMajorOf: majorOf }, EXIT.CONFIG, orElse);
  const tooOld = postgresToolTooOld(what, tool, version, archiveTool.version, {
    words: (v) => `the ${archiveTool.name} that made the archive (PostgreSQL ${v})`,
    cannot: 'cannot read it',
    exitCode: EXIT.CONFIG,
    nothing: 'nothing was downloaded or changed',
    orElse,
    majorOf,
  });
  if (tooOld) throw tooOld;
}
