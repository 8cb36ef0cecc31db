import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Plan, TargetContext } from './target';

/** A file (--output): the decompressor writes it beside its name; renamed into place after every check. */
export interface FileRestoreTarget {
  readonly kind: 'file';
  readonly path: string;
}

export async function planFile(context: TargetContext, target: FileRestoreTarget): Promise<Plan> {
  const path = resolve(target.path);
  const exists = await stat(path).then(() => true, () => false);
  if (exists) await context.confirmReplace(`File ${path} exists and will be replaced.`);
  const partial = `${path}.coldseal-partial`;
  return {
    destination: `file ${path}`,
    file: {
      open: async () => {
        await mkdir(dirname(path), { recursive: true });
        // Created 0600 before a byte is in it (a leftover of a killed run is replaced, not reused).
        await rm(partial, { force: true });
        return open(partial, 'wx+', 0o600);
      },
    },
    sink: () => {
      throw new Error('a file target is written by the decompressor');
    },
    undo: () => rm(partial, { force: true }),
    finish: () => rename(partial, path),
  };
}
