import { readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ColdsealError, EXIT } from '../../errors';
import { toolSink, type Sink } from '../../pipeline/sink';
import { StagedDirectory } from '../staged-directory';
import type { Plan, TargetContext } from './target';

/** A directory: tar extracts into a staging directory beside it, moved in after every check. */
export interface DirectoryRestoreTarget {
  readonly kind: 'directory';
  readonly path: string;
}

export function tarExtractSink(directory: string): Sink {
  const args = ['--extract', '--file=-', `--directory=${directory}`, '--preserve-permissions', '--numeric-owner'];
  return toolSink({ command: 'tar', args }, `tar into ${directory}`, { drain: true });
}

export async function planDirectory(context: TargetContext, target: DirectoryRestoreTarget): Promise<Plan> {
  const path = resolve(target.path);
  let entries: string[] | undefined;
  try {
    entries = await readdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ColdsealError(EXIT.USAGE, `cannot use ${path} as the target directory: ${(error as NodeJS.ErrnoException).code}`);
  }
  if (entries?.length) await context.confirmReplace(`Directory ${path} is not empty (${entries.length} entries): files from the backup will replace files of the same path in it; other files stay.`);
  let staged: StagedDirectory | undefined;
  return {
    destination: `directory ${path}`,
    // tar extracts into a staging directory on the same filesystem; it is moved in after every check.
    prepare: async () => {
      staged = await StagedDirectory.create(path, entries !== undefined);
    },
    direct: true,
    sink: () => tarExtractSink(staged!.incoming),
    finish: () => staged!.commit(),
    undo: async () => staged?.discard(),
  };
}
