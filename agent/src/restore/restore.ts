import type { FileHandle } from 'node:fs/promises';
import { type Readable, Transform, Writable } from 'node:stream';
import type { Artifact, Manifest } from '../../../format/manifest';
import type { PgConnection } from '../db/postgres';
import type { PrivateKey, PublicKey } from '../../../runtime/pgp';
import { PartBufferPool } from '../../../runtime/part-reader';
import { artifactObjects, objectLabel } from '../../../format/ranges';
import type { AgentClients } from '../aws';
import { ColdsealError, EXIT } from '../errors';
import { formatBytes } from '../../../runtime/byte-size';
import type { Log } from '../log';
import { TailWatcher } from '../pipeline/streams';
import { ensureReadable, s3ArchiveClient, type ArchiveClient, type ArchivePolicy } from './archive';
import { readArchiveHead, type DatabaseScript } from './pg-database';
import { prepareSafetyDir, type SafetyDump, type SafetyDumpPolicy } from './safety-dump';
import { missingObject, openPlaintext, type OpenedPlaintext } from './plaintext';
import { loadVerifiedManifest, pickArtifact, resolveManifestKey, type BackupSelector } from './select';
import { planDirectory, type DirectoryRestoreTarget } from './targets/directory';
import { planFile, type FileRestoreTarget } from './targets/file';
import { planMysql, type MysqlRestoreTarget } from './targets/mysql';
import { planList, planPostgres, type PostgresRestoreTarget } from './targets/postgres';
import type { Plan, TargetContext } from './targets/target';
import type { Sink } from '../pipeline/sink';

/**
 * `coldseal restore`, as a function.
 *
 * One pass: the PartReader checks every part of the object against the signed manifest before its
 * bytes reach decryption, so a changed byte never reaches the target; the checks that only a whole
 * read can make (whole SHA-256, OpenPGP MDC, decompressor, completion trailer, size) settle at the
 * end, and only then does the restore take effect; a failure undoes it:
 * - a new PostgreSQL database is dropped;
 * - an existing PostgreSQL database is protected by pg_restore's single transaction (rolled back);
 * - MySQL/MariaDB goes into a staging database that replaces the target after the checks
 *   (mysql-staging.ts), files into a staging directory moved in after them (staged-directory.ts),
 *   pg_dumpall globals into a 0600 file applied in one transaction after them (pg-globals.ts);
 * - a file (--output) is written beside its name by zstd itself and renamed after the checks.
 */
export type RestoreTarget = PostgresRestoreTarget | MysqlRestoreTarget | DirectoryRestoreTarget | FileRestoreTarget | { kind: 'list' };

export interface RestoreRequest {
  readonly clients: AgentClients;
  readonly bucket: string;
  readonly log: Log;
  readonly selector: BackupSelector;
  readonly artifact?: string;
  readonly key: PrivateKey;
  readonly trusted: readonly PublicKey[];
  readonly target: RestoreTarget;
  /** Skip the question (never the safety dump). */
  readonly yes: boolean;
  /** Asks the user; resolves true to go on. Without a terminal the command layer refuses instead. */
  readonly confirm: (question: string) => Promise<boolean>;
  /** Where safety dumps go and whom they are encrypted to. */
  readonly safety: SafetyDumpPolicy;
  readonly archive: ArchivePolicy;
  readonly archiveClient?: ArchiveClient;
}

export interface RestoreResult {
  readonly manifestKey: string;
  readonly manifest: Manifest;
  readonly artifact: Artifact;
  readonly destination: string;
  readonly safetyDump?: SafetyDump;
  readonly listing?: string;
  readonly plaintextBytes: number;
}

export async function runRestore(request: RestoreRequest): Promise<RestoreResult> {
  const { clients, bucket, log } = request;
  const { key: manifestKey } = await resolveManifestKey(clients.s3, bucket, request.selector);
  const { manifest, signer } = await loadVerifiedManifest(clients.s3, bucket, manifestKey, request.trusted);
  log.info(`manifest signature ok (signed by ${signer})`, { manifest: `s3://${bucket}/${manifestKey}` });
  const artifact = chooseArtifact(manifest, request.artifact, request.target);
  // Every segment of the artifact must be there and readable (a retrieval per archived object).
  const objects = artifactObjects(artifact);
  await ensureReadable(request.archiveClient ?? s3ArchiveClient(clients.s3, bucket), objects.map((o) => o.key), request.archive, log, (key) => {
    const object = objects.find((o) => o.key === key)!;
    return missingObject(objectLabel(`s3://${bucket}/${key}`, object.segment, objects.length), key, bucket);
  });

  // One set of part buffers for the whole run: a head read ahead leaves its buffers to the main read.
  const buffers = new PartBufferPool();
  // The target: does it exist, and may we replace it? (Asked before the long read.)
  const plan = await planTarget(request, manifest, artifact, buffers);
  // A safety dump that cannot be written is known now, not after the long read.
  if (plan.safety) await prepareSafetyDir(request.safety.dir);

  // A file is written by the last child itself (the plaintext never passes through Node).
  const file = plan.file ? await plan.file.open() : undefined;
  let safetyDump: SafetyDump | undefined;
  // The safety dump first, then the target is prepared: only after the first part was checked.
  const prepareTarget = async () => {
    if (plan.safety) {
      safetyDump = await plan.safety();
      log.info(`safety dump of the current ${plan.destination} written to ${safetyDump.path} (${formatBytes(safetyDump.bytes)}, ${safetyDump.encrypted ? 'encrypted to the recipients' : 'PLAINTEXT'}, mode 0600; coldseal never deletes it)`, { safetyDump: safetyDump.path, bytes: safetyDump.bytes, encrypted: safetyDump.encrypted });
    }
    await plan.prepare?.();
  };
  const marker = trailerOf(artifact);
  // A sink that reads to the end gets zstd's output straight (created once the target is prepared).
  const direct = plan.direct === true && !marker && !plan.transform && !plan.fromHead;
  let directSink: Sink | undefined;
  let opened: OpenedPlaintext;
  try {
    // Opening reads and checks the first part (size, addressees) before the target is touched.
    opened = await openPlaintext({
      s3: clients.s3,
      bucket,
      manifest,
      artifact,
      key: request.key,
      buffers,
      plaintextFd: file?.fd,
      plaintextTo: direct
        ? async () => {
            await prepareTarget();
            directSink = plan.sink();
            return directSink.input;
          }
        : undefined,
      onProgress: progress(log, `restoring ${artifact.name}`),
    });
  } catch (error) {
    directSink?.kill();
    await file?.close().catch(() => undefined);
    throw await undoAfter(plan, error, log);
  }
  log.debug(`decrypting with ${opened.decryptedBy}`);
  if (!direct) {
    try {
      await prepareTarget();
    } catch (error) {
      opened.abort();
      await opened.finished.catch(() => undefined);
      await file?.close().catch(() => undefined);
      throw await undoAfter(plan, error, log);
    }
  }

  let plaintextBytes: number | undefined;
  try {
    const tail = await deliver(opened, plan, file, directSink, log);
    if (marker && !tail.text.includes(marker)) throw truncated(artifact, marker);
    // NaN: the count was not reported (gzip into a sink): the decompressor's own checks stand.
    if (artifact.uncompressedBytes !== null && !Number.isNaN(tail.bytes) && tail.bytes !== artifact.uncompressedBytes) {
      throw new ColdsealError(EXIT.INTEGRITY, `size check failed: the decrypted ${artifact.name} is ${tail.bytes} bytes but the signed manifest says ${artifact.uncompressedBytes}`, 'Do not use this backup: restore an older one');
    }
    plaintextBytes = Number.isNaN(tail.bytes) ? undefined : tail.bytes;
    log.info(`checks passed: every part's SHA-256, the whole SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}…, recipients, OpenPGP integrity, decompression${marker ? ', completion trailer' : ''}, size`, { plaintextBytes });
    await plan.finish?.();
  } catch (error) {
    throw await undoAfter(plan, error, log);
  }
  return { manifestKey, manifest, artifact, destination: plan.destination, safetyDump, listing: plan.listing?.(), plaintextBytes: plaintextBytes ?? artifact.uncompressedBytes ?? 0 };
}

/**
 * The plaintext into its destination, to the end of the read: a file the decompressor wrote, a
 * sink zstd fed directly, or through Node (a tail watcher, the plan's head reader and transform).
 * Returns the plaintext's last bytes (for the trailer) and its size (NaN when nobody counted it).
 */
async function deliver(opened: OpenedPlaintext, plan: Plan, file: FileHandle | undefined, directSink: Sink | undefined, log: Log): Promise<{ text: string; bytes: number }> {
  if (file) {
    try {
      await opened.finished;
      const size = (await file.stat()).size;
      return { text: (await readTail(file, size)).toString('utf8'), bytes: size };
    } finally {
      log.endProgress();
      await file.close().catch(() => undefined);
    }
  } else if (directSink) {
    try {
      await settle(opened, directSink);
    } finally {
      log.endProgress();
    }
    return { text: '', bytes: (await opened.finished).plaintextBytes ?? Number.NaN };
  } else {
    const watcher = new TailWatcher();
    let plaintext = opened.plaintext;
    if (plan.fromHead) {
      try {
        plaintext = await plan.fromHead(plaintext);
      } catch (error) {
        // A damaged stream makes the head unreadable too: report the root cause when there is one.
        const root = await Promise.race([opened.finished.then(() => null, (failure: unknown) => failure), new Promise<null>((r) => setTimeout(() => r(null), 2000))]);
        opened.abort();
        throw root ?? error;
      }
    }
    try {
      await streamInto({ ...opened, plaintext }, plan.sink(), [watcher, ...(plan.transform ? [plan.transform()] : [])]);
      // A sink done early (pg_restore --list, tar at its end record) leaves the rest still flowing through the watcher.
      if (!watcher.readableEnded) await new Promise((settle) => (watcher.once('end', settle), watcher.once('close', settle)));
    } finally {
      log.endProgress();
    }
    return { text: watcher.tailText(), bytes: watcher.bytes };
  }
}

/**
 * Undoes a failed restore and returns the error to throw: with the plan's word on what the
 * target is now when the undo succeeded and the plan can tell, else with what is left to clean.
 */
async function undoAfter(plan: Plan, error: unknown, log: Log): Promise<unknown> {
  const undone = await (plan.undo?.() ?? Promise.resolve()).then(
    () => true,
    (undoError: Error) => {
      log.warn(`could not undo the partial restore into ${plan.destination}: ${undoError.message}`);
      return false;
    },
  );
  const outcome = plan.outcome?.(error, undone);
  if (!outcome) return error;
  const hint = error instanceof ColdsealError && error.hint ? error.hint : 'Read the message, fix the cause and run again';
  return new ColdsealError(error instanceof ColdsealError ? error.exitCode : EXIT.FAILURE, error instanceof Error ? error.message : String(error), `${outcome}. ${hint}`, { cause: error });
}

/** Reads the last `bytes` bytes of a file (the trailer of a file a child wrote). */
async function readTail(file: FileHandle, size: number, bytes = 4096): Promise<Buffer> {
  const length = Math.min(size, bytes);
  const buffer = Buffer.alloc(length);
  await file.read(buffer, 0, length, size - length);
  return buffer;
}

function trailerOf(artifact: Artifact): string | undefined {
  return /trailer "(.*)" present/.exec(artifact.completion.detail)?.[1];
}

function truncated(artifact: Artifact, marker: string): ColdsealError {
  return new ColdsealError(EXIT.INTEGRITY, `completion check failed: the decrypted ${artifact.name} does not end with "${marker}" although the manifest says it did: the dump is truncated`, 'Restore an older backup');
}

function chooseArtifact(manifest: Manifest, name: string | undefined, target: RestoreTarget): Artifact {
  const engine = manifest.engine.kind;
  const mismatch = (want: string) =>
    new ColdsealError(EXIT.USAGE, `this is a ${engine} backup (source ${manifest.source}); it cannot be restored into ${want}`, engine === 'files' ? 'Restore it with --directory DIR or --output FILE' : `Restore it with --target ${engine === 'postgres' ? 'postgres' : 'mysql'}://… or --output FILE`);
  switch (target.kind) {
    case 'postgres':
      if (engine !== 'postgres') throw mismatch('PostgreSQL');
      return pickArtifact(manifest, name, (a) => a.kind === 'database');
    case 'mysql':
      if (engine !== 'mysql') throw mismatch('MySQL/MariaDB');
      return pickArtifact(manifest, name);
    case 'directory':
      if (engine !== 'files') throw mismatch('a directory');
      return pickArtifact(manifest, name);
    case 'list': {
      const artifact = pickArtifact(manifest, name, (a) => a.contentFormat === 'pg-custom');
      if (artifact.contentFormat !== 'pg-custom') throw new ColdsealError(EXIT.USAGE, `--list reads pg_dump custom archives; ${artifact.name} is ${artifact.contentFormat}`, 'Use --output FILE to look at it');
      return artifact;
    }
    case 'file':
      return pickArtifact(manifest, name);
  }
}

/** The target's plan: does it exist, and may we replace it? (Asked before the long read.) */
function planTarget(request: RestoreRequest, manifest: Manifest, artifact: Artifact, buffers: PartBufferPool): Promise<Plan> {
  const context: TargetContext = {
    manifest,
    artifact,
    safety: request.safety,
    confirmReplace: (what) => confirmReplace(request, what),
    readHeadAhead: (conn) => readHeadAhead(request, manifest, artifact, conn, buffers),
  };
  const target = request.target;
  switch (target.kind) {
    case 'postgres':
      return planPostgres(context, target);
    case 'mysql':
      return planMysql(context, target);
    case 'directory':
      return planDirectory(context, target);
    case 'file':
      return planFile(context, target);
    case 'list':
      return planList(artifact);
  }
}

async function confirmReplace(request: RestoreRequest, what: string): Promise<void> {
  if (request.yes) return;
  const ok = await request.confirm(`${what} Continue? [y/N] `);
  if (!ok) throw new ColdsealError(EXIT.REFUSED, `restore not confirmed: ${what.replace(/\.$/, '')}`, 'Nothing was changed. Pass --yes to proceed without the question (a safety dump is still taken)');
}

/** Throttled progress lines for the ciphertext read. */
export function progress(log: Log, label: string): (bytes: number) => void {
  const start = Date.now();
  let last = 0;
  return (bytes) => {
    const now = Date.now();
    if (now - last < 500) return;
    last = now;
    log.progress({ label, bytes, elapsedSeconds: (now - start) / 1000 });
  };
}

/**
 * Streams plaintext into a sink, wiring failures both ways. The first failure wins the report: an
 * integrity failure kills the sink; a sink failure stops the read. A sink that is done before the
 * end (pg_restore --list reads only the table of contents; tar stops at its end-of-archive record)
 * is a success, and the rest of the object is still read, hashed and decrypted to the end: every
 * pass proves the whole object.
 */
export async function streamInto(opened: OpenedPlaintext, sink: Sink, transforms: readonly Transform[] = []): Promise<void> {
  const head = transforms.reduce<Readable>((from, to) => from.pipe(to), opened.plaintext);
  head.pipe(sink.input);
  await settle(opened, sink, () => {
    head.unpipe(sink.input);
    head.resume();
  });
}

/** Waits for the read and the sink, wiring failures both ways (the first failure is reported). */
async function settle(opened: OpenedPlaintext, sink: Sink, onSinkDone?: () => void): Promise<void> {
  let first: unknown;
  const read = opened.finished.catch((error: unknown) => {
    first ??= error;
    sink.kill();
    throw error;
  });
  const written = sink.done.then(
    () => onSinkDone?.(),
    async (error: unknown) => {
      // A sink fed directly by zstd sees a damaged read as its input ending: the read's verdict,
      // which follows at once, is the root cause.
      const root = await Promise.race([opened.finished.then(() => null, (failure: unknown) => failure), new Promise<null>((r) => setTimeout(() => r(null), 2000))]);
      first ??= root instanceof ColdsealError && root.exitCode === EXIT.INTEGRITY ? root : error;
      opened.abort();
      throw error;
    },
  );
  const results = await Promise.allSettled([read, written]);
  if (results.some((r) => r.status === 'rejected')) throw first;
}

/**
 * The database-level statements of a new database's archive, from a read of its first parts only
 * (checked like any read): the real pass can then go from zstd straight into pg_restore. Undefined
 * when the head does not tell (a table of contents longer than those parts, or damage: the real
 * pass reads the head from its own stream and reports what is wrong).
 */
async function readHeadAhead(request: RestoreRequest, manifest: Manifest, artifact: Artifact, conn: PgConnection, buffers: PartBufferPool): Promise<DatabaseScript | undefined> {
  let opened: OpenedPlaintext | undefined;
  try {
    opened = await openPlaintext({ s3: request.clients.s3, bucket: request.bucket, manifest, artifact, key: request.key, maxParts: HEAD_PARTS, buffers });
    const head = await readArchiveHead(conn, opened.plaintext);
    head.plaintext.destroy();
    return head.database;
  } catch {
    return undefined;
  } finally {
    opened?.abort();
    await opened?.finished.catch(() => undefined);
  }
}

/** Parts read ahead for a table of contents: at least 16 MiB of ciphertext. */
const HEAD_PARTS = 2;

/** A sink that keeps only the last few KiB (for a trailer check); killing it settles it. */
export function discardSink(): { sink: Sink; tail: TailWatcher } {
  const tail = new TailWatcher();
  const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  tail.pipe(discard);
  let killed!: (error: Error) => void;
  const done = new Promise<void>((resolvePromise, reject) => {
    discard.once('finish', () => resolvePromise());
    killed = reject;
  });
  done.catch(() => undefined);
  return {
    tail,
    sink: {
      input: tail,
      done,
      kill: () => {
        tail.destroy();
        killed(new ColdsealError(EXIT.FAILURE, 'stopped'));
      },
    },
  };
}
