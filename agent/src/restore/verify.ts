import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, GetObjectRetentionCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PartBufferPool, PartReader, PartReadError } from '../../../runtime/part-reader';
import { s3PartFetcher } from '../../../runtime/s3-part-fetcher';
import { segmentKey } from '../../../format/layout';
import { artifactObjects, objectLabel, type ArtifactObject } from '../../../format/ranges';
import { unreadableMessage, whyUnreadable } from '../../../runtime/s3-presence';
import { judgeBackup, sameKeyIds, type BackupJudgement, type Judged, type JudgementInput, type ObjectFacts } from '../../../format/backup-judgement';
import type { AgentConfig } from '../../../format/agent-config';
import type { Artifact, DrillTimings, Inventory, Manifest } from '../../../format/manifest';
import { messageRecipientKeyIds, type PrivateKey, type PublicKey } from '../../../runtime/pgp';
import type { AgentClients } from '../aws';
import { ColdsealError, describeError, EXIT } from '../errors';
import { compareInventories } from '../inventory/fingerprint';
import { mysqlInventory } from '../inventory/mysql';
import type { MysqlConnection } from '../db/mysql';
import { pgInventoryNow } from '../inventory/postgres';
import type { PgConnection } from '../db/postgres';
import type { Log } from '../log';
import { TailWatcher } from '../pipeline/streams';
import { openPlaintext } from './plaintext';
import { discardSink, progress, streamInto } from './restore';
import { loadVerifiedManifest } from './select';
import { mysqlDropDatabase } from '../db/mysql';
import { pgCreateDatabase, pgDropDatabase } from '../db/postgres';
import type { Sink } from '../pipeline/sink';
import { tarExtractSink } from './targets/directory';
import { mysqlRestoreSink } from './targets/mysql';
import { pgRestoreSink } from './targets/postgres';
import { MysqlDumpRenamer } from './mysql-rename';
import { StageClock } from './stage-clock';

/**
 * `coldseal verify` and the checks of `coldseal drill`. Without a key: the manifest's signature
 * and location, completion, each ciphertext's presence and size, its addressees (from the PKESK
 * packets at its head) against the manifest and the configured recipients, and its SHA-256 (whole
 * and per part) by reading it. With a key (--deep): decrypt and test-restore into a scratch
 * database created for the purpose and dropped after, and compare per-table row counts and the
 * schema fingerprint with what the manifest recorded at backup time. The scratch copy is ours and
 * thrown away, so deep verification is one pass: the checksum verdict comes at its end.
 */
export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** Not run (nothing to compare, or this reader cannot see the evidence): neither proof nor failure. */
  readonly skipped?: boolean;
  /** Passes with a reservation worth a look (a tolerated dump exit status, content archived unread); ok stays true. */
  readonly warn?: boolean;
}

export interface ArtifactVerification {
  readonly artifact: string;
  readonly key: string;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly checks: Check[];
  /** Where a test restore (--deep, drills) spent its time; absent without one. */
  readonly timings?: DrillTimings;
}

export interface BackupVerification {
  readonly manifestKey: string;
  readonly group?: string;
  readonly host?: string;
  readonly source?: string;
  readonly stamp?: string;
  readonly ok: boolean;
  readonly checks: Check[];
  readonly artifacts: ArtifactVerification[];
}

export interface ScratchServers {
  readonly postgres?: PgConnection;
  readonly mysql?: MysqlConnection;
}

export interface VerifyOptions {
  readonly clients: AgentClients;
  readonly bucket: string;
  readonly log: Log;
  readonly trusted: readonly PublicKey[];
  /** Key ids the configuration says every backup must be addressed to (when known here). */
  readonly expectedRecipientKeyIds?: readonly string[];
  /**
   * Whether this is its source's newest backup (default true): only the newest is held to the
   * recipients configured today; an older one keeps the keys of its time, as its manifest says.
   */
  readonly newest?: boolean;
  /** The Object Lock the configuration sets per tier: where set, each object must hold it for its term. */
  readonly objectLock?: AgentConfig['objectLock'];
  readonly now?: Date;
  readonly deep?: { readonly key: PrivateKey; readonly scratch: ScratchServers };
}

const pass = (name: string, detail: string): Check => ({ name, ok: true, detail });
const fail = (name: string, detail: string): Check => ({ name, ok: false, detail });
const skip = (name: string, detail: string): Check => ({ name, ok: true, skipped: true, detail });
const warn = (name: string, detail: string): Check => ({ name, ok: true, warn: true, detail });

/** PKESK packets are ~90 bytes each for cv25519; 4 KiB covers dozens of recipients. */
const HEAD_BYTES = 4096;

export async function verifyBackup(manifestKey: string, options: VerifyOptions): Promise<BackupVerification> {
  const { clients, bucket } = options;
  let manifest: Manifest;
  try {
    const loaded = await loadVerifiedManifest(clients.s3, bucket, manifestKey, options.trusted);
    manifest = loaded.manifest;
  } catch (error) {
    return { manifestKey, ok: false, checks: [fail('signature', describeError(error))], artifacts: [] };
  }
  // The judgement (format/backup-judgement.ts) is the verifier Lambda's too: first on the heads,
  // which says what can be read; then with the addressees read from those messages.
  const seen = await headObjects(manifest, options);
  const expected = options.expectedRecipientKeyIds;
  const tierLock = options.objectLock?.[manifest.tier];
  const input: JudgementInput = {
    manifest,
    manifestKey,
    objects: seen.objects,
    recipients: expected ? { configured: expected, newest: options.newest ?? true } : undefined,
    lock: tierLock ? { days: tierLock.days } : undefined,
    now: options.now ?? new Date(),
  };
  const messages = new Map<string, readonly string[] | { error: string }>();
  for (const artifact of judgeBackup(input).readable) {
    if (seen.unreadable.has(artifact.key)) continue;
    try {
      const range = await clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: artifact.key, Range: `bytes=0-${HEAD_BYTES - 1}` }));
      messages.set(artifact.key, await messageRecipientKeyIds(await range.Body!.transformToByteArray()));
    } catch (error) {
      messages.set(artifact.key, { error: (error as Error).message });
    }
  }
  const judgement = judgeBackup({ ...input, messages });

  const checks: Check[] = [pass('signature', `signed by ${manifest.signingKeyFingerprint}, location matches`)];
  for (const item of judgement.items) {
    if (item.check !== 'recipients') continue;
    const configured = item.configured.join(', ');
    if (item.verdict === 'fail') checks.push(fail('recipients', `addressed to ${item.manifestIds.join(', ')} but the configured recipients are ${configured}`));
    else if (sameKeyIds(item.manifestIds, item.configured)) checks.push(pass('recipients', `addressed to the configured recipients (${configured})`));
    else checks.push(pass('recipients', `addressed to ${item.manifestIds.join(', ')}, as its signed manifest says; the configured recipients are now ${configured} (only the newest backup is held to them)`));
  }
  const artifacts: ArtifactVerification[] = [];
  // One set of part buffers for every artifact read, not one each.
  const buffers = new PartBufferPool();
  for (const artifact of manifest.artifacts) {
    const started = Date.now();
    let timings: DrillTimings | undefined;
    const artifactChecks = await verifyArtifact(manifest, artifact, judgement, seen.unreadable.get(artifact.key), options, buffers, (t) => (timings = t));
    artifacts.push({ artifact: artifact.name, key: artifact.key, ok: artifactChecks.every((c) => c.ok), durationMs: Date.now() - started, checks: artifactChecks, ...(timings ? { timings } : {}) });
  }
  return {
    manifestKey,
    group: manifest.group,
    host: manifest.host,
    source: manifest.source,
    stamp: manifest.stamp,
    ok: checks.every((c) => c.ok) && artifacts.every((a) => a.ok),
    checks,
    artifacts,
  };
}

/**
 * HEAD of every object the manifest names, and of the segment after each artifact's last (a HEAD,
 * not a LIST: readers may lack s3:ListBucket, and then a missing key answers 403, not 404). An
 * object that cannot be read (other than missing) makes its artifact unreadable, with the reason.
 */
async function headObjects(manifest: Manifest, options: VerifyOptions): Promise<{ objects: Map<string, ObjectFacts | null>; unreadable: Map<string, string> }> {
  const { clients, bucket } = options;
  const lockExpected = options.objectLock?.[manifest.tier] !== undefined;
  const objects = new Map<string, ObjectFacts | null>();
  const unreadable = new Map<string, string>();
  for (const artifact of manifest.artifacts) {
    let listed: ArtifactObject[];
    try {
      listed = artifactObjects(artifact);
    } catch {
      continue; // the judgement says why
    }
    for (const key of [...listed.map((o) => o.key), segmentKey(artifact.key, listed.length + 1)]) {
      const extra = !listed.some((o) => o.key === key);
      try {
        const head = await clients.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        const lock = head.ObjectLockMode && head.ObjectLockRetainUntilDate ? { mode: head.ObjectLockMode, until: head.ObjectLockRetainUntilDate } : lockExpected && !extra ? await retentionOf(clients.s3, bucket, key) : null;
        objects.set(key, { size: head.ContentLength ?? 0, storageClass: head.StorageClass ?? 'STANDARD', lastModified: head.LastModified ?? new Date(0), restore: head.Restore, lock });
      } catch (error) {
        if (extra) {
          objects.set(key, null);
          continue;
        }
        // A 403 may be a missing object for a reader without s3:ListBucket (runtime/s3-presence.ts).
        const why = await whyUnreadable(clients.s3, bucket, key, error);
        if (why === 'missing') objects.set(key, null);
        else if (!unreadable.has(artifact.key)) {
          const label = objectLabel(`s3://${bucket}/${key}`, listed.find((o) => o.key === key)!.segment, listed.length);
          unreadable.set(artifact.key, why ? unreadableMessage(why, label) : `cannot read ${label}: ${(error as Error).message}`);
        }
      }
    }
  }
  return { objects, unreadable };
}

/**
 * A HEAD shows no retention to a reader without s3:GetObjectRetention
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, x-amz-object-lock-mode):
 * ask for it, so that "no lock" and "not allowed to see it" differ. Access denied: unknown;
 * anything else (NoSuchObjectLockConfiguration, https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectRetention.html): none.
 */
async function retentionOf(s3: S3Client, bucket: string, key: string): Promise<ObjectFacts['lock']> {
  try {
    const { Retention } = await s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key }));
    return Retention?.Mode && Retention.RetainUntilDate ? { mode: Retention.Mode, until: Retention.RetainUntilDate } : null;
  } catch (error) {
    const name = (error as { name?: string }).name;
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    return name === 'AccessDenied' || status === 403 ? undefined : null;
  }
}

/** The agent's words for the judgement of one artifact, then its own checks: the checksum read, or --deep's test restore. */
async function verifyArtifact(manifest: Manifest, artifact: Artifact, judgement: BackupJudgement, unreadable: string | undefined, options: VerifyOptions, buffers: PartBufferPool, onTimings?: (timings: DrillTimings) => void): Promise<Check[]> {
  const { bucket } = options;
  const s3Url = (key: string) => `s3://${bucket}/${key}`;
  const where = s3Url(artifact.key);
  const mine = judgement.items.filter((i): i is Extract<Judged, { artifact: Artifact }> => 'artifact' in i && i.artifact === artifact);
  const checks: Check[] = [];

  const exit = mine.find((i) => i.check === 'dump-exit-status');
  const marker = mine.find((i) => i.check === 'completion-marker');
  const warnings = artifact.warnings.length ? ` (warnings: ${artifact.warnings.join('; ')})` : '';
  if (exit?.verdict === 'fail') checks.push(fail('completion', `${artifact.tool.name} exited with status ${artifact.exitCode}`));
  else if (marker?.verdict === 'fail') checks.push(fail('completion', `no ${artifact.completion.method} completion marker recorded: the dump may be cut short`));
  else if (exit?.verdict === 'warn') checks.push(warn('completion', `${artifact.completion.detail}: ${artifact.tool.name} exited with status ${artifact.exitCode}, tolerated${warnings}`));
  else checks.push(pass('completion', `${artifact.completion.detail}${warnings}`));

  if (unreadable) {
    checks.push(fail('object', unreadable));
    return checks;
  }
  // Every object (each segment of a segmented artifact) present at its recorded size; none extra.
  const segments = mine.find((i) => i.check === 'segments');
  const objectProblem = mine.find((i) => i.check === 'ciphertext-missing' || i.check === 'ciphertext-size' || i.check === 'extra-segment' || (i.check === 'segments' && i.verdict === 'fail'));
  if (objectProblem?.check === 'segments') checks.push(fail('object', objectProblem.problem ?? 'the segment list does not describe the ciphertext'));
  else if (objectProblem?.check === 'ciphertext-missing') {
    const count = segments?.check === 'segments' ? segments.objects.length : 1;
    checks.push(fail('object', unreadableMessage('missing', objectLabel(s3Url(objectProblem.key), objectProblem.object.segment, count))));
  }
  else if (objectProblem?.check === 'ciphertext-size') checks.push(fail('object', `${s3Url(objectProblem.key)} is ${objectProblem.size} bytes, the manifest says ${objectProblem.object.bytes}`));
  else if (objectProblem?.check === 'extra-segment') checks.push(fail('object', `${s3Url(segmentKey(artifact.key, objectProblem.segment))} exists, but the signed manifest lists ${objectProblem.listed} segment(s)`));
  else if (segments?.check === 'segments') checks.push(pass('object', `${artifact.ciphertextBytes} bytes, as recorded${segments.objects.length > 1 ? ` (${segments.objects.length} segments)` : ''}`));

  const locks = mine.filter((i): i is Extract<Judged, { check: 'object-lock' }> => i.check === 'object-lock');
  const lockFailed = locks.find((i) => i.verdict === 'fail');
  const lockUnknown = locks.find((i) => i.verdict === 'skip');
  const days = options.objectLock?.[manifest.tier]?.days;
  if (lockFailed) {
    checks.push(fail('object-lock', lockFailed.state === 'ended' ? `${s3Url(lockFailed.key)} Object Lock retention ended ${lockFailed.lock?.until.toISOString()}, before the tier's ${days} days` : `${s3Url(lockFailed.key)} has no Object Lock retention: it can be deleted or overwritten`));
  } else if (lockUnknown) {
    checks.push(skip('object-lock', `cannot see the Object Lock retention of ${s3Url(lockUnknown.key)}: S3 shows it only to readers allowed s3:GetObjectRetention`));
  } else if (locks.length) {
    const held = locks.find((i) => i.state === 'held' && i.lock);
    checks.push(pass('object-lock', held?.lock ? `locked (${held.lock.mode}) until ${held.lock.until.toISOString()}` : `past the tier's ${days}-day lock`));
  }
  if (objectProblem) return checks;

  const archived = mine.find((i) => i.check === 'archived');
  if (archived?.check === 'archived') {
    checks.push(warn('checksum', `archived in ${archived.storageClass}: the content cannot be read without a retrieval (coldseal restore --retrieval-tier …)`));
    return checks;
  }

  // Addressees from the PKESK packets at the head of the message.
  const message = mine.find((i) => i.check === 'message-recipients' || i.check === 'not-openpgp');
  if (message?.check === 'not-openpgp') checks.push(fail('message-recipients', `${where} does not start like an OpenPGP message to public keys: ${message.error}`));
  else if (message?.check === 'message-recipients') {
    const ids = message.messageIds.join(', ');
    checks.push(message.verdict === 'pass' ? pass('message-recipients', `message addressed to ${ids}, as the manifest says`) : fail('message-recipients', `message addressed to ${ids}, the manifest says ${message.manifestIds.join(', ')}`));
  }

  if (options.deep) {
    checks.push(...(await deepCheck(manifest, artifact, options, buffers, onTimings)));
  } else {
    checks.push(await checksumCheck(options.clients.s3, bucket, artifact, options.log, buffers));
  }
  return checks;
}

/** Reads the object through the PartReader: each part's SHA-256, the size and the whole SHA-256 against the manifest. */
async function checksumCheck(s3: S3Client, bucket: string, artifact: Artifact, log: Log, buffers: PartBufferPool): Promise<Check> {
  let reader: PartReader;
  try {
    reader = new PartReader({ artifact, fetch: s3PartFetcher(s3, bucket), onProgress: progress(log, `checksum ${artifact.name}`), buffers });
  } catch (error) {
    return fail('checksum', (error as Error).message);
  }
  try {
    for await (const part of reader) void part;
    return pass('checksum', `SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}… and ${reader.parts.length} part checksum(s) match`);
  } catch (error) {
    if (error instanceof PartReadError && error.failure === 'part-checksum') return fail('checksum', `SHA-256 is ${error.actual}, the manifest says ${error.part!.sha256} (part ${error.part!.index} of ${reader.parts.length})`);
    if (error instanceof PartReadError && error.failure === 'checksum') return fail('checksum', `SHA-256 is ${error.actual}, the manifest says ${artifact.ciphertextSha256}`);
    return fail('checksum', `reading s3://${bucket}/${artifact.key} failed: ${(error as Error).message}`);
  } finally {
    log.endProgress();
  }
}

function scratchName(): string {
  return `coldseal_scratch_${randomBytes(5).toString('hex')}`;
}

async function deepCheck(manifest: Manifest, artifact: Artifact, options: VerifyOptions, buffers: PartBufferPool, onTimings?: (timings: DrillTimings) => void): Promise<Check[]> {
  const { clients, bucket, log } = options;
  const deep = options.deep!;
  const checks: Check[] = [];
  let sink: Sink;
  let after: () => Promise<Check[]>;
  let cleanup: () => Promise<void> = async () => {};
  let transform;
  let tail: TailWatcher | undefined;
  const engine = manifest.engine.kind;

  if (artifact.contentFormat === 'pg-custom') {
    const conn = deep.scratch.postgres;
    if (!conn) return [fail('restore', 'no scratch PostgreSQL server to test-restore into: configure a postgres source on this host or pass --scratch-postgres URL')];
    const database = scratchName();
    await pgCreateDatabase(conn, database);
    cleanup = () => pgDropDatabase(conn, database);
    sink = pgRestoreSink(conn, database, { clean: false, noOwner: true });
    after = async () => compareWith(artifact.inventory, await pgInventoryNow({ ...conn, env: { ...conn.env, PGDATABASE: database } }));
  } else if (artifact.contentFormat === 'sql' && engine === 'mysql') {
    const conn = deep.scratch.mysql;
    if (!conn) return [fail('restore', 'no scratch MySQL/MariaDB server to test-restore into: configure a mysql source on this host or pass --scratch-mysql URL')];
    const database = scratchName();
    cleanup = () => mysqlDropDatabase(conn, database);
    sink = mysqlRestoreSink(conn, database);
    transform = new MysqlDumpRenamer(artifact.name, database);
    after = async () => compareWith(artifact.inventory, await mysqlInventory(conn, database, 'snapshot'));
  } else if (artifact.contentFormat === 'tar') {
    const dir = await mkdtemp(join(tmpdir(), 'coldseal-verify-'));
    cleanup = () => rm(dir, { recursive: true, force: true });
    sink = tarExtractSink(dir);
    after = async () => {
      const counted = await countEntries(dir);
      return [pass('files', `${counted.files} files and ${counted.directories} directories extracted`)];
    };
  } else {
    // SQL text we do not run into a server (pg_dumpall globals): decrypt, decompress, check its trailer.
    ({ sink, tail } = discardSink());
    const marker = /trailer "(.*)" present/.exec(artifact.completion.detail)?.[1];
    after = async () => (marker ? [tail!.tailText().includes(marker) ? pass('trailer', `ends with "${marker}"`) : fail('trailer', `does not end with "${marker}": truncated`)] : []);
  }

  try {
    let opened;
    const clock = new StageClock();
    const streamStart = Date.now();
    try {
      opened = await openPlaintext({ s3: clients.s3, bucket, manifest, artifact, key: deep.key, onProgress: progress(log, `test-restoring ${artifact.name}`), buffers });
    } catch (error) {
      // Refused at its first part: the sink never gets a byte, so stop it.
      sink.kill();
      await sink.done.catch(() => undefined);
      throw error;
    }
    try {
      await streamInto(opened, sink, [...(transform ? [transform] : []), clock]);
    } finally {
      log.endProgress();
    }
    const streamEnd = Date.now();
    checks.push(pass('checksum', `SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}… matches`));
    checks.push(pass('decrypt', 'decrypted (OpenPGP integrity code ok) and decompressed'));
    checks.push(pass('restore', tail ? 'read to the end' : `restored into a scratch ${artifact.contentFormat === 'tar' ? 'directory' : 'database'}`));
    const checksStart = Date.now();
    checks.push(...(await after()));
    // The read (GETs, part checks, decryption, decompression) is one pipe: the time the loader waited on it is
    // downloadMs, and decryption is not timed apart from it (that would need clocks inside the pipe); the rest,
    // the loader holding the stream back and finishing after the last byte (indexes, constraints), is loadMs.
    const readMs = Math.max(0, (clock.lastChunkAt ?? streamEnd) - streamStart - clock.blockedMs);
    onTimings?.({ downloadMs: readMs, decryptMs: null, loadMs: Math.max(0, streamEnd - streamStart - readMs), checksMs: Date.now() - checksStart, ciphertextBytes: artifact.ciphertextBytes });
  } catch (error) {
    const message = describeError(error);
    const failedCheck = error instanceof ColdsealError && error.exitCode === EXIT.INTEGRITY ? /^(\w+) check failed/.exec(error.message)?.[1] : undefined;
    if (failedCheck) checks.push(fail(failedCheck === 'decryption' || failedCheck === 'decompression' || failedCheck === 'format' ? 'decrypt' : failedCheck, message));
    else {
      checks.push(fail('restore', message));
      // The restore stopped before the end of the object: was the object damaged, or the restore at fault?
      checks.push(await checksumCheck(clients.s3, bucket, artifact, log, buffers));
    }
  } finally {
    await cleanup().catch((error: Error) => log.warn(`could not remove the scratch copy: ${error.message}`));
  }
  return checks;
}

function compareWith(recorded: Inventory | undefined, restored: Inventory): Check[] {
  if (!recorded) return [skip('row-counts', 'the manifest has no inventory (backed up by an agent that did not record one)')];
  const comparison = compareInventories(recorded, restored);
  return [
    { name: 'row-counts', ...comparison.rowCounts },
    { name: 'schema', ...comparison.schema },
  ];
}

async function countEntries(dir: string, counted = { files: 0, directories: 0 }): Promise<{ files: number; directories: number }> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      counted.directories++;
      await countEntries(join(dir, entry.name), counted);
    } else counted.files++;
  }
  return counted;
}
