import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { binlogPrefix, manifestKey, parseKey } from '../../../../format/layout';
import type { Manifest } from '../../../../format/manifest';
import { openBinlogRecord } from '../../../../runtime/binlog-record';
import { mapLimit } from '../../../../runtime/concurrency';
import type { PublicKey } from '../../../../runtime/pgp';
import { listAll, storageError } from '../../catalog/listing';
import { ColdsealError, EXIT } from '../../errors';
import { loadVerifiedManifest } from '../select';
import { binlogSequence, type ArchivedBinlog, type DumpCandidate } from './plan';
import { oneHostsBackups } from '../log-restore';

/**
 * What a MySQL/MariaDB point-in-time restore plans from, read without downloading any dump or
 * binary log: the signed manifests of the source's complete backups (the dumps whose artifacts
 * carry a binlogPosition), the listing of its binary log archive, and each needed file's signed
 * record from its object's metadata (HeadObject), checked against the group's trusted signing keys.
 */
export interface SourceDumps {
  readonly host: string;
  readonly dumps: DumpCandidate[];
  readonly manifests: Map<string, Manifest>;
}

export async function readDumps(s3: S3Client, bucket: string, trusted: readonly PublicKey[], where: { group: string; host?: string; source: string }): Promise<SourceDumps> {
  const { host, entries } = await oneHostsBackups(s3, bucket, where);
  const manifests = new Map<string, Manifest>();
  const dumps: DumpCandidate[] = [];
  await mapLimit(entries, 8, async (entry) => {
    const key = manifestKey(entry, entry.stamp);
    const { manifest } = await loadVerifiedManifest(s3, bucket, key, trusted);
    if (manifest.engine.kind !== 'mysql') throw new ColdsealError(EXIT.USAGE, `source "${where.source}" is a ${manifest.engine.kind} source: this point-in-time restore is for MySQL/MariaDB`, 'For PostgreSQL give --data-dir instead of --target');
    manifests.set(key, manifest);
    for (const artifact of manifest.artifacts) {
      if (artifact.binlogPosition) dumps.push({ manifestKey: key, stamp: manifest.stamp, database: artifact.name, position: artifact.binlogPosition });
    }
  });
  return { host, dumps: dumps.sort((a, b) => a.position.readAt.localeCompare(b.position.readAt)), manifests };
}

export interface RecordFailure {
  readonly binlogFile: string;
  readonly key: string;
  readonly message: string;
}

/**
 * The archived files of a source from `fromSequence` on (older ones cannot serve the dumps in
 * question: one HeadObject per file is the cost of a plan), each with its verified record. A
 * record that fails its checks is reported, not thrown: the planner decides whether the restore
 * needs that file.
 */
export async function readBinlogRecords(
  s3: S3Client,
  bucket: string,
  trusted: readonly PublicKey[],
  where: { group: string; host: string; source: string },
  range: { fromSequence: number; toSequence?: number },
): Promise<{ files: ArchivedBinlog[]; failures: RecordFailure[] }> {
  const prefix = binlogPrefix(where.group, where.host, where.source);
  const listed = (await listAll(s3, bucket, prefix))
    .map((o) => ({ object: o, parsed: parseKey(o.key) }))
    .filter((o): o is typeof o & { parsed: { kind: 'binlog'; binlogFile: string } } => o.parsed?.kind === 'binlog')
    .filter((o) => binlogSequence(o.parsed.binlogFile) >= range.fromSequence && (range.toSequence === undefined || binlogSequence(o.parsed.binlogFile) <= range.toSequence));
  const files: ArchivedBinlog[] = [];
  const failures: RecordFailure[] = [];
  await mapLimit(listed, 16, async ({ object, parsed }) => {
    let metadata: Record<string, string> | undefined;
    try {
      metadata = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: object.key }))).Metadata;
    } catch (error) {
      throw storageError(error, `reading the record of s3://${bucket}/${object.key}`);
    }
    try {
      const { record } = await openBinlogRecord(metadata, trusted, object.key);
      files.push({ key: object.key, record });
    } catch (error) {
      failures.push({ binlogFile: parsed.binlogFile, key: object.key, message: (error as Error).message });
    }
  });
  files.sort((a, b) => binlogSequence(a.record.binlogFile) - binlogSequence(b.record.binlogFile));
  failures.sort((a, b) => binlogSequence(a.binlogFile) - binlogSequence(b.binlogFile));
  return { files, failures };
}
