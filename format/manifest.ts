import { z } from 'zod';
import { replicaLocationSchema } from './replica';
import { NAME_PATTERN, TIERS } from './layout';

/**
 * The manifest: what one run of one source produced. It is written last, after every artifact is
 * complete in S3, so its presence is the commit point. It carries the ciphertext digests, so the
 * verifier proves integrity and origin (via the signature) without a decryption key.
 */
/** Written by this agent; version 1 (one object per artifact, no segment list) is still read. */
export const MANIFEST_FORMAT_VERSION = 2;

const name = z.string().regex(NAME_PATTERN);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const fingerprint = z.string().regex(/^[0-9a-f]{40}$|^[0-9a-f]{64}$/);
const isoTime = z.iso.datetime();
const bytes = z.number().int().nonnegative();

export const ENGINES = ['postgres', 'mysql', 'files'] as const;
export type Engine = (typeof ENGINES)[number];

/** Per-table facts taken at dump time, so a test restore can prove it brought back what was dumped. */
export const tableInventorySchema = z.object({
  schema: z.string(),
  name: z.string(),
  rows: z.number().int().nonnegative(),
});

export const inventorySchema = z.object({
  /** How the counts relate to the dump: "snapshot" = same MVCC snapshot as the dump (exact). */
  consistency: z.enum(['snapshot', 'approximate']),
  tables: z.array(tableInventorySchema),
  /** SHA-256 over a canonical listing of schemas, tables, columns and types. */
  schemaFingerprint: sha256Hex,
});
export type Inventory = z.infer<typeof inventorySchema>;

export const completionSchema = z.object({
  /**
   * exit-status: the tool's exit status is the only completion signal (pg_dump custom format);
   * marker: the tool writes a trailer we saw (mysqldump "-- Dump completed", pg_dumpall);
   * archive-end: the archive's end-of-archive record was written (tar).
   */
  method: z.enum(['exit-status', 'marker', 'archive-end']),
  detail: z.string(),
});

/**
 * One object of a segmented artifact. A dump longer than one multipart upload can hold (10,000
 * parts, 5 TiB) continues in the next segment; the segments' concatenation, in order, is the
 * OpenPGP message. Every segment but the last is full: parts × parts.size bytes.
 */
export const segmentSchema = z.object({
  key: z.string().min(1),
  bytes,
  /** SHA-256 of this segment's bytes, so `sha256sum` of a downloaded segment can be checked alone. */
  sha256: sha256Hex,
  /** How many of the artifact's parts (in order, from `parts.sha256`) this segment holds. */
  parts: z.number().int().positive(),
});
export type Segment = z.infer<typeof segmentSchema>;

/**
 * What a PostgreSQL physical base backup needs to be restored and replayed: the WAL range it
 * spans and the exact files PostgreSQL wrote for it. The WAL from start to stop is inside the
 * backup's own tar (pg_basebackup -X fetch), so the backup is consistent on its own and lives
 * exactly as long as its tier; the WAL archive carries it forward to any later point.
 */
export const baseBackupSchema = z.object({
  /** pg_control's database system identifier (decimal). */
  systemIdentifier: z.string().regex(/^\d{1,20}$/),
  timeline: z.number().int().positive(),
  /** "X/Y" as PostgreSQL prints an LSN. */
  startLsn: z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/),
  stopLsn: z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/),
  /** The WAL file holding startLsn (restore asks the archive for WAL from here on). */
  startWalFile: z.string(),
  stopWalFile: z.string(),
  walSegmentSize: z.number().int().positive(),
  /** Server time at pg_backup_stop: a recovery target must be after it. */
  stoppedAt: isoTime,
  /** The backup_label exactly as PostgreSQL wrote it. */
  backupLabel: z.string().min(1),
  /** The tablespace_map, or null for a cluster with no tablespace of its own (coldseal refuses those today). */
  tablespaceMap: z.string().nullable(),
  /** The stop segment was seen in the WAL archive before the manifest was written. */
  walArchived: z.boolean(),
});
export type BaseBackup = z.infer<typeof baseBackupSchema>;

/**
 * Where in the binary log a MySQL/MariaDB dump's snapshot sits (a PITR source's dumps are taken
 * with --single-transaction --master-data=2, plus --gtid on MariaDB; --source-data=2 on MySQL
 * 8.0.26+): replay of the archived binary logs starts exactly here.
 */
export const binlogPositionSchema = z.object({
  /** The file and offset the dump's CHANGE MASTER TO / CHANGE REPLICATION SOURCE TO comment names. */
  file: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\.\d{6,9}$/),
  position: z.number().int().nonnegative(),
  /** The GTID position of the snapshot (MariaDB gtid_slave_pos as --gtid prints it; MySQL GTID_PURGED), canonical text (format/binlog.ts); "" when the server had logged no GTID yet. */
  gtid: z.string().max(600),
  flavor: z.enum(['mariadb', 'mysql']),
  /**
   * When the agent read the position from the head of the dump (server clock is not involved):
   * at or after the snapshot, so a --to-time at or after it never needs a transaction the dump
   * lacks, and one before it takes an older dump.
   */
  readAt: isoTime,
});
export type BinlogPositionRecord = z.infer<typeof binlogPositionSchema>;

export const artifactSchema = z.object({
  /** Database name, "globals" for cluster-wide objects, "cluster" for a base backup, or the source name for a files source. */
  name: z.string().min(1),
  kind: z.enum(['database', 'globals', 'directory', 'cluster']),
  key: z.string().min(1),
  /** Format of the plaintext before compression: pg_dump custom, SQL text, tar, or pg_basebackup's tar of the data directory. */
  contentFormat: z.enum(['pg-custom', 'sql', 'tar', 'pg-base-tar']),
  tool: z.object({ name: z.string(), version: z.string(), args: z.array(z.string()) }),
  exitCode: z.number().int(),
  warnings: z.array(z.string()).default([]),
  completion: completionSchema,
  startedAt: isoTime,
  finishedAt: isoTime,
  /** Null when the plaintext never passed through the agent and the compressor did not report it. */
  uncompressedBytes: bytes.nullable(),
  compressedBytes: bytes,
  ciphertextBytes: bytes,
  ciphertextSha256: sha256Hex,
  /** SHA-256 of each upload part (fixed partSize, last part shorter): lets a verifier check ranges in parallel. */
  parts: z.object({ size: z.number().int().positive(), sha256: z.array(sha256Hex) }),
  /** Format version 2: the objects holding the ciphertext, in order (the first is `key`). Absent in version 1: one object at `key`. */
  segments: z.array(segmentSchema).min(1).optional(),
  inventory: inventorySchema.optional(),
  /** Set on a base backup (kind "cluster"). */
  baseBackup: baseBackupSchema.optional(),
  /** Set on each database dump of a MySQL/MariaDB PITR source: the binary log position of its snapshot. */
  binlogPosition: binlogPositionSchema.optional(),
});
export type Artifact = z.infer<typeof artifactSchema>;

export const manifestSchema = z.object({
  formatVersion: z.union([z.literal(1), z.literal(MANIFEST_FORMAT_VERSION)]),
  group: name,
  host: name,
  source: name,
  tier: z.enum(TIERS),
  stamp: z.string().regex(/^\d{8}T\d{6}Z$/),
  engine: z.object({ kind: z.enum(ENGINES), version: z.string().nullable() }),
  startedAt: isoTime,
  finishedAt: isoTime,
  compression: z.object({
    algorithm: z.enum(['zstd', 'gzip', 'none']),
    level: z.number().int(),
    /** "zstd-cli 1.5.4", "node-zlib-zstd 1.5.7" (Node's own zstd: the same frames), "node-zlib 1.3.1" (gzip) … so a restore knows which tool to reach for. */
    implementation: z.string(),
  }),
  encryption: z.object({
    standard: z.literal('openpgp'),
    /** SEIPDv1 (AES-256 + MDC) so GnuPG 2.2 can decrypt without coldseal. */
    packet: z.literal('seipd-v1'),
    cipher: z.literal('aes256'),
    /** "gpg 2.2.40" or "openpgp.js 6.3.2": same packets either way; recorded for the curious. */
    implementation: z.string().optional(),
    recipientFingerprints: z.array(fingerprint).min(1),
    /** Key ids as they appear in the PKESK packets (encryption subkeys), to check a message's addressees. */
    recipientKeyIds: z.array(z.string().regex(/^[0-9a-f]{16}$/)).min(1),
  }),
  signingKeyFingerprint: fingerprint,
  artifacts: z.array(artifactSchema).min(1),
  agent: z.object({ version: z.string(), node: z.string() }),
}).superRefine((manifest, context) => {
  manifest.artifacts.forEach((artifact, i) => {
    if (manifest.formatVersion === 1 && artifact.segments) {
      context.addIssue({ code: 'custom', path: ['artifacts', i, 'segments'], message: 'format version 1 has no segments' });
    }
    if ((artifact.kind === 'cluster') !== (artifact.baseBackup !== undefined)) {
      context.addIssue({ code: 'custom', path: ['artifacts', i, 'baseBackup'], message: 'a base backup (kind "cluster") and only it carries baseBackup' });
    }
    if (artifact.segments && artifact.segments[0].key !== artifact.key) {
      context.addIssue({ code: 'custom', path: ['artifacts', i, 'segments', 0, 'key'], message: 'the first segment is the artifact\'s key' });
    }
  });
});
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;

const lsnText = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);

/**
 * A point-in-time restore drill of one PITR source: the window it drew the target from, the
 * target, the base backup recovery started from, and where recovery ended.
 */
export const drillPitrSchema = z.object({
  window: z.object({ fromLsn: lsnText, toLsn: lsnText, toTime: isoTime.nullable() }),
  target: z.object({ kind: z.enum(['lsn', 'time']), value: z.string() }),
  timeline: z.number().int().positive(),
  baseManifestKey: z.string(),
  /** Null when recovery did not get there (the checks say why). */
  reached: z
    .object({
      lsn: lsnText,
      /** Where replay ended ("redo done at"). */
      redoLsn: lsnText.nullable(),
      timeline: z.number().int().positive(),
      /** The last transaction replayed (UTC, as PostgreSQL prints it). */
      lastTransactionTime: z.string().nullable(),
      walFilesRestored: z.number().int().nonnegative(),
    })
    .nullable(),
});
export type DrillPitr = z.infer<typeof drillPitrSchema>;

/**
 * A point-in-time restore drill of a MySQL/MariaDB PITR source: a dump restored into a scratch
 * database and the archived binary logs replayed from its position to a random target in the window.
 */
export const drillBinlogPitrSchema = z.object({
  window: z.object({ fromTime: isoTime, toTime: isoTime }),
  target: z.object({ kind: z.enum(['time', 'position', 'gtid']), value: z.string() }),
  baseManifestKey: z.string(),
  /** The dump's position replay started from ("file:offset"). */
  startPosition: z.string(),
  /** Null when replay did not get there (the checks say why). */
  reached: z
    .object({
      /** The last event replayed ("file:offset"), its GTID state and commit time. */
      position: z.string(),
      gtid: z.string(),
      lastCommitAt: isoTime.nullable(),
      binlogFilesReplayed: z.number().int().nonnegative(),
      transactionsReplayed: z.number().int().nonnegative(),
    })
    .nullable(),
});
export type DrillBinlogPitr = z.infer<typeof drillBinlogPitrSchema>;

/**
 * Where one drilled artifact's restore spent its time (optional: receipts written before it have
 * durationMs only). The restore is one stream (ranged GETs → part checks → OpenPGP decrypt →
 * decompress → load), so download, decrypt and load overlap: each is the time that stage was
 * busy, and their sum may exceed the wall time. The largest says what limits the restore;
 * durationMs stays the wall time of the whole, checks included.
 */
export const drillTimingsSchema = z.object({
  /** Ranged GETs and the per-part SHA-256 checks against the signed manifest. */
  downloadMs: z.number().nonnegative(),
  /**
   * OpenPGP decryption and decompression, when the agent timed them apart; null when it did not
   * (the test restore reads through one pipe of GETs, part checks, gpg and zstd: then they are in
   * downloadMs).
   */
  decryptMs: z.number().nonnegative().nullable(),
  /** The database tool (pg_restore, mysql, tar) taking the plaintext. */
  loadMs: z.number().nonnegative(),
  /** The checks after the load (row counts, schema fingerprint, queries). */
  checksMs: z.number().nonnegative(),
  /** Ciphertext bytes read: what the throughput is measured on. */
  ciphertextBytes: bytes,
});
export type DrillTimings = z.infer<typeof drillTimingsSchema>;

/** A drill receipt: the result of restoring the latest backup of each source into scratch. */
export const drillReceiptSchema = z.object({
  formatVersion: z.literal(1),
  group: name,
  host: name,
  stamp: z.string().regex(/^\d{8}T\d{6}Z$/),
  startedAt: isoTime,
  finishedAt: isoTime,
  ok: z.boolean(),
  results: z.array(
    z.object({
      manifestKey: z.string(),
      source: name,
      artifact: z.string(),
      ok: z.boolean(),
      durationMs: z.number().nonnegative(),
      /** Set by agents that time each stage of the restore (optional: older receipts have durationMs only). */
      timings: drillTimingsSchema.optional(),
      checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
      /** Set on a point-in-time restore drill (`drill --pitr`): the random target and what recovery reached. */
      pitr: drillPitrSchema.optional(),
      /** Set on a MySQL/MariaDB point-in-time restore drill (`drill --pitr`). */
      binlogPitr: drillBinlogPitrSchema.optional(),
    }),
  ),
  signingKeyFingerprint: fingerprint,
  agent: z.object({ version: z.string(), node: z.string() }),
  /** Set when the drill read the backups from the offsite replica (`drill --replica`), not the data bucket. */
  readFrom: replicaLocationSchema.optional(),
});
export type DrillReceipt = z.infer<typeof drillReceiptSchema>;
