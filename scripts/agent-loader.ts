import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, renameSync, statSync, writeFileSync, constants, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from 'node:module';
import { Script } from 'node:vm';

/**
 * The first lines of the agent bundle (build-agent.ts puts the agent after them, inside a
 * comment): compiles the agent with V8's code cache, kept next to the bundle.
 *
 * Why: Node compiled the 3 MB agent from scratch at every start, ~0.1 s of a backup's or a
 * restore's critical path (the dump or the download waits for it) and of every SSM command. With
 * the cache, start-up (`--version`) goes from ~0.27 s to ~0.17 s.
 *
 * Safety: a code cache is compiled code, so it is only read from and written to a place no one
 * but this user can write: the bundle's directory and the cache file must belong to the user
 * running the agent and be writable by no group or other user (the SSM document keeps the agent in
 * a root-only directory). The cache starts with the SHA-256 of the bundle it was made from and the
 * Node version: V8 itself checks only the source's length, version and flags. Anything amiss (no
 * cache, a stale, foreign or corrupt one, a directory that is not private, a read-only disk)
 * means compiling as before; COLDSEAL_CODE_CACHE=off turns it off.
 */
// Joined at run time, so that this file's own text does not contain the marker it looks for.
const AGENT_START = ['/*', 'coldseal', 'agent', 'follows'].join(' ') + '\n';

const bundle = __filename;
const cacheFile = `${bundle}.v8cache`;

interface Agent {
  readonly source: string;
  readonly lineOffset: number;
  /** The SHA-256 of the bundle and the Node version and architecture, which a cache must start with. */
  readonly stamp: Buffer;
}

/** The agent's source, out of the bundle's text (which is not kept: it is as large as the agent). */
function readAgent(): Agent {
  const file = readFileSync(bundle);
  const text = file.toString('latin1');
  const start = text.indexOf(AGENT_START);
  const end = text.lastIndexOf('*/');
  if (start < 0 || end < start) throw new Error(`${bundle} is damaged: the agent inside it is missing (download it again)`);
  const bodyStart = start + AGENT_START.length;
  // The agent sits in a block comment, so its comment terminators carry a backslash before the slash.
  const body = text.slice(bodyStart, end).split('*\\/').join('*/');
  // The bundle's bytes, not the agent's text: the same identity, without encoding 3 MB again.
  const stamp = createHash('sha256').update(file).update(`\0${process.version}\0${process.arch}`).digest();
  return { source: Module.wrap(body), lineOffset: text.slice(0, bodyStart).split('\n').length - 1, stamp };
}

/** Ours, and writable by no group or other user. */
function privateToUs(stat: Stats): boolean {
  return stat.uid === process.geteuid!() && (stat.mode & 0o022) === 0;
}

function privateDirectory(): boolean {
  const stat = statSync(dirname(bundle));
  return stat.isDirectory() && privateToUs(stat);
}

function readCache(stamp: Buffer): Buffer | undefined {
  try {
    if (!privateDirectory()) return undefined;
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

function writeCache(script: Script, stamp: Buffer): void {
  try {
    if (!privateDirectory()) return;
    const temporary = `${cacheFile}.${process.pid}`;
    writeFileSync(temporary, Buffer.concat([stamp, script.createCachedData()]), { mode: 0o600, flag: 'wx' });
    renameSync(temporary, cacheFile);
  } catch {
    // A read-only or full disk only costs the next start its compile time.
  }
}

function compile(): Script {
  const agent = readAgent();
  const useCache = process.env.COLDSEAL_CODE_CACHE !== 'off' && typeof process.geteuid === 'function';
  const cachedData = useCache ? readCache(agent.stamp) : undefined;
  const script = new Script(agent.source, { filename: bundle, lineOffset: agent.lineOffset, cachedData });
  if (useCache && (!cachedData || script.cachedDataRejected)) {
    // At exit, the cache also holds every function the command compiled on its way.
    const stamp = agent.stamp;
    process.once('exit', () => writeCache(script, stamp));
  }
  return script;
}

const run = compile().runInThisContext() as (exports: unknown, require: NodeJS.Require, module: NodeJS.Module, filename: string, dirname: string) => void;
run.call(module.exports, module.exports, require, module, bundle, dirname(bundle));
