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
  ) {
    super(exitCode, `${what}: ${notFoundPhrase(need.tool)} (needed: ${toolRequirement(need)})`, `${installAdvice(hostOsRelease(), need)}, or set the source's binDir`);
  }

  /** The same error with more known about what is needed (the server's version, read since). */
  with(need: Partial<ToolNeed>): MissingToolError {
    return new MissingToolError(this.what, { ...this.need, ...need }, this.exitCode);
  }
}

/** runuser (runAs) reports a tool it cannot find as status 127 with this line. */
export function missingUnderRunuser(stderr: string): string | undefined {
  return /failed to execute (\S+): No such file or directory/.exec(stderr)?.[1];
}

/**
 * Refuses a PostgreSQL client tool older than the server's major (pg_dump refuses a newer server
 * itself, but only once the dump has started): undefined when it is new enough or either version
 * cannot be read.
 */
export function postgresToolTooOld(what: string, tool: string, toolVersionLine: string, serverVersion: string): ColdsealError | undefined {
  const have = postgresMajor(toolVersionLine);
  const server = postgresMajor(serverVersion);
  if (have === undefined || server === undefined || have >= server) return undefined;
  const name = tool.split('/').pop() ?? tool;
  const found = toolVersionLine.replace(/^.*\(PostgreSQL\)\s*/, '').trim();
  const need: ToolNeed = { tool, postgresMajor: Math.ceil(server) };
  return new ColdsealError(
    EXIT.SOURCE,
    `${what}: ${name} ${found}${tool.includes('/') ? ` (${tool})` : ''} is older than the server, PostgreSQL ${serverVersion.split(' ')[0]}, and cannot dump it (needed: ${toolRequirement(need)}); nothing was dumped`,
    `${installAdvice(hostOsRelease(), need)}, or set the source's binDir to a newer one`,
  );
}
