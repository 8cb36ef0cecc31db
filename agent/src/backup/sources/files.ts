import { execFileSync } from 'node:child_process';
import type { FilesSourceConfig } from '../../../../format/agent-config';
import { asUser } from '../../db/as-user';
import type { PreparedSource } from './source';

/**
 * Directories: one GNU tar stream of all the source's paths, relative to / so a restore can
 * re-root them anywhere. Owners are kept by number (the restore host may not have the same names).
 */
export async function prepareFiles(source: FilesSourceConfig): Promise<PreparedSource> {
  const tarVersion = execFileSync('tar', ['--version']).toString().split('\n')[0];
  const args = [
    '--create',
    '--file=-',
    '--directory=/',
    '--numeric-owner',
    '--sparse',
    '--warning=no-file-ignored',
    ...source.excludes.map((e) => `--exclude=${e}`),
    // Names come on stdin, NUL-separated and verbatim: any number of them (no E2BIG), and one that
    // begins with "-" is a name, never an option. Excludes must come before --files-from to apply.
    '--null',
    '--verbatim-files-from',
    '--files-from=-',
  ];
  const names = source.paths.map((p) => p.replace(/^\/+/, '') || '.');
  const run = asUser(source.runAs, 'tar', args);
  return {
    engine: { kind: 'files', version: null },
    steps: [
      {
        name: source.name,
        kind: 'directory',
        contentFormat: 'tar',
        extension: 'tar',
        command: run.command,
        args: run.args,
        env: {},
        stdin: names.map((n) => `${n}\0`).join(''),
        tool: { name: 'tar', version: tarVersion },
        completion: { method: 'archive-end' },
        // GNU tar exits 1 when a file changed while it was read: the archive is complete, that file may be inconsistent.
        tolerableExitCodes: new Map([[1, 'some files changed while they were being archived (tar exit 1); their copies may be inconsistent']]),
        diagnose: (stderr) =>
          /Cannot stat|No such file/i.test(stderr) ? { message: `a path to back up is missing (${stderr.split('\n')[0].slice(0, 300)})`, hint: "Fix the source's paths" } : undefined,
      },
    ],
    cleanup: async () => {},
  };
}
