import { closeSync, fstatSync, openSync, readFileSync, renameSync, statSync, writeFileSync, constants, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

/**
 * V8's code cache for the agent, kept next to what runs it (the bundle, or the self-contained
 * executable): the agent is a few MB of JavaScript that Node would otherwise compile from scratch
 * at every start, ~0.1 s of every backup's, restore's and SSM command's critical path.
 *
 * Safety: a code cache is compiled code, so it is only read from and written to a place no one
 * but this user can write: the directory and the cache file must belong to the user running the
 * agent and be writable by no group or other user (the SSM document keeps the agent in a root-only
 * directory). The cache starts with a stamp naming the agent it was made from and the Node version
 * and architecture: V8 itself checks only the source's length, version and flags. Anything amiss
 * (no cache, a stale, foreign or corrupt one, a directory that is not private, a read-only disk)
 * means compiling as before; COLDSEAL_CODE_CACHE=off turns it off.
 */
export interface CachedCompile {
  /** The agent, already wrapped as a CommonJS module function (Module.wrap). */
  readonly source: string;
  /** The file name stack traces give. */
  readonly filename: string;
  readonly lineOffset: number;
  /** Where the cache lives (its directory must be private to us). */
  readonly cacheFile: string;
  /** Identifies the agent, the Node version and the architecture; a cache must start with it. */
  readonly stamp: Buffer;
}

/** Ours, and writable by no group or other user. */
function privateToUs(stat: Stats): boolean {
  return stat.uid === process.geteuid!() && (stat.mode & 0o022) === 0;
}

function privateDirectory(file: string): boolean {
  const stat = statSync(dirname(file));
  return stat.isDirectory() && privateToUs(stat);
}

function readCache(cacheFile: string, stamp: Buffer): Buffer | undefined {
  try {
    if (!privateDirectory(cacheFile)) return undefined;
    // O_NOFOLLOW: a symlink planted in place of the cache is not followed.
    const fd = openSync(cacheFile, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile() || !privateToUs(stat)) return undefined;
      const cache = readFileSync(fd);
      return cache.length > stamp.length && cache.subarray(0, stamp.length).equals(stamp) ? cache.subarray(stamp.length) : undefined;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

function writeCache(cacheFile: string, script: Script, stamp: Buffer): void {
  try {
    if (!privateDirectory(cacheFile)) return;
    const temporary = `${cacheFile}.${process.pid}`;
    writeFileSync(temporary, Buffer.concat([stamp, script.createCachedData()]), { mode: 0o600, flag: 'wx' });
    renameSync(temporary, cacheFile);
  } catch {
    // A read-only or full disk only costs the next start its compile time.
  }
}

export function compileWithCodeCache(agent: CachedCompile): Script {
  const useCache = process.env.COLDSEAL_CODE_CACHE !== 'off' && typeof process.geteuid === 'function';
  const cachedData = useCache ? readCache(agent.cacheFile, agent.stamp) : undefined;
  const script = new Script(agent.source, { filename: agent.filename, lineOffset: agent.lineOffset, cachedData });
  if (useCache && (!cachedData || script.cachedDataRejected)) {
    // At exit, the cache also holds every function the command compiled on its way.
    process.once('exit', () => writeCache(agent.cacheFile, script, agent.stamp));
  }
  return script;
}
