/**
 * How this agent is running: as the self-contained executable (a Node single executable
 * application, scripts/agent-sea-loader.ts: process.execPath is the agent itself, argv[1] only
 * how it was invoked, execArgv empty), or as a script run by a Node (the bundle, or the sources
 * through tsx: process.execPath is node, argv[1] the script). What runs the agent again
 * (pitr/self-invocation.ts) and what `pitr setup` copies (pitr/setup.ts) follow from it.
 */
export interface AgentRuntime {
  readonly executable: boolean;
  readonly execPath: string;
  readonly execArgv: readonly string[];
  /** The script Node runs (process.argv[1]); not the agent when `executable`. */
  readonly script: string | undefined;
}

export function runningAsExecutable(): boolean {
  try {
    // Required here, not imported: Node 20 before 20.12 (which may run the bundle) has no node:sea.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('node:sea') as typeof import('node:sea')).isSea();
  } catch {
    return false;
  }
}

export function currentRuntime(): AgentRuntime {
  return { executable: runningAsExecutable(), execPath: process.execPath, execArgv: process.execArgv, script: process.argv[1] };
}

/** What `--version` prints after the agent's version: which Node runs it, on what, and whether it is the self-contained executable. */
export function runtimeDescription(executable: boolean = runningAsExecutable()): string {
  return `node ${process.version}, ${process.platform}-${process.arch}${executable ? ', self-contained' : ''}`;
}
