import { spawn } from 'node:child_process';
import { pidAlive } from '../local-host';
import { closeSync, openSync, rmSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WAL_FETCH_EXIT } from '../../../format/exit-codes';
import { parseWalFileName } from '../../../format/wal';
import { mapLimit } from '../../../runtime/concurrency';
import { readPrivateKey, readPublicKeys, type PrivateKey, type PublicKey } from '../../../runtime/pgp';
import { createClients } from '../aws';
import { ColdsealError } from '../errors';
import { chooseDecryption, recipientKeyring } from '../pipeline/decrypt';
import type { GpgHome } from '../pipeline/encrypt';
import type { Log } from '../log';
import { FetchPlanError, fetchPlanPath, LAST_SERVED_FILE, PREFETCH_LOCK_FILE, nextPlannedSegments, planPosition, QUEUE_DIR, readFetchPlan, type FetchPlan } from './fetch-plan';
import { selfInvocation } from './self-invocation';
import { fetchWalFile, WalReadFailure, type WalObjectSource } from './wal-object';

/**
 * PostgreSQL's restore_command: `coldseal pitr wal-fetch --spool DIR %f %p`. One call serves one
 * file (%f) into %p and exits:
 * - 0 when it is there, proven and decrypted (wal-object.ts);
 * - 1 when it is not in the archive and the fetch plan (fetch-plan.ts) says that is the archive's
 *   end, or a file recovery merely probes for (another timeline's name, a .history of a newer
 *   timeline, a .partial): PostgreSQL then ends recovery normally;
 * - 126 for everything else: S3 unreachable or throttled after the SDK's retries, any failed
 *   check, a file missing inside the planned range (deleted), WAL of another cluster, a broken
 *   plan. PostgreSQL stops with FATAL instead of promoting early (exit codes: format/exit-codes.ts).
 *
 * Prefetch: each call for a segment records it (`last-served`); any call that goes to S3 (the
 * first of a recovery is a .history probe) starts, unless one runs, a detached prefetcher (this
 * same command with --prefetch, one at a time by a lock file) that keeps the next `prefetch`
 * segments of the plan (before any was asked for, the plan's first ones) proven and decrypted in
 * `queue/`, fetching `concurrency` at a time, decrypting with gpg when the host has it. The shell
 * part of restore_command (fetch-plan.ts) then serves the file by rename, without Node. Files
 * appear in the queue by rename once verified, so an unverified byte is never served; files
 * recovery has passed are deleted, so the queue holds at most `prefetch` files (in-flight ones
 * included) and its disk use is bounded by prefetch × wal_segment_size.
 */

export const PREFETCH_LOG_FILE = 'prefetch.log';
/** A prefetcher with nothing left to fetch waits this long for recovery to move on before it exits. */
const PREFETCH_IDLE_MS = 15_000;
/** How long a call waits for the prefetcher to finish the very file it asks for, before fetching it itself. */
const IN_FLIGHT_WAIT_MS = 60_000;
const POLL_MS = 50;

export interface WalFetchRequest {
  readonly spool: string;
  /** %f: the file name recovery wants. */
  readonly walFile: string;
  /** %p: where to put it (relative to the data directory, PostgreSQL's working directory). */
  readonly destination: string;
  readonly log: Log;
  /** Start the background prefetcher after serving (tests turn it off to count calls). */
  readonly startPrefetcher?: boolean;
}

/** The exit status for PostgreSQL; everything is logged, nothing thrown. */
export async function runWalFetch(request: WalFetchRequest): Promise<number> {
  const { spool, walFile, destination, log } = request;
  const fields = { walFile, spool };
  let plan: FetchPlan;
  try {
    parseWalFileName(walFile);
    plan = await readFetchPlan(spool);
  } catch (error) {
    log.error(`restore_command cannot serve ${walFile}: ${(error as Error).message}; recovery stops here (exit 126)`, {
      ...fields,
      exitCode: WAL_FETCH_EXIT.ABORT_RECOVERY,
      hint: error instanceof FetchPlanError ? 'Prepare the restore again with coldseal restore, or fix the spool directory, then start PostgreSQL again' : 'restore_command must be: coldseal pitr wal-fetch --spool DIR %f %p',
    });
    return WAL_FETCH_EXIT.ABORT_RECOVERY;
  }
  // Recorded before the file leaves the queue or is fetched: a prefetcher that saw the queue
  // without it must not take it for one still to fetch.
  await recordPosition(request, plan).catch((error: unknown) => log.warn(`the prefetcher cannot be told where recovery is (${(error as Error).message})`, fields));
  const queued = join(spool, QUEUE_DIR, walFile);
  try {
    if (await waitForQueued(spool, walFile)) {
      await moveInto(queued, destination);
      log.info(`served ${walFile} from the prefetch queue`, { ...fields, from: 'queue' });
      await afterServed(request, plan);
      return WAL_FETCH_EXIT.OK;
    }
  } catch (error) {
    // A queue that cannot be read is no reason to stop: the archive still has the file.
    log.warn(`the prefetch queue could not serve ${walFile} (${(error as Error).message}): fetching it from S3`, fields);
  }
  // Started before this fetch, not after: recovery's next files are then on their way while this
  // one is, and the first call of a recovery (a .history probe, before any segment) starts it at
  // the plan's first segment, so that the shell fast path serves nearly every segment.
  await ensurePrefetcher(request, plan);
  try {
    const source = await objectSource(plan);
    const record = await fetchWalFile(source, walFile, destination);
    log.info(`fetched ${walFile} from the archive, signature and checksums verified`, { ...fields, from: 's3', bytes: record.plaintextBytes });
    await afterServed(request, plan);
    return WAL_FETCH_EXIT.OK;
  } catch (error) {
    return failed(error, plan, request);
  }
}

function failed(error: unknown, plan: FetchPlan, { walFile, spool, log }: WalFetchRequest): number {
  const fields = { walFile, spool, bucket: plan.storage.bucket };
  if (error instanceof WalReadFailure && error.kind === 'missing') {
    const position = planPosition(plan, walFile);
    if (position !== 'planned') {
      log.info(`${walFile} is not in the archive${position === 'beyond' ? ': past the end of the archive' : ''} (exit 1; PostgreSQL ends recovery or tries another file)`, { ...fields, exitCode: WAL_FETCH_EXIT.NOT_IN_ARCHIVE });
      return WAL_FETCH_EXIT.NOT_IN_ARCHIVE;
    }
    log.error(`WAL ${walFile} is missing from the archive although the restore planned it (it was there when the restore started, or the archive has a hole): recovery stops here instead of ending early (exit 126)`, {
      ...fields,
      exitCode: WAL_FETCH_EXIT.ABORT_RECOVERY,
      hint: `Find out who deleted ${error.message.replace(/ is not in the archive$/, '')} (CloudTrail data events); restore it from the offsite replica or a previous object version, or restore to a target before ${walFile} (coldseal list shows the window)`,
    });
    return WAL_FETCH_EXIT.ABORT_RECOVERY;
  }
  if (error instanceof WalReadFailure) {
    log.error(`${error.message}: recovery stops here (exit 126)`, { ...fields, exitCode: WAL_FETCH_EXIT.ABORT_RECOVERY, problem: error.kind, hint: error.hint });
    return WAL_FETCH_EXIT.ABORT_RECOVERY;
  }
  log.error(`restore_command failed on ${walFile}: ${(error as Error).message}; recovery stops here (exit 126)`, {
    ...fields,
    exitCode: WAL_FETCH_EXIT.ABORT_RECOVERY,
    // A ColdsealError knows its remedy (no zstd engine on this host: what to install).
    hint: error instanceof ColdsealError && error.hint ? error.hint : 'Check the keys named in the fetch plan, the spool directory and the disk, then start PostgreSQL again',
  });
  return WAL_FETCH_EXIT.ABORT_RECOVERY;
}

let keys: Promise<{ trusted: PublicKey[]; key: PrivateKey }> | undefined;

/** The plan's keys, read once per process (a passphrase-protected key costs its S2K once). */
function planKeys(plan: FetchPlan): Promise<{ trusted: PublicKey[]; key: PrivateKey }> {
  keys ??= (async () => {
    const trusted = await readPublicKeys(plan.trustedSigningKeys, 'the fetch plan\'s trusted signing keys');
    const passphrase = plan.privateKey.passphraseFile ? (await readFile(plan.privateKey.passphraseFile, 'utf8')).replace(/\r?\n$/, '') : process.env.COLDSEAL_KEY_PASSPHRASE;
    const key = await readPrivateKey(await readFile(plan.privateKey.file, 'utf8'), `private key ${plan.privateKey.file}`, passphrase);
    return { trusted, key };
  })();
  return keys;
}

async function objectSource(plan: FetchPlan): Promise<WalObjectSource> {
  const { trusted, key } = await planKeys(plan);
  return {
    s3: createClients({ region: plan.storage.region, endpoint: plan.storage.endpoint }).s3,
    bucket: plan.storage.bucket,
    group: plan.group,
    host: plan.host,
    source: plan.source,
    trusted,
    key,
    systemIdentifier: plan.systemIdentifier,
  };
}

/** Moves a verified file to %p: a rename, or a copy renamed into place across file systems. */
async function moveInto(from: string, destination: string): Promise<void> {
  try {
    await rename(from, destination);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    const temp = `${destination}.coldseal-${process.pid}.tmp`;
    try {
      await copyFile(from, temp);
      await rename(temp, destination);
    } catch (copyError) {
      await rm(temp, { force: true });
      throw copyError;
    }
    await rm(from, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function prefetcherPid(spool: string): Promise<number | undefined> {
  const text = await readFile(join(spool, PREFETCH_LOCK_FILE), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

/** In-flight temp files of a queue entry (wal-object.ts names them <file>.coldseal-<pid>-<rand>.tmp). */
function inFlight(entries: readonly string[], walFile: string): string[] {
  return entries.filter((e) => e.startsWith(`${walFile}.coldseal-`) && e.endsWith('.tmp'));
}

/** True when `walFile` is in the queue, waiting a while if the running prefetcher is fetching it right now. */
async function waitForQueued(spool: string, walFile: string): Promise<boolean> {
  const dir = join(spool, QUEUE_DIR);
  const deadline = Date.now() + IN_FLIGHT_WAIT_MS;
  for (;;) {
    const entries = await readdir(dir).catch(() => [] as string[]);
    if (entries.includes(walFile)) return true;
    if (inFlight(entries, walFile).length === 0 || Date.now() > deadline || (await prefetcherPid(spool)) === undefined) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The segment recovery asks for now: the prefetcher keeps the ones after it. */
async function recordPosition(request: WalFetchRequest, plan: FetchPlan): Promise<void> {
  if (parseWalFileName(request.walFile).kind !== 'segment' || plan.prefetch === 0) return;
  const path = join(request.spool, LAST_SERVED_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, request.walFile);
  await rename(temp, path);
}

async function afterServed(request: WalFetchRequest, plan: FetchPlan): Promise<void> {
  if (parseWalFileName(request.walFile).kind !== 'segment') return;
  await ensurePrefetcher(request, plan);
}

/** Starts the spool's prefetcher unless one runs or nothing is left to prefetch after recovery's position. */
async function ensurePrefetcher(request: WalFetchRequest, plan: FetchPlan): Promise<void> {
  if (plan.prefetch === 0 || request.startPrefetcher === false || (await prefetcherPid(request.spool)) !== undefined) return;
  if (wantedAfter(plan, await readLastServed(request.spool)).length === 0) return;
  try {
    startPrefetcher(request.spool);
    request.log.debug('prefetcher started', { spool: request.spool });
  } catch (error) {
    request.log.warn(`the prefetcher could not be started (${(error as Error).message}): each file is fetched when asked for`, { spool: request.spool });
  }
}

/** This agent again, detached, its log appended to the spool's prefetch.log (not PostgreSQL's pipe, which it would hold open). */
function startPrefetcher(spool: string): void {
  const [command, ...args] = selfInvocation();
  const logFd = openSync(join(spool, PREFETCH_LOG_FILE), 'a', 0o600);
  try {
    const child = spawn(command, [...args, 'pitr', 'wal-fetch', '--spool', spool, '--prefetch'], { detached: true, stdio: ['ignore', 'ignore', logFd], env: process.env });
    child.unref();
  } finally {
    closeSync(logFd);
  }
}

async function takeLock(spool: string): Promise<boolean> {
  const path = join(spool, PREFETCH_LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if ((await prefetcherPid(spool)) !== undefined) return false;
      // Left by a prefetcher that died: take it over.
      await rm(path, { force: true });
    }
  }
  return false;
}

async function readLastServed(spool: string): Promise<string | undefined> {
  return (await readFile(join(spool, LAST_SERVED_FILE), 'utf8').catch(() => '')).trim() || undefined;
}

export interface QueueState {
  /** Verified files waiting to be served. */
  readonly ready: string[];
  /** Files being fetched right now. */
  readonly inFlight: number;
}

export async function queueState(spool: string): Promise<QueueState> {
  const entries = await readdir(join(spool, QUEUE_DIR)).catch(() => [] as string[]);
  return { ready: entries.filter((e) => !e.endsWith('.tmp')), inFlight: entries.filter((e) => e.endsWith('.tmp')).length };
}

/**
 * The background prefetcher (`--prefetch`): one per spool (lock file), it follows `last-served`
 * and keeps the next `prefetch` segments in the queue until recovery stops asking for a while.
 * Its failures are only logged: the call that asks for the file fetches it itself and reports.
 */
export async function runPrefetcher(spool: string, log: Log): Promise<number> {
  const queue = join(spool, QUEUE_DIR);
  await mkdir(queue, { recursive: true, mode: 0o700 });
  if (!(await takeLock(spool))) return 0;
  const failedOnce = new Set<string>();
  let idleSince = Date.now();
  let fetched = 0;
  // Fetches in flight, counted here: their temp files appear only once S3 answers. Reservations
  // are taken one at a time, so concurrent workers never overshoot the bound together.
  let fetching = 0;
  let gate: Promise<unknown> = Promise.resolve();
  let keyring: GpgHome | undefined;
  try {
    const plan = await readFetchPlan(spool);
    const source = await objectSource(plan);
    keyring = await prefetchKeyring(source.key, log);
    // stopPrefetcher's SIGTERM would otherwise leave the keyring, the private key in it, behind.
    const home = keyring;
    if (home) {
      process.once('SIGTERM', () => {
        home.close();
        rmSync(join(spool, PREFETCH_LOCK_FILE), { force: true });
        process.exit(0);
      });
    }
    const from = { ...source, ...(keyring ? { gpgKeyring: keyring } : {}) };
    const concurrency = keyring ? plan.concurrency : Math.min(plan.concurrency, OPENPGP_JS_CONCURRENCY);
    const reserve = (walFile: string): Promise<boolean> => {
      const decision = gate.then(async () => {
        // Recovery may have moved past it while earlier ones were fetched.
        if (!wantedAfter(plan, await readLastServed(spool)).includes(walFile)) return false;
        const { ready } = await queueState(spool);
        if (ready.length + fetching >= plan.prefetch) return false;
        fetching++;
        return true;
      });
      gate = decision.catch(() => undefined);
      return decision;
    };
    for (;;) {
      // The spool removed (recovery over, or the restore abandoned): nothing to fetch for.
      if (!(await exists(fetchPlanPath(spool)))) break;
      const served = await readLastServed(spool);
      const wanted = wantedAfter(plan, served);
      // The file recovery asks for right now may still be on its way out of the queue.
      await dropUnwanted(spool, served ? [served, ...wanted] : wanted);
      const state = await queueState(spool);
      const todo = wanted.filter((w) => !state.ready.includes(w) && !failedOnce.has(w));
      if (todo.length === 0) {
        if (!(await exists(fetchPlanPath(spool))) || Date.now() - idleSince > PREFETCH_IDLE_MS) break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS * 2));
        continue;
      }
      idleSince = Date.now();
      await mapLimit(todo, concurrency, async (walFile) => {
        if (!(await reserve(walFile))) return;
        try {
          await fetchWalFile(from, walFile, join(queue, walFile));
          fetched++;
          log.debug(`prefetched ${walFile}`, { walFile });
        } catch (error) {
          failedOnce.add(walFile);
          log.warn(`prefetch of ${walFile} failed (${(error as Error).message}): it is fetched when recovery asks for it`, { walFile });
        } finally {
          fetching--;
        }
      });
    }
  } catch (error) {
    log.warn(`the prefetcher stopped: ${(error as Error).message}`, { spool });
  } finally {
    keyring?.close();
    await rm(join(spool, PREFETCH_LOCK_FILE), { force: true });
    log.info(`prefetcher done: ${fetched} file(s) prefetched`, { spool, fetched, decryption: keyring ? 'gpg' : 'openpgp.js' });
  }
  return 0;
}

/**
 * The segments to keep queued: the `prefetch` after the one recovery asked for last, or, before it
 * asked for any, the plan's first ones (recovery starts there).
 */
function wantedAfter(plan: FetchPlan, served: string | undefined): string[] {
  if (served) return nextPlannedSegments(plan, served, plan.prefetch);
  if (plan.prefetch === 0) return [];
  const first = plan.ranges[0]!.firstSegment;
  return [first, ...nextPlannedSegments(plan, first, plan.prefetch - 1)];
}

/**
 * Fetches in flight when openpgp.js decrypts: it copies every chunk several times outside V8's
 * heap (pipeline/decrypt.ts), and 8 at once took the prefetcher past 200 MB; with gpg, Node only
 * passes the ciphertext through, in 64 KiB chunks.
 */
const OPENPGP_JS_CONCURRENCY = 2;

/**
 * The prefetcher decrypts with gpg when the host has it (COLDSEAL_DECRYPT=openpgp.js says
 * otherwise, as for restore): the key goes once into a throwaway keyring (on /dev/shm) that serves
 * every segment, and gpg is several times faster than openpgp.js. A keyring that cannot be made
 * leaves it to openpgp.js.
 */
async function prefetchKeyring(key: PrivateKey, log: Log): Promise<GpgHome | undefined> {
  try {
    if (chooseDecryption(undefined) !== 'gpg') return undefined;
    return await recipientKeyring(key);
  } catch (error) {
    log.warn(`the prefetcher decrypts with openpgp.js: ${(error as Error).message}`);
    return undefined;
  }
}

/** Deletes queued files recovery will not ask for any more (passed, or off the plan), and temp files of dead fetchers. */
async function dropUnwanted(spool: string, wanted: readonly string[]): Promise<void> {
  const dir = join(spool, QUEUE_DIR);
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (entry.endsWith('.tmp')) {
      const pid = Number(/\.coldseal-(\d+)-/.exec(entry)?.[1]);
      if (pid !== process.pid && !pidAlive(pid)) await rm(join(dir, entry), { force: true });
      continue;
    }
    if (!wanted.includes(entry)) await rm(join(dir, entry), { force: true });
  }
}

/**
 * Stops the spool's prefetcher, if one runs, and waits for it to exit (for `coldseal restore` once
 * recovery is over, before it removes the spool). A prefetcher also ends by itself once recovery
 * has stopped asking for a while, or as soon as it is idle and the fetch plan is gone.
 */
export async function stopPrefetcher(spool: string, timeoutMs = 10_000): Promise<void> {
  const pid = await prefetcherPid(spool);
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
}
