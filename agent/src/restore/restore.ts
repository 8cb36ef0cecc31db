import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type Readable, Transform, Writable } from 'node:stream';
import type { Artifact, Manifest } from '../../../format/manifest';
import type { PrivateKey, PublicKey } from '../../../format/pgp';
import { artifactObjects } from '../../../format/ranges';
import type { AgentClients } from '../aws';
import { ColdsealError, EXIT } from '../errors';
import { formatBytes, type Log } from '../log';
import { TailWatcher } from '../pipeline/streams';
import { ensureReadable, s3ArchiveClient, type ArchiveClient, type ArchivePolicy } from './archive';
import { readArchiveHead, pgCreateDatabaseAs } from './pg-database';
import { prepareSafetyDir, writeSafetyDump, type SafetyDump, type SafetyDumpPolicy } from './safety-dump';
import { openPlaintext, type ObjectPin, type OpenedPlaintext } from './plaintext';
import { loadVerifiedManifest, pickArtifact, resolveManifestKey, type BackupSelector } from './select';
import {
  MysqlDatabaseRenamer,
  mysqlDatabaseExists,
  mysqlRestoreSink,
  mysqlSafetyDumpRun,
  pgCreateSchemas,
  pgDatabaseExists,
  pgDropDatabase,
  pgSelectedSchemas,
  pgListSink,
  pgRestoreSink,
  pgSafetyDumpRun,
  psqlScriptSink,
  tarExtractSink,
  type MysqlTarget,
  type PgTarget,
  type Sink,
} from './targets';

/**
 * `coldseal restore`, as a function.
 *
 * One pass where the target can be left as it was on failure: the PartReader checks every part of
 * the object against the signed manifest before its bytes reach decryption, so a changed byte
 * never reaches the target; the checks that only a whole read can make (whole SHA-256, OpenPGP
 * MDC, decompressor, completion trailer) settle at the end, and a failure then undoes the restore:
 * - a new PostgreSQL database is dropped;
 * - an existing PostgreSQL database is protected by pg_restore's single transaction (rolled back);
 * - a file (--output) is written beside its name and renamed into place only after every check.
 * MySQL/MariaDB, directories and pg_dumpall globals (SQL run outside any single transaction) are
 * still proved by a first pass, and pass 2 reads the very same object version (pinned ETag).
 */
export type RestoreTarget =
  | { kind: 'postgres'; target: PgTarget; tables?: readonly string[]; schemas?: readonly string[]; noOwner?: boolean }
  | { kind: 'mysql'; target: MysqlTarget }
  | { kind: 'directory'; path: string }
  | { kind: 'file'; path: string }
  | { kind: 'list' };

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
  const { clients, bucket, log, target } = request;
  const { key: manifestKey } = await resolveManifestKey(clients.s3, bucket, request.selector);
  const { manifest, signer } = await loadVerifiedManifest(clients.s3, bucket, manifestKey, request.trusted);
  log.info(`manifest signature ok (signed by ${signer})`, { manifest: `s3://${bucket}/${manifestKey}` });
  const artifact = chooseArtifact(manifest, request.artifact, target);
  // Every segment of the artifact must be readable (a retrieval per archived object).
  await ensureReadable(request.archiveClient ?? s3ArchiveClient(clients.s3, bucket), artifactObjects(artifact).map((o) => o.key), request.archive, log);

  // The target: does it exist, and may we replace it? (Asked before the long verification pass.)
  const plan = await planTarget(request, manifest, artifact);
  // A safety dump that cannot be written is known now, not after the long verification pass.
  if (plan.safety) await prepareSafetyDir(request.safety.dir);

  let checked: VerifyPassResult | undefined;
  if (!plan.onePass) {
    // Pass 1: prove the object before anything is written anywhere.
    checked = await verifyPass({ ...request, manifest, artifact, label: `checking ${artifact.name}` });
    log.info(`checks passed: size, SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}…, recipients, OpenPGP integrity, decompression${checked.marker ? ', completion trailer' : ''}`, { plaintextBytes: checked.plaintextBytes });
  }

  // Opening reads and checks the first part (size, addressees) before the target is touched.
  const opened = await openPlaintext({ s3: clients.s3, bucket, manifest, artifact, key: request.key, pin: checked?.pin, onProgress: progress(log, `${plan.onePass ? 'restoring' : 'restoring (pass 2)'} ${artifact.name}`) });
  log.debug(`decrypting with ${opened.decryptedBy}`);
  let safetyDump: SafetyDump | undefined;
  try {
    if (plan.safety) {
      safetyDump = await plan.safety();
      log.info(`safety dump of the current ${plan.destination} written to ${safetyDump.path} (${formatBytes(safetyDump.bytes)}, ${safetyDump.encrypted ? 'encrypted to the recipients' : 'PLAINTEXT'}, mode 0600; coldseal never deletes it)`, { safetyDump: safetyDump.path, bytes: safetyDump.bytes, encrypted: safetyDump.encrypted });
    }
    await plan.prepare?.();
  } catch (error) {
    opened.abort();
    throw error;
  }

  const tail = new TailWatcher();
  // A first pass has checked the trailer already; one pass checks it here, before the file is renamed.
  const marker = plan.onePass ? trailerOf(artifact) : undefined;
  try {
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
      await streamInto({ ...opened, plaintext }, plan.sink(), [tail, ...(plan.transform ? [plan.transform()] : [])]);
    } finally {
      log.endProgress();
    }
    if (marker && !tail.tailText().includes(marker)) throw truncated(artifact, marker);
    await plan.finish?.();
  } catch (error) {
    await plan.undo?.().catch((undoError: Error) => log.warn(`could not undo the partial restore into ${plan.destination}: ${undoError.message}`));
    throw error;
  }
  if (plan.onePass) log.info(`checks passed: every part's SHA-256, the whole SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}…, recipients, OpenPGP integrity, decompression${marker ? ', completion trailer' : ''}`, { plaintextBytes: tail.bytes });
  return { manifestKey, manifest, artifact, destination: plan.destination, safetyDump, listing: plan.listing?.(), plaintextBytes: checked?.plaintextBytes ?? tail.bytes };
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

interface Plan {
  readonly destination: string;
  /** Whether a failure found at the end can still be undone (else pass 1 proves the object first). */
  readonly onePass?: boolean;
  /** Runs once the plaintext's head is available (before the sink starts); returns the plaintext, whole. */
  readonly fromHead?: (plaintext: Readable) => Promise<Readable>;
  /** Undoes a failed restore (drops a database created for it, removes a partial file). */
  readonly undo?: () => Promise<void>;
  readonly safety?: () => Promise<SafetyDump>;
  readonly prepare?: () => Promise<void>;
  readonly sink: () => Sink;
  readonly transform?: () => Transform;
  readonly finish?: () => Promise<void>;
  readonly listing?: () => string;
}

async function confirmReplace(request: RestoreRequest, what: string): Promise<void> {
  if (request.yes) return;
  const ok = await request.confirm(`${what} Continue? [y/N] `);
  if (!ok) throw new ColdsealError(EXIT.REFUSED, `restore not confirmed: ${what.replace(/\.$/, '')}`, 'Nothing was changed. Pass --yes to proceed without the question (a safety dump is still taken)');
}

async function planTarget(request: RestoreRequest, manifest: Manifest, artifact: Artifact): Promise<Plan> {
  const target = request.target;
  switch (target.kind) {
    case 'postgres': {
      const database = target.target.database ?? artifact.name;
      const conn = target.target.conn;
      const exists = await pgDatabaseExists(conn, database);
      const destination = `PostgreSQL database "${database}"`;
      if (artifact.kind === 'globals') {
        await confirmReplace(request, `This runs the cluster-wide roles and tablespaces of ${manifest.host} (pg_dumpall --globals-only) against the server of "${database}".`);
        // Plain SQL outside a transaction: proved by a first pass.
        return { destination, sink: () => psqlScriptSink(conn, database) };
      }
      const partial = Boolean(target.tables?.length || target.schemas?.length);
      if (exists) {
        await confirmReplace(request, `${destination} exists: ${partial ? 'the selected tables/schemas in it' : 'its objects'} will be dropped and replaced by backup ${manifest.stamp} of ${manifest.host}/${manifest.source}/${artifact.name}. A safety dump is taken first.`);
      }
      return {
        destination,
        onePass: true,
        // pg_restore runs in one transaction (--single-transaction): a failure rolls an existing database back.
        undo: exists ? undefined : () => pgDropDatabase(conn, database),
        safety: exists ? () => writeSafetyDump(pgSafetyDumpRun(conn, database), `safety dump of ${database}`, database, 'pgdump', request.safety) : undefined,
        // A new database is created as the archive describes it (read from the stream's head).
        fromHead: async (plaintext) => {
          let whole = plaintext;
          if (!exists) {
            const head = await readArchiveHead(conn, plaintext, database);
            await pgCreateDatabaseAs(conn, database, head.databaseSql, target.noOwner ?? false);
            whole = head.plaintext;
          }
          // pg_restore --schema/--table restore objects *in* a schema, not the schema itself.
          const schemas = partial ? pgSelectedSchemas(target.tables, target.schemas) : [];
          if (schemas.length) await pgCreateSchemas(conn, database, schemas);
          return whole;
        },
        sink: () => pgRestoreSink(conn, database, { clean: exists, tables: target.tables, schemas: target.schemas, noOwner: target.noOwner }),
      };
    }
    case 'mysql': {
      const database = target.target.database ?? artifact.name;
      const conn = target.target.conn;
      const exists = await mysqlDatabaseExists(conn, database);
      const destination = `MySQL database "${database}"`;
      if (exists) await confirmReplace(request, `${destination} exists: it will be dropped and replaced by backup ${manifest.stamp} of ${manifest.host}/${manifest.source}/${artifact.name}. A safety dump is taken first.`);
      return {
        destination,
        safety: exists ? () => writeSafetyDump(mysqlSafetyDumpRun(conn, database), `safety dump of ${database}`, database, 'sql', request.safety) : undefined,
        sink: () => mysqlRestoreSink(conn, database),
        transform: () => new MysqlDatabaseRenamer(artifact.name, database),
      };
    }
    case 'directory': {
      const path = resolve(target.path);
      let entries: string[] | undefined;
      try {
        entries = await readdir(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ColdsealError(EXIT.USAGE, `cannot use ${path} as the target directory: ${(error as NodeJS.ErrnoException).code}`);
      }
      if (entries?.length) await confirmReplace(request, `Directory ${path} is not empty (${entries.length} entries): files from the backup will overwrite files of the same name in it.`);
      return { destination: `directory ${path}`, prepare: () => mkdir(path, { recursive: true }).then(() => undefined), sink: () => tarExtractSink(path) };
    }
    case 'file': {
      const path = resolve(target.path);
      const exists = await stat(path).then(() => true, () => false);
      if (exists) await confirmReplace(request, `File ${path} exists and will be replaced.`);
      const partial = `${path}.coldseal-partial`;
      return {
        destination: `file ${path}`,
        onePass: true,
        undo: () => rm(partial, { force: true }),
        prepare: () => mkdir(dirname(path), { recursive: true }).then(() => undefined),
        sink: () => fileSink(partial),
        finish: () => rename(partial, path),
      };
    }
    case 'list': {
      let sink: ReturnType<typeof pgListSink> | undefined;
      return {
        destination: 'the table of contents',
        onePass: true,
        sink: () => (sink = pgListSink()),
        listing: () => sink?.stdout() ?? '',
      };
    }
  }
}

function fileSink(path: string): Sink {
  const out = createWriteStream(path, { flags: 'w', mode: 0o600 });
  const done = new Promise<void>((resolvePromise, reject) => {
    out.once('finish', () => resolvePromise());
    out.once('error', (error) => reject(new ColdsealError(EXIT.FAILURE, `writing ${path} failed: ${error.message}`)));
  });
  done.catch(() => rm(path, { force: true }));
  return { input: out, done, kill: () => out.destroy(new Error('stopped')) };
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
  let first: unknown;
  const head = transforms.reduce<Readable>((from, to) => from.pipe(to), opened.plaintext);
  head.pipe(sink.input);
  const read = opened.finished.catch((error: unknown) => {
    first ??= error;
    sink.kill();
    throw error;
  });
  const written = sink.done.then(
    () => {
      head.unpipe(sink.input);
      head.resume();
    },
    (error: unknown) => {
      first ??= error;
      opened.abort();
      throw error;
    },
  );
  const results = await Promise.allSettled([read, written]);
  if (results.some((r) => r.status === 'rejected')) throw first;
}

export interface VerifyPassResult {
  readonly pin: ObjectPin;
  readonly plaintextBytes: number;
  readonly marker?: string;
}

/** Pass 1: read, hash, decrypt and decompress; keep nothing but the verdict (and the version read). */
export async function verifyPass(args: { clients: AgentClients; bucket: string; log: Log; manifest: Manifest; artifact: Artifact; key: PrivateKey; label: string }): Promise<VerifyPassResult> {
  const opened = await openPlaintext({ s3: args.clients.s3, bucket: args.bucket, manifest: args.manifest, artifact: args.artifact, key: args.key, onProgress: progress(args.log, args.label) });
  const { sink, tail } = discardSink();
  let pin: ObjectPin;
  try {
    await streamInto(opened, sink);
    pin = await opened.finished;
  } finally {
    args.log.endProgress();
  }
  const marker = trailerOf(args.artifact);
  if (marker && !tail.tailText().includes(marker)) throw truncated(args.artifact, marker);
  args.log.debug(`verified ${formatBytes(tail.bytes)} of plaintext`);
  return { pin, plaintextBytes: tail.bytes, marker };
}

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
