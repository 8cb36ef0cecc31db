import { randomBytes } from 'node:crypto';
import { lchown, lstat, mkdir, readdir, rename, rm, chmod, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ColdsealError, EXIT } from '../errors';

/**
 * A files restore that touches the destination only after every check passed. tar extracts into a
 * staging directory on the destination's filesystem (inside it when it exists, so a destination
 * that is a mount point still gets atomic renames; beside it otherwise); once the whole object,
 * the OpenPGP integrity code, decompression and tar's end of archive are checked, the backup's
 * entries are moved in:
 * - a destination that did not exist is the staging tree, renamed into place (one rename);
 * - in an existing destination each entry of the backup replaces the entry of the same path
 *   (a file, a symlink, or a directory where the destination has none); a directory present on
 *   both sides is merged, and gets the backup's mode and times; entries that are only in the
 *   destination are left alone.
 * Every replaced entry is first moved aside into the staging area, so a failure while moving
 * (another filesystem below, permissions) moves everything back: the destination is left as it
 * was. A path that is a directory on one side and not on the other is refused before any move.
 */
export class StagedDirectory {
  readonly staging: string;
  /** Where tar extracts. */
  readonly incoming: string;
  private readonly displaced: string;
  private constructor(
    readonly destination: string,
    private readonly existed: boolean,
  ) {
    const tag = `.coldseal-staging-${randomBytes(6).toString('hex')}`;
    this.staging = existed ? join(destination, tag) : join(dirname(destination), `${tag}-${basename(destination)}`);
    this.incoming = join(this.staging, 'new');
    this.displaced = join(this.staging, 'old');
  }

  static async create(destination: string, existed: boolean): Promise<StagedDirectory> {
    const staged = new StagedDirectory(destination, existed);
    if (!existed) await mkdir(dirname(destination), { recursive: true });
    await mkdir(staged.staging, { mode: 0o700 });
    await mkdir(staged.incoming, { mode: 0o700 });
    await mkdir(staged.displaced, { mode: 0o700 });
    return staged;
  }

  /** Removes the staging area (after a failure, or after a successful move: what was replaced goes too). */
  async discard(): Promise<void> {
    await rm(this.staging, { recursive: true, force: true });
  }

  /** Moves the checked tree into place; on a failure everything moved so far goes back. */
  async commit(): Promise<void> {
    if (!this.existed) {
      // The staging area is 0700 while it fills; the new directory gets the mode mkdir would give it.
      await chmod(this.incoming, 0o777 & ~process.umask());
      await rename(this.incoming, this.destination).catch((error: NodeJS.ErrnoException) => {
        throw new ColdsealError(EXIT.FAILURE, `moving the restored files into ${this.destination} failed (${error.code ?? error.message})`, 'Nothing was changed; check the permissions of its parent directory');
      });
      await this.discard();
      return;
    }
    await this.checkConflicts('');
    const undo: Array<() => Promise<void>> = [];
    try {
      await this.merge('', undo);
    } catch (error) {
      for (const step of undo.reverse()) await step().catch(() => undefined);
      const code = (error as NodeJS.ErrnoException).code;
      throw new ColdsealError(
        EXIT.FAILURE,
        `moving the restored files into ${this.destination} failed (${code ?? (error as Error).message}); everything moved was put back`,
        code === 'EXDEV' ? 'A directory inside the destination is another filesystem: restore into an empty directory on it, or into a new directory' : 'Check the permissions of the destination',
      );
    }
    await this.discard();
  }

  private async entries(relative: string): Promise<string[]> {
    const names = await readdir(join(this.incoming, relative));
    return relative === '' ? names.filter((n) => n !== basename(this.staging)) : names;
  }

  /** A directory in the backup where the destination has a file (or the reverse) would need a delete: refused. */
  private async checkConflicts(relative: string): Promise<void> {
    for (const name of await this.entries(relative)) {
      const path = join(relative, name);
      const ours = await lstat(join(this.incoming, path));
      const theirs = await lstat(join(this.destination, path)).catch(() => undefined);
      if (!theirs) continue;
      if (ours.isDirectory() !== theirs.isDirectory()) {
        throw new ColdsealError(
          EXIT.REFUSED,
          `${join(this.destination, path)} is ${theirs.isDirectory() ? 'a directory' : 'not a directory'} but the backup has ${ours.isDirectory() ? 'a directory' : 'a file'} there`,
          'Nothing was changed. Move it out of the way, or restore into another directory',
        );
      }
      if (ours.isDirectory()) await this.checkConflicts(path);
    }
  }

  private async merge(relative: string, undo: Array<() => Promise<void>>): Promise<void> {
    for (const name of await this.entries(relative)) {
      const path = join(relative, name);
      const from = join(this.incoming, path);
      const to = join(this.destination, path);
      const ours = await lstat(from);
      const theirs = await lstat(to).catch(() => undefined);
      if (ours.isDirectory() && theirs?.isDirectory()) {
        await this.merge(path, undo);
        // As tar would have left it: the backup's mode and times (and owner, as root).
        undo.push(() => chmod(to, theirs.mode & 0o7777).then(() => utimes(to, theirs.atime, theirs.mtime)));
        if (process.getuid?.() === 0) {
          await lchown(to, ours.uid, ours.gid);
          undo.push(() => lchown(to, theirs.uid, theirs.gid));
        }
        await chmod(to, ours.mode & 0o7777);
        await utimes(to, ours.atime, ours.mtime);
        continue;
      }
      if (theirs) {
        const aside = join(this.displaced, path);
        await mkdir(dirname(aside), { recursive: true, mode: 0o700 });
        await rename(to, aside);
        undo.push(() => rename(aside, to));
      }
      await rename(from, to);
      undo.push(() => rename(to, from));
    }
  }
}
