import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parseBinlogFileName, type BinlogFlavor } from '../../../../format/binlog';
import { binlogWindow, type BinlogWindow, type WindowBinlog, type WindowDump } from '../../../../format/binlog-window';
import { binlogPrefix, BINLOG_DIR, manifestKey, parseKey, WAL_PREFIX } from '../../../../format/layout';
import { mapLimit } from '../../../../runtime/concurrency';
import type { PublicKey } from '../../../../runtime/pgp';
import { openBinlogRecord } from '../../../../runtime/binlog-record';
import { isComplete, listAll, listBackups, storageError, type BackupEntry, type CatalogObject } from '../../catalog/listing';
import { ColdsealError } from '../../errors';
import { loadVerifiedManifest } from '../../restore/select';
import { listSubPrefixes } from '../wal-catalog';

/**
 * The recovery window of a MySQL/MariaDB source as `coldseal list` shows it: the kept dumps'
 * binary log positions (from their signed manifests) and the archived binary logs
 * (format/binlog-window.ts).
 *
 * What it costs: one listing of wal/<group>/<host>/<source>/binlog/ (names and LastModified), the
 * signed manifests of the kept backups, and one HEAD (the signed record in the object's metadata)
 * only for the files the window turns on: the file each dump starts in, the first and the newest
 * file, and the files on either side of a hole in the sequence numbers. That is bounded by the
 * kept dumps and the holes, not by the archive, which grows by a file per push interval (288 a
 * day at 5 min). Between two opened files with consecutive names the GTID chain is assumed, and
 * their times are their LastModified: the keyless verifier opens every record each day and
 * reports a GTID discontinuity between consecutive files, so `list` says so in a note instead of
 * paying for it. `to` is always an opened file's closedAt (the recovery point achieved).
 */

export interface ArchivedBinlog extends CatalogObject {
  readonly binlogFile: string;
}

/** Whether a source's archive holds binary logs (its wal/ prefix has the binlog/ directory). */
export async function isBinlogSource(s3: S3Client, bucket: string, group: string, host: string, source: string): Promise<boolean> {
  return (await listSubPrefixes(s3, bucket, `${WAL_PREFIX}${group}/${host}/${source}/`)).includes(BINLOG_DIR);
}

export async function listBinlogArchive(s3: S3Client, bucket: string, group: string, host: string, source: string): Promise<ArchivedBinlog[]> {
  const files: ArchivedBinlog[] = [];
  for (const object of await listAll(s3, bucket, binlogPrefix(group, host, source))) {
    const parsed = parseKey(object.key);
    if (parsed?.kind === 'binlog') files.push({ ...object, binlogFile: parsed.binlogFile });
  }
  return files;
}

/**
 * The files whose records the window needs (see the header): per basename, the first and the
 * newest, each dump's start file, and both sides of every jump in the sequence numbers.
 */
export function filesToOpen(names: readonly string[], dumpFiles: readonly string[]): Set<string> {
  const open = new Set<string>();
  const byBase = new Map<string, { name: string; sequence: number }[]>();
  for (const name of names) {
    const { basename, sequence } = parseBinlogFileName(name);
    const list = byBase.get(basename) ?? [];
    list.push({ name, sequence });
    byBase.set(basename, list);
  }
  for (const list of byBase.values()) {
    list.sort((a, b) => a.sequence - b.sequence);
    open.add(list[0].name);
    open.add(list[list.length - 1].name);
    for (let i = 1; i < list.length; i++) {
      if (list[i].sequence !== list[i - 1].sequence + 1) {
        open.add(list[i - 1].name);
        open.add(list[i].name);
      }
    }
  }
  const present = new Set(names);
  for (const f of dumpFiles) if (present.has(f)) open.add(f);
  return open;
}

/**
 * Window entries for every listed file: opened ones from their records, the others assumed to
 * continue their neighbours (GTID states carried over so that the chain closes at the next
 * opened file, times from LastModified).
 */
export function windowFiles(listed: readonly ArchivedBinlog[], opened: ReadonlyMap<string, WindowBinlog>): WindowBinlog[] {
  const flavor: BinlogFlavor = [...opened.values()][0]?.flavor ?? 'mariadb';
  const byBase = new Map<string, (ArchivedBinlog & { sequence: number })[]>();
  for (const f of listed) {
    const { basename, sequence } = parseBinlogFileName(f.binlogFile);
    const list = byBase.get(basename) ?? [];
    list.push({ ...f, sequence });
    byBase.set(basename, list);
  }
  const result: WindowBinlog[] = [];
  for (const list of byBase.values()) {
    list.sort((a, b) => a.sequence - b.sequence);
    // The next opened file after each position, found in one pass from the end.
    const followingOf: (WindowBinlog | undefined)[] = new Array(list.length);
    for (let i = list.length - 1, seen: WindowBinlog | undefined; i >= 0; i--) {
      followingOf[i] = seen;
      seen = opened.get(list[i].binlogFile) ?? seen;
    }
    let previous: WindowBinlog | undefined;
    for (let i = 0; i < list.length; i++) {
      const known = opened.get(list[i].binlogFile);
      if (known) {
        result.push(known);
        previous = known;
        continue;
      }
      // Only a file with an opened or assumed predecessor of consecutive sequence is assumed; the
      // first of each run is always opened (filesToOpen), or was dropped as unverifiable.
      const sequence = list[i].sequence;
      if (!previous || list[i - 1]?.binlogFile !== previous.binlogFile || list[i - 1].sequence !== sequence - 1) continue;
      const next = list[i + 1]?.sequence === sequence + 1 ? opened.get(list[i + 1].binlogFile) : undefined;
      // The server opens the next file as it closes this one: an opened successor gives the close
      // time exactly; otherwise the upload's LastModified (a second's resolution) bounds it, no
      // earlier than the previous file's close and no later than the next opened file's opening.
      const following = followingOf[i];
      let closedAt = next ? next.openedAt : (list[i].lastModified ?? new Date(0)).toISOString();
      if (following && closedAt > following.openedAt) closedAt = following.openedAt;
      if (closedAt < previous.closedAt) closedAt = previous.closedAt;
      const assumed: WindowBinlog = {
        binlogFile: list[i].binlogFile,
        flavor,
        gtidStart: previous.gtidEnd,
        gtidEnd: next ? next.gtidStart : previous.gtidEnd,
        openedAt: previous.closedAt,
        closedAt,
        endsWith: 'rotate',
        lastCommitAt: null,
      };
      result.push(assumed);
      previous = assumed;
    }
  }
  return result;
}

/** The dumps of a source's complete backups with a binary log position, each from its signed manifest. */
export async function dumpsOf(s3: S3Client, bucket: string, entries: readonly BackupEntry[], trusted: readonly PublicKey[]): Promise<{ dumps: WindowDump[]; problems: string[] }> {
  const problems: string[] = [];
  const found = await mapLimit(
    entries.filter((e) => isComplete(e)),
    8,
    async (entry) => {
      const key = manifestKey(entry, entry.stamp);
      try {
        const { manifest } = await loadVerifiedManifest(s3, bucket, key, trusted);
        return manifest.artifacts.flatMap((a) => (a.binlogPosition ? [{ id: key, database: a.name, position: a.binlogPosition }] : []));
      } catch (error) {
        if (!(error instanceof ColdsealError)) throw error;
        problems.push(`backup ${key} left out: ${error.message}`);
        return [];
      }
    },
  );
  return { dumps: found.flat(), problems };
}

export interface BinlogSourceWindow {
  readonly window: BinlogWindow;
  /** Files listed, and records opened (HEAD) to work the window out. */
  readonly listed: number;
  readonly opened: number;
}

export async function sourceBinlogWindow(options: {
  s3: S3Client;
  bucket: string;
  group: string;
  host: string;
  source: string;
  trusted: readonly PublicKey[];
  entries?: readonly BackupEntry[];
}): Promise<BinlogSourceWindow> {
  const { s3, bucket, group, host, source, trusted } = options;
  const listed = await listBinlogArchive(s3, bucket, group, host, source);
  const entries = (options.entries ?? (await listBackups(s3, bucket, { group, host, source }))).filter((e) => e.group === group && e.host === host && e.source === source);
  const { dumps, problems } = await dumpsOf(s3, bucket, entries, trusted);
  const toOpen = filesToOpen(
    listed.map((f) => f.binlogFile),
    dumps.map((d) => d.position.file),
  );
  const opened = new Map<string, WindowBinlog>();
  const unverified = new Set<string>();
  await mapLimit(
    listed.filter((f) => toOpen.has(f.binlogFile)),
    8,
    async (f) => {
      let metadata: Record<string, string> | undefined;
      try {
        metadata = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: f.key }))).Metadata;
      } catch (error) {
        throw storageError(error, `reading the record of s3://${bucket}/${f.key}`);
      }
      try {
        const { record } = await openBinlogRecord(metadata, trusted, f.key);
        opened.set(f.binlogFile, record);
      } catch (error) {
        unverified.add(f.binlogFile);
        problems.push(`${f.binlogFile} is left out: its record does not verify (${(error as Error).message})`);
      }
    },
  );
  const usable = listed.filter((f) => !unverified.has(f.binlogFile));
  const window = binlogWindow({ dumps, files: windowFiles(usable, opened) });
  const assumed = usable.length - opened.size;
  const notes = [...problems, ...window.notes];
  if (assumed > 0) notes.push(`${opened.size} of ${usable.length} archived binary logs were opened; the GTID chain of the ${assumed} between them is assumed from their names (the daily verification checks every record)`);
  return { window: { ...window, notes }, listed: listed.length, opened: opened.size };
}
