import { execFileSync } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { ColdsealError, EXIT } from '../../errors';

/**
 * The new data directory of a point-in-time restore, and the spool directory beside it (the
 * restored server's unix socket and log, restore_command's plan and prefetch queue). Checked
 * before anything is downloaded; created 0700, owned by the PostgreSQL OS user, only after every
 * check passed; removed again when laying the base backup fails.
 */
export interface DataDirPlan {
  readonly dataDir: string;
  readonly spoolDir: string;
  /** The data directory existed (empty): a failure empties it instead of removing it. */
  readonly existed: boolean;
  readonly spoolExisted: boolean;
  readonly owner: OsUser;
}

export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** The spool directory of a data directory: beside it, so it is on the same filesystem and easy to find. */
export function spoolDirOf(dataDir: string): string {
  return `${resolve(dataDir)}.coldseal-spool`;
}

/** sun_path holds 108 bytes with its NUL (unix(7)); PostgreSQL refuses a longer socket path at start. */
const MAX_SOCKET_PATH = 107;

export function osUser(name: string): OsUser {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
    const gid = Number(execFileSync('id', ['-g', name], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
    return { name, uid, gid };
  } catch {
    throw new ColdsealError(EXIT.CONFIG, `the OS user "${name}" that would own the restored data directory does not exist here`, 'Set runAs on the source to the user PostgreSQL runs as, or install PostgreSQL (its package creates "postgres")');
  }
}

async function entriesOf(path: string): Promise<string[] | undefined> {
  try {
    const stat = await lstat(path);
    if (!stat.isDirectory()) throw new ColdsealError(EXIT.USAGE, `--data-dir ${path} exists and is not a directory`, 'Give a new or empty directory');
    return await readdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof ColdsealError) throw error;
    throw new ColdsealError(EXIT.USAGE, `cannot use --data-dir ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** The real path of a directory that may not exist yet: its nearest existing ancestor's, plus the rest. */
async function realPathOf(path: string): Promise<string> {
  let existing = path;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await realpath(existing), ...rest.reverse());
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return path;
      rest.push(basename(existing));
      existing = parent;
    }
  }
}

function inside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..');
}

/**
 * Refuses a data directory that is not new or empty, that holds a cluster, or that is (or is in)
 * the running cluster's data directory (`runningDataDir`: the source server's `show
 * data_directory`, when it could be asked). Writes nothing.
 */
export async function checkDataDir(dataDir: string, options: { runningDataDir?: string; port: number; owner: OsUser }): Promise<DataDirPlan> {
  const path = resolve(dataDir);
  const spoolDir = spoolDirOf(path);
  if (options.runningDataDir) {
    const running = await realPathOf(resolve(options.runningDataDir));
    const mine = await realPathOf(path);
    if (inside(mine, running) || inside(running, mine)) {
      throw new ColdsealError(EXIT.REFUSED, `--data-dir ${path} is ${mine === running ? '' : inside(mine, running) ? 'inside ' : 'a parent of '}the data directory of the running server (${running})`, 'Nothing was written. Restore into a new directory; to replace the running cluster, stop it and restore beside it, then swap');
    }
  }
  const entries = await entriesOf(path);
  if (entries?.length) {
    const cluster = entries.filter((e) => e === 'PG_VERSION' || e === 'postmaster.pid');
    throw new ColdsealError(
      EXIT.REFUSED,
      cluster.length ? `--data-dir ${path} holds a PostgreSQL cluster (${cluster.join(', ')})` : `--data-dir ${path} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')})`,
      'Nothing was written. A point-in-time restore goes into a new or empty directory: give another --data-dir',
    );
  }
  const spoolEntries = await entriesOf(spoolDir);
  if (spoolEntries?.length) {
    throw new ColdsealError(EXIT.REFUSED, `the spool directory ${spoolDir} of --data-dir ${path} is not empty (left by an earlier restore?)`, `Nothing was written. Remove it (rm -r ${spoolDir}) once no server of an earlier restore uses it, or give another --data-dir`);
  }
  const socket = join(spoolDir, `.s.PGSQL.${options.port}`);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new ColdsealError(EXIT.USAGE, `the restored server's socket ${socket} would be longer than ${MAX_SOCKET_PATH} bytes, which a unix socket path cannot be`, 'Give a --data-dir with a shorter path');
  }
  return { dataDir: path, spoolDir, existed: entries !== undefined, spoolExisted: spoolEntries !== undefined, owner: options.owner };
}

/** Whether this process may hand files to `owner` (root), or already is `owner`. */
export function canOwnAs(owner: OsUser): boolean {
  return userInfo().uid === 0 || userInfo().uid === owner.uid;
}

/** Creates (or takes) the data and spool directories, 0700, owned by the PostgreSQL OS user. */
export async function createDataDirs(plan: DataDirPlan): Promise<void> {
  for (const dir of [plan.dataDir, plan.spoolDir]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // PostgreSQL refuses a data directory that others can read ("has invalid permissions").
    await chmod(dir, 0o700);
    if (userInfo().uid === 0) await chown(dir, plan.owner.uid, plan.owner.gid);
  }
}

/** Writes a file owned by the PostgreSQL OS user (created new unless `append`). */
export async function writeOwned(path: string, content: string, owner: OsUser, options: { mode?: number; append?: boolean } = {}): Promise<void> {
  await writeFile(path, content, { mode: options.mode ?? 0o600, flag: options.append ? 'a' : 'wx' });
  if (userInfo().uid === 0) await chown(path, owner.uid, owner.gid);
}

/** Undoes createDataDirs and what went into the directories: a directory that existed is emptied, not removed. */
export async function removeDataDirs(plan: DataDirPlan): Promise<void> {
  for (const [dir, existed] of [[plan.dataDir, plan.existed], [plan.spoolDir, plan.spoolExisted]] as const) {
    if (!existed) {
      await rm(dir, { recursive: true, force: true });
      continue;
    }
    for (const entry of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, entry), { recursive: true, force: true });
  }
}
