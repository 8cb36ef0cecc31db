/** Runs a database client or dump tool as another local user (peer authentication) without a shell. */
export function asUser(runAs: string | undefined, command: string, args: readonly string[]): { command: string; args: string[] } {
  return runAs ? { command: 'runuser', args: ['-u', runAs, '--', command, ...args] } : { command, args: [...args] };
}
