import { join } from 'node:path';
import { shellCommand, shellQuote } from './self-invocation';

/**
 * The archive_command wrapper that `pitr setup` installs: a POSIX sh script that answers for a
 * file pushed ahead (its marker exists: push-plan.ts) without starting Node, and otherwise runs
 * `coldseal pitr archive-push`. It maps any status of 126 or more (the agent killed by a signal,
 * Node missing: 127) to 1, because PostgreSQL's archiver aborts on those instead of retrying
 * (PostgreSQL docs, "Continuous Archiving and Point-in-Time Recovery", "Setting Up WAL
 * Archiving"). The system identifier is read from global/pg_control's first 8 bytes (machine byte
 * order, as od reads; archive_command runs in the data directory), so markers of another cluster
 * are never taken.
 */

/** The first line after the shebang: how setup recognises a wrapper of its own (to rewrite it). */
export const WRAPPER_SIGNATURE = '# coldseal archive_command wrapper';

export interface WrapperSpec {
  readonly source: string;
  readonly stateDir: string;
  /** The agent's own command line (self-invocation.ts). */
  readonly agent: readonly string[];
  /** --config FILE, or --config-parameter NAME [--region R]. */
  readonly configArgs: readonly string[];
}

export function wrapperPath(installDir: string, source: string): string {
  return join(installDir, `archive-${source}.sh`);
}

export function archiveWrapperScript(spec: WrapperSpec): string {
  const agent = shellCommand([...spec.agent, 'pitr', 'archive-push', '--source', spec.source, ...spec.configArgs, '--state-dir']);
  return `#!/bin/sh
${WRAPPER_SIGNATURE} for source ${spec.source}: written by "coldseal pitr setup", which rewrites it; do not edit.
# PostgreSQL runs it as: archive-${spec.source}.sh %p %f, in the data directory, as the server's user.
state=${shellQuote(spec.stateDir)}
case "$2" in
  '' | */* | .*) ;;
  *)
    sysid=$(od -An -tu8 -N8 global/pg_control 2>/dev/null | tr -d ' \\n')
    marker="$state/$sysid/pushed/$2"
    # Pushed ahead by an earlier call, which wrote the marker only after S3 took the file.
    if [ -n "$sysid" ] && [ -f "$marker" ] && rm -f "$marker"; then exit 0; fi
    ;;
esac
${agent} "$state" -- "$1" "$2"
status=$?
if [ "$status" -ge 126 ]; then
  echo "coldseal archive-push ended with status $status (killed, or could not start); reporting 1 so that PostgreSQL retries" >&2
  exit 1
fi
exit "$status"
`;
}

/** archive_command for a wrapper at `path`: shell-quoted, with % doubled (PostgreSQL expands %p, %f, %%). */
export function archiveCommandFor(path: string): string {
  return `${shellQuote(path).replace(/%/g, '%%')} %p %f`;
}
