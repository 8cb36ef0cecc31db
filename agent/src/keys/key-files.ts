import { randomBytes } from 'node:crypto';
import { link, lstat, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ColdsealError, EXIT } from '../errors';

/**
 * Writing key files. Each file is written to a fresh temporary file in the same directory (created
 * exclusively, mode 0600 from the start, so a private key is never readable by others even for a
 * moment) and then put in place in one step: link() when nothing may be replaced (it fails if the
 * name exists, symlink or not), rename() with --force (it replaces the name itself: a symlink is
 * replaced, never followed, and the old file's mode is not kept). A set of files (a key pair) is
 * checked as a whole before anything is written, so a refusal never leaves half a pair.
 */
export interface KeyFile {
  readonly path: string;
  readonly content: string;
  /** 0600 for private halves, 0644 for public ones. */
  readonly mode: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function alreadyExists(paths: readonly string[]): ColdsealError {
  const more = paths.length > 1 ? ` (also there: ${paths.slice(1).join(', ')})` : '';
  return new ColdsealError(EXIT.REFUSED, `${paths[0]} already exists; a key is never overwritten silently${more}`, 'Nothing was written. Choose another --out directory, or pass --force if you really mean to replace the pair');
}

/** Refuses, before anything is written, when any of the files exists (unless `force`). */
export async function checkKeyFilesFree(paths: readonly string[], force: boolean | undefined): Promise<void> {
  if (force) return;
  const taken: string[] = [];
  for (const path of paths) if (await exists(path)) taken.push(path);
  if (taken.length > 0) throw alreadyExists(taken);
}

export async function writeKeyFiles(files: readonly KeyFile[], force: boolean | undefined): Promise<void> {
  await checkKeyFilesFree(files.map((f) => f.path), force);
  for (const file of files) {
    const temp = join(dirname(file.path), `.${basename(file.path)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      try {
        await handle.writeFile(file.content);
        await handle.chmod(file.mode);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (force) await rename(temp, file.path);
      else {
        try {
          await link(temp, file.path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists([file.path]);
          throw error;
        }
      }
    } finally {
      await rm(temp, { force: true });
    }
  }
}
