import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PartBufferPool, PartReader, PartReadError } from '../../../format/part-reader';
import { s3PartFetcher } from '../../../format/s3-part-fetcher';
import { segmentKey } from '../../../format/layout';
import { artifactObjects, objectLabel, type ArtifactObject } from '../../../format/ranges';
import { unreadableMessage, whyUnreadable } from '../../../format/s3-presence';
import type { Artifact, Inventory, Manifest } from '../../../format/manifest';
import { messageRecipientKeyIds, type PrivateKey, type PublicKey } from '../../../format/pgp';
import type { AgentClients } from '../aws';
import { ARCHIVED_CLASSES } from '../catalog/catalog';
import { ColdsealError, describeError, EXIT } from '../errors';
import { compareInventories } from '../backup/inventory/fingerprint';
import { mysqlInventory } from '../backup/inventory/mysql';
import type { MysqlConnection } from '../db/mysql';
import { pgInventoryNow } from '../backup/inventory/postgres';
import type { PgConnection } from '../db/postgres';
import type { Log } from '../log';
import { TailWatcher } from '../backup/pipeline/streams';
import { openPlaintext, sameKeyIds } from './plaintext';
import { discardSink, progress, streamInto } from './restore';
import { loadVerifiedManifest } from './select';
import { MysqlDatabaseRenamer, mysqlDropDatabase, mysqlRestoreSink, pgCreateDatabase, pgDropDatabase, pgRestoreSink, tarExtractSink, type Sink } from './targets';

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
  /** Not run (archived object, nothing to compare): neither proof nor failure. */
  readonly skipped?: boolean;
}

export interface ArtifactVerification {
  readonly artifact: string;
  readonly key: string;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly checks: Check[];
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
  readonly deep?: { readonly key: PrivateKey; readonly scratch: ScratchServers };
}

const pass = (name: string, detail: string): Check => ({ name, ok: true, detail });
const fail = (name: string, detail: string): Check => ({ name, ok: false, detail });
const skip = (name: string, detail: string): Check => ({ name, ok: true, skipped: true, detail });

export async function verifyBackup(manifestKey: string, options: VerifyOptions): Promise<BackupVerification> {
  const { clients, bucket } = options;
  let manifest: Manifest;
  try {
    const loaded = await loadVerifiedManifest(clients.s3, bucket, manifestKey, options.trusted);
    manifest = loaded.manifest;
  } catch (error) {
    return { manifestKey, ok: false, checks: [fail('signature', describeError(error))], artifacts: [] };
  }
  const checks: Check[] = [pass('signature', `signed by ${manifest.signingKeyFingerprint}, location matches`)];
  const expected = options.expectedRecipientKeyIds;
  if (expected) {
    checks.push(
      sameKeyIds(expected, manifest.encryption.recipientKeyIds)
        ? pass('recipients', `addressed to the configured recipients (${expected.join(', ')})`)
        : fail('recipients', `addressed to ${manifest.encryption.recipientKeyIds.join(', ')} but the configured recipients are ${expected.join(', ')}`),
    );
  }
  const artifacts: ArtifactVerification[] = [];
  // One set of part buffers for every artifact read, not one each.
  const buffers = new PartBufferPool();
  for (const artifact of manifest.artifacts) {
    const started = Date.now();
    const artifactChecks = await verifyArtifact(manifest, artifact, options, buffers);
    artifacts.push({ artifact: artifact.name, key: artifact.key, ok: artifactChecks.every((c) => c.ok), durationMs: Date.now() - started, checks: artifactChecks });
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

async function verifyArtifact(manifest: Manifest, artifact: Artifact, options: VerifyOptions, buffers: PartBufferPool): Promise<Check[]> {
  const { clients, bucket } = options;
  const where = `s3://${bucket}/${artifact.key}`;
  const checks: Check[] = [];
  const tolerated = artifact.exitCode === 0 || artifact.warnings.length > 0;
  checks.push(tolerated ? pass('completion', `${artifact.completion.detail}${artifact.warnings.length ? ` (warnings: ${artifact.warnings.join('; ')})` : ''}`) : fail('completion', `${artifact.tool.name} exited with status ${artifact.exitCode}`));

  let objects: ArtifactObject[];
  try {
    objects = artifactObjects(artifact);
  } catch (error) {
    checks.push(fail('object', (error as Error).message));
    return checks;
  }
  // Every object (each segment of a segmented artifact) present at its recorded size; none extra.
  const archivedIn: string[] = [];
  for (const object of objects) {
    const oWhere = `s3://${bucket}/${object.key}`;
    let head;
    try {
      head = await clients.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: object.key }));
    } catch (error) {
      const why = await whyUnreadable(clients.s3, bucket, object.key, error);
      checks.push(fail('object', why ? unreadableMessage(why, objectLabel(oWhere, object.segment, objects.length)) : `cannot read ${oWhere}: ${(error as Error).message}`));
      return checks;
    }
    if (head.ContentLength !== object.bytes) {
      checks.push(fail('object', `${oWhere} is ${head.ContentLength} bytes, the manifest says ${object.bytes}`));
      return checks;
    }
    if (ARCHIVED_CLASSES.has(head.StorageClass ?? '') && !/ongoing-request="false"/.test(head.Restore ?? '')) archivedIn.push(head.StorageClass!);
  }
  // A HEAD, not a LIST: readers may lack s3:ListBucket, and then a missing key answers 403, not 404.
  const extra = segmentKey(artifact.key, objects.length + 1);
  const beyond = await clients.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: extra })).then(
    () => true,
    () => false,
  );
  if (beyond) {
    checks.push(fail('object', `s3://${bucket}/${extra} exists, but the signed manifest lists ${objects.length} segment(s)`));
    return checks;
  }
  checks.push(pass('object', `${artifact.ciphertextBytes} bytes, as recorded${objects.length > 1 ? ` (${objects.length} segments)` : ''}`));
  if (archivedIn.length) {
    checks.push(skip('checksum', `archived in ${archivedIn[0]}: the content cannot be read without a retrieval (coldseal restore --retrieval-tier …)`));
    return checks;
  }

  // Addressees from the PKESK packets at the head of the message.
  try {
    const range = await clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: artifact.key, Range: 'bytes=0-4095' }));
    const ids = await messageRecipientKeyIds(await range.Body!.transformToByteArray());
    checks.push(sameKeyIds(ids, manifest.encryption.recipientKeyIds) ? pass('message-recipients', `message addressed to ${ids.join(', ')}, as the manifest says`) : fail('message-recipients', `message addressed to ${ids.join(', ')}, the manifest says ${manifest.encryption.recipientKeyIds.join(', ')}`));
  } catch (error) {
    checks.push(fail('message-recipients', `${where} does not start like an OpenPGP message to public keys: ${(error as Error).message}`));
  }

  if (options.deep) {
    checks.push(...(await deepCheck(manifest, artifact, options, buffers)));
  } else {
    checks.push(await checksumCheck(clients.s3, bucket, artifact, options.log, buffers));
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

async function deepCheck(manifest: Manifest, artifact: Artifact, options: VerifyOptions, buffers: PartBufferPool): Promise<Check[]> {
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
    transform = new MysqlDatabaseRenamer(artifact.name, database);
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
    try {
      opened = await openPlaintext({ s3: clients.s3, bucket, manifest, artifact, key: deep.key, onProgress: progress(log, `test-restoring ${artifact.name}`), buffers });
    } catch (error) {
      // Refused at its first part: the sink never gets a byte, so stop it.
      sink.kill();
      await sink.done.catch(() => undefined);
      throw error;
    }
    try {
      await streamInto(opened, sink, transform ? [transform] : []);
    } finally {
      log.endProgress();
    }
    checks.push(pass('checksum', `SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}… matches`));
    checks.push(pass('decrypt', 'decrypted (OpenPGP integrity code ok) and decompressed'));
    checks.push(pass('restore', tail ? 'read to the end' : `restored into a scratch ${artifact.contentFormat === 'tar' ? 'directory' : 'database'}`));
    checks.push(...(await after()));
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
