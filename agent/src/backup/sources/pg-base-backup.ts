import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { walObjectKey } from '../../../../format/layout';
import type { BaseBackup } from '../../../../format/manifest';
import type { PostgresSourceConfig } from '../../../../format/agent-config';
import { parseLsn, segmentFileNameOfLsn } from '../../../../format/wal';
import { isNotFound } from '../../../../runtime/s3-presence';
import { PsqlSession, type PgConnection } from '../../db/postgres';
import { ColdsealError, EXIT } from '../../errors';
import { interruptedBy, onInterrupt } from '../../interrupt';
import type { Log } from '../../log';
import { BaseTarLeadReader, baseBackupFacts } from './pg-base-backup-output';
import type { CompanionContext, DumpStep, StepCompanion } from './source';

/**
 * A physical base backup of a PITR source: `pg_basebackup -Ft -D - -X fetch -c fast -v`, one tar
 * of the whole data directory on stdout, streamed through the same compress → OpenPGP → multipart
 * pipeline as the dumps and kept exactly as pg_basebackup wrote it (the PITR restore lays it out).
 *
 * Why -X fetch and not -X none: the WAL from the backup's start to its stop goes INTO the tar, so
 * each base backup is consistent on its own and lives exactly as long as its tier, whatever becomes
 * of the WAL archive; the archive only carries it forward. -X stream cannot write to stdout
 * (PostgreSQL docs, pg_basebackup, -F tar: the tar goes to standard output, with -D -, only when
 * the cluster has no additional tablespaces and WAL streaming is not used).
 *
 * -X fetch collects that WAL at the end of the backup, so the server must not have removed it by
 * then, or the backup fails (docs, pg_basebackup, -X fetch, which asks for a wal_keep_size high
 * enough). Rather than ask users to size
 * wal_keep_size, the agent holds a TEMPORARY physical replication slot with immediately_reserve
 * during the backup: replication slots make the primary keep WAL until a consumer has it, whatever
 * wal_keep_size says (docs, "Replication Slots"); immediately_reserve reserves the WAL at creation
 * rather than at a first streaming connection, and a temporary slot belongs to the current session
 * only and is released on error too (docs, "Replication Management Functions",
 * pg_create_physical_replication_slot). The slot lives in a psql session the agent keeps open, so
 * if the agent dies its psql sees EOF, the session ends, and the slot with its WAL hold is gone: a
 * crashed backup can never pin pg_wal forever. Created before pg_basebackup starts, the slot's
 * restart_lsn (the last checkpoint's redo) is at or before the backup's start.
 *
 * Complete only when its WAL is archived: after pg_basebackup, the segment holding the stop LSN
 * must be in the WAL archive (HeadObject on its key) within pitr.waitForArchiveMinutes, or the
 * artifact fails like any failed dump (upload aborted, no manifest).
 */

/** What the preflight query learns, in one round trip, before anything is dumped. */
interface ClusterFacts {
  readonly tablespaces: { name: string; location: string }[];
  readonly archiveMode: string;
  readonly inRecovery: boolean;
  readonly walSegmentSize: number;
  readonly systemIdentifier: string;
  readonly clusterBytes: number | null;
}

const PREFLIGHT_SQL = `select json_build_object(
  'tablespaces', coalesce((select json_agg(json_build_object('name', spcname, 'location', pg_tablespace_location(oid)) order by spcname) from pg_tablespace where spcname not in ('pg_default', 'pg_global')), '[]'::json),
  'archiveMode', current_setting('archive_mode'),
  'inRecovery', pg_is_in_recovery(),
  'walSegmentSize', (select setting::bigint from pg_settings where name = 'wal_segment_size'),
  'systemIdentifier', (select system_identifier::text from pg_control_system()),
  'clusterBytes', (select sum(pg_database_size(oid))::bigint from pg_database where datallowconn))::text`;

export type BaseBackupPlan = { readonly step: DumpStep } | { readonly refused: ColdsealError };

/** pg_basebackup's own failures worth a precise hint (the step falls back on those every PostgreSQL client shares). */
export function diagnoseBasebackup(stderr: string): { message: string; hint: string } | undefined {
  if (/no pg_hba\.conf entry for replication connection/.test(stderr)) {
    return { message: 'the server refuses a replication connection to this user (pg_hba.conf)', hint: 'Allow it in pg_hba.conf (e.g. "local replication <user> peer") and reload PostgreSQL' };
  }
  if (/must be superuser or replication role|permission denied to start WAL sender|must have the REPLICATION attribute/i.test(stderr)) {
    return { message: "the source's user may not take base backups", hint: "Give it the REPLICATION attribute (ALTER ROLE <user> REPLICATION), or use runAs postgres" };
  }
  if (/exceeds max_wal_senders|too many WAL senders|number of requested standby connections/i.test(stderr)) {
    return { message: 'the server has no free WAL sender for the backup', hint: 'Raise max_wal_senders (a restart is needed) or wait for other replication clients' };
  }
  if (/requested WAL segment .* has already been removed/.test(stderr)) {
    return { message: 'WAL the backup needs was removed before the backup ended', hint: 'Raise max_slot_wal_keep_size (or leave it at -1): the backup holds a replication slot that the server invalidated' };
  }
  return undefined;
}

/**
 * Looks at the cluster and returns the base backup step, or why there is none. Refusals are
 * reported after the logical dumps of the source ran, which they do not prevent.
 */
export async function planBaseBackup(args: {
  source: PostgresSourceConfig;
  conn: PgConnection;
  /** Runs psql -At -d postgres with the source's connection (a SOURCE error on failure). */
  psql: (sql: string, what: string) => Promise<string>;
  command: { readonly command: string; readonly args: readonly string[] };
  toolVersion: string;
  /** What every PostgreSQL client's failures mean (unreachable, authentication). */
  diagnose: NonNullable<DumpStep['diagnose']>;
}): Promise<BaseBackupPlan> {
  const { source, conn, psql } = args;
  const facts = JSON.parse((await psql(PREFLIGHT_SQL, 'looking at the cluster for its base backup')).trim()) as ClusterFacts;
  const refuse = (message: string, hint: string): BaseBackupPlan => ({ refused: new ColdsealError(EXIT.SOURCE, `source ${source.name}: base backup refused: ${message}`, hint) });
  if (facts.tablespaces.length > 0) {
    const list = facts.tablespaces.map((t) => `${t.name} at ${t.location}`).join(', ');
    return refuse(
      `the cluster has tablespaces of its own (${list}), and pg_basebackup can write a cluster to standard output, which coldseal streams, only when it has none (PostgreSQL docs, pg_basebackup, -F tar)`,
      'The logical dumps of the source were still taken. To get base backups, move those tables and indexes into pg_default (ALTER TABLE … SET TABLESPACE pg_default; ALTER DATABASE … SET TABLESPACE pg_default) and drop the tablespaces, or set pitr.baseBackup to false',
    );
  }
  if (facts.archiveMode === 'off') {
    return refuse(
      'archive_mode is off, so the WAL a base backup needs to be carried forward would never reach the archive',
      `Run coldseal pitr setup --source ${source.name} --apply, then restart PostgreSQL`,
    );
  }
  if (facts.inRecovery) {
    return refuse('the server is a standby (in recovery); coldseal takes base backups of the primary, whose archiver archives the WAL', "Point the source's host and port at the primary");
  }
  const walSegmentSize = Number(facts.walSegmentSize);
  const step: DumpStep = {
    name: 'cluster',
    kind: 'cluster',
    contentFormat: 'pg-base-tar',
    extension: 'tar',
    command: args.command.command,
    args: args.command.args,
    env: conn.env,
    estimatedBytes: facts.clusterBytes ?? undefined,
    tool: { name: 'pg_basebackup', version: args.toolVersion },
    // pg_basebackup exits 0 only after the server's backup ended (pg_backup_stop) and every byte was written.
    completion: { method: 'exit-status' },
    diagnose: (stderr) => diagnoseBasebackup(stderr) ?? args.diagnose(stderr.replace(/pg_basebackup: (error: )?/g, '')),
    companion: (context) => openBaseBackupCompanion({ context, source, conn, psql, walSegmentSize, systemIdentifier: facts.systemIdentifier }),
  };
  return { step };
}

/** The arguments of pg_basebackup; the label (-l coldseal-<stamp>) is added by the companion, which knows the stamp. */
export const PG_BASEBACKUP_ARGS = ['-Ft', '-D', '-', '-X', 'fetch', '-c', 'fast', '-v', '-w'] as const;

async function openBaseBackupCompanion(args: {
  context: CompanionContext;
  source: PostgresSourceConfig;
  conn: PgConnection;
  psql: (sql: string, what: string) => Promise<string>;
  walSegmentSize: number;
  systemIdentifier: string;
}): Promise<StepCompanion> {
  const { context, source, conn, psql, walSegmentSize } = args;
  const pitr = source.pitr!;
  // Slot names allow lower-case letters, digits and underscores (docs, "Replication Slots").
  const slot = `coldseal_${context.stamp.toLowerCase()}_${process.pid}`;
  const session = new PsqlSession(conn);
  try {
    await session.query(`select pg_create_physical_replication_slot('${slot}', true, true)`);
  } catch (error) {
    await session.close();
    throw new ColdsealError(
      EXIT.SOURCE,
      `source ${source.name}: could not create the temporary replication slot that keeps the base backup's WAL: ${(error as Error).message}`,
      "The source's user needs the REPLICATION attribute, and max_replication_slots a free slot (a restart is needed to raise it)",
      { cause: error },
    );
  }
  context.log.info('base backup: holding a temporary replication slot', { source: source.name, slot });
  const reader = new BaseTarLeadReader();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await session.close();
  };
  return {
    args: ['-l', `coldseal-${context.stamp}`],
    observe: (chunk) => reader.push(chunk),
    close: release,
    async settle(tool) {
      // The stop time: the server's clock just after pg_backup_stop returned, so never before it
      // (a recovery target must be after the stop; a few milliseconds late errs on the safe side).
      const epoch = await session.query('select extract(epoch from clock_timestamp())').catch(() => undefined);
      await release();
      const leading = reader.result();
      if (leading instanceof Error) throw new ColdsealError(EXIT.SOURCE, `source ${source.name}: pg_basebackup's tar could not be read for its backup_label: ${leading.message}`, 'Check the pg_basebackup version on the host (PostgreSQL 15 or later writes backup_label first)');
      let facts: ReturnType<typeof baseBackupFacts>;
      try {
        facts = baseBackupFacts({ leading, stderr: tool.stderr, segSize: walSegmentSize });
      } catch (error) {
        throw new ColdsealError(EXIT.SOURCE, `source ${source.name}: the base backup's WAL range could not be read: ${(error as Error).message}`, 'Run pg_basebackup -v by hand and report its output');
      }
      const stoppedAt = epoch?.[0] ? new Date(Number(epoch[0]) * 1000) : new Date();
      const key = walObjectKey(context.loc.group, context.loc.host, context.loc.source, facts.stopWalFile);
      context.log.info('base backup taken; waiting for its last WAL file to be archived', {
        source: source.name,
        startLsn: facts.startLsn,
        stopLsn: facts.stopLsn,
        stopWalFile: facts.stopWalFile,
        waitMinutes: pitr.waitForArchiveMinutes,
      });
      await waitForArchivedWal({ s3: context.s3, bucket: context.bucket, key, walFile: facts.stopWalFile, timeline: facts.timeline, walSegmentSize, minutes: pitr.waitForArchiveMinutes, psql, log: context.log, source: source.name });
      const baseBackup: BaseBackup = {
        systemIdentifier: args.systemIdentifier,
        timeline: facts.timeline,
        startLsn: facts.startLsn,
        stopLsn: facts.stopLsn,
        startWalFile: facts.startWalFile,
        stopWalFile: facts.stopWalFile,
        walSegmentSize,
        stoppedAt: stoppedAt.toISOString(),
        backupLabel: leading.backupLabel,
        tablespaceMap: leading.tablespaceMap,
        walArchived: true,
      };
      return { baseBackup };
    },
  };
}

type Presence = { readonly state: 'present' } | { readonly state: 'absent' | 'forbidden' | 'unknown'; readonly detail: string };

async function headWal(s3: S3Client, bucket: string, key: string): Promise<Presence> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { state: 'present' };
  } catch (error) {
    if (isNotFound(error)) return { state: 'absent', detail: 'not there yet (404)' };
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    // Without s3:ListBucket, S3 answers a HEAD of a missing key with 403 (docs, API HeadObject, "Permissions"): keep waiting.
    if (status === 403) return { state: 'forbidden', detail: 'S3 answers 403: not there yet, or this host may not read its group\'s wal/ objects' };
    return { state: 'unknown', detail: (error as Error).message };
  }
}

/** Sleeps, or less when the run is interrupted. */
function pause(ms: number): Promise<void> {
  if (interruptedBy()) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stopListening();
      resolve();
    }, ms);
    const stopListening = onInterrupt(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Waits until `key` (the WAL file holding the backup's stop LSN) is in the archive. On a primary
 * the end of a backup switches to the next WAL segment (docs, "Making a Base Backup Using the Low
 * Level API", pg_backup_stop), so the archiver normally has the file within seconds; should the
 * server still be writing into it, one pg_switch_wal() closes it.
 */
export async function waitForArchivedWal(args: {
  s3: S3Client;
  bucket: string;
  key: string;
  walFile: string;
  timeline: number;
  walSegmentSize: number;
  minutes: number;
  psql: (sql: string, what: string) => Promise<string>;
  log: Log;
  source: string;
}): Promise<void> {
  const { s3, bucket, key, walFile, log, source } = args;
  const startedAt = Date.now();
  const deadline = startedAt + args.minutes * 60_000;
  let checkedCurrent = false;
  let last: Presence;
  for (let attempt = 0; ; attempt++) {
    const signal = interruptedBy();
    if (signal) throw new ColdsealError(EXIT.INTERRUPTED, `backup interrupted by ${signal} while the base backup of ${source} waited for WAL file ${walFile} to be archived`, 'Nothing of this run was committed');
    last = await headWal(s3, bucket, key);
    if (last.state === 'present') {
      log.info('base backup: its last WAL file is archived', { source, walFile, waitedSeconds: Math.round((Date.now() - startedAt) / 100) / 10 });
      return;
    }
    if (!checkedCurrent) {
      checkedCurrent = true;
      await switchIfCurrent(args).catch((error: Error) => log.warn(`base backup of ${source}: could not force a WAL switch (${error.message}); waiting for archive_timeout to close ${walFile}`, { source, walFile }));
    }
    if (Date.now() >= deadline) break;
    await pause(Math.min(500 * 2 ** Math.min(attempt, 3), 5000, Math.max(deadline - Date.now(), 0)));
  }
  const archiver = await args
    .psql(
      `select json_build_object('archived', archived_count, 'lastArchived', last_archived_wal, 'failed', failed_count, 'lastFailed', last_failed_wal, 'lastFailedTime', last_failed_time)::text from pg_stat_archiver`,
      'reading pg_stat_archiver',
    )
    .then((out) => `pg_stat_archiver says ${out.trim()}`)
    .catch((error: Error) => `pg_stat_archiver could not be read: ${error.message}`);
  throw new ColdsealError(
    EXIT.SOURCE,
    `source ${source}: the base backup's last WAL file ${walFile} did not reach the WAL archive (s3://${bucket}/${key}: ${last.detail}) within ${args.minutes} min, so the base backup is not complete and was not committed; ${archiver}`,
    `Check archiving: select * from pg_stat_archiver and the PostgreSQL log show why archive_command fails; coldseal pitr setup --source ${source} checks the settings. Raise pitr.waitForArchiveMinutes if archiving is only slow`,
  );
}

/** One pg_switch_wal() when the server is still writing into the file the backup waits for. */
async function switchIfCurrent(args: { walFile: string; timeline: number; walSegmentSize: number; psql: (sql: string, what: string) => Promise<string>; log: Log; source: string }): Promise<void> {
  const lsn = (await args.psql('select pg_current_wal_insert_lsn()', 'reading the current WAL position')).trim();
  if (segmentFileNameOfLsn(args.timeline, parseLsn(lsn), args.walSegmentSize) !== args.walFile) return;
  args.log.info('base backup: the server still writes into its last WAL file; switching to the next', { source: args.source, walFile: args.walFile });
  await args.psql('select pg_switch_wal()', 'forcing a WAL switch');
}
