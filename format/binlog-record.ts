import { z } from 'zod';
import { canonicalGtidState, isBinlogFileName } from './binlog';
import { binlogObjectKey, NAME_PATTERN } from './layout';
import { WAL_RECORD_METADATA } from './wal-record';

/**
 * The signed record of one archived MySQL/MariaDB binary log file. Like the WAL record
 * (format/wal-record.ts, whose header says why a record lives in the object's own user metadata
 * and how that is bounded by the 2 KB limit), it travels under the same metadata keys
 * (WAL_RECORD_METADATA) with one conditional PutObject (If-None-Match: *); `kind` tells the two
 * apart. Only closed files are archived (the server has rotated past them), so a file's content
 * never changes and "the same file again" is judged on `plaintextSha256`.
 *
 * What the keyless verifier and `coldseal list` need for continuity is here, read by the agent
 * from the file's events before upload: the GTID state at the file's head and after its last
 * event (format/binlog.ts says how each flavour spells them), and the times of its first and last
 * events. The newest archived file's `closedAt` is the recovery point achieved.
 */
export const BINLOG_RECORD_FORMAT_VERSION = 1;

/** The record travels under the WAL record's metadata keys; `kind: "binlog"` tells it apart. */
export const BINLOG_RECORD_METADATA = WAL_RECORD_METADATA;

const name = z.string().regex(NAME_PATTERN);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const fingerprint = z.string().regex(/^[0-9a-f]{40}$|^[0-9a-f]{64}$/);
const bytes = z.number().int().nonnegative();
/**
 * A bound against runaway text, not the real limit: with an Ed25519 signature and short names a
 * record fits S3's 2 KB of user metadata with two states of about 200 characters each (12 MariaDB
 * domains, or 4 MySQL server UUIDs; test/unit/binlog-record.test.ts), and signBinlogRecord refuses
 * one that does not fit, naming its size (runtime/wal-record.ts signLogRecord).
 */
const gtidState = z.string().max(600);

export const binlogRecordSchema = z
  .object({
    formatVersion: z.literal(BINLOG_RECORD_FORMAT_VERSION),
    kind: z.literal('binlog'),
    group: name,
    host: name,
    source: name,
    /** The file name as the server gave it (SHOW BINARY LOGS), e.g. mariadb-bin.000042. */
    binlogFile: z.string().refine(isBinlogFileName, 'must be a binary log file name (<basename>.<6+ digits>)'),
    flavor: z.enum(['mariadb', 'mysql']),
    /** The server version the Format_description event names. */
    serverVersion: z.string().min(1).max(60),
    /** The server_id of the file's Format_description event: another server's log never mixes in. */
    serverId: z.number().int().nonnegative(),
    /** GTID state at the file's head (Gtid_list / Previous_gtids), canonical text (format/binlog.ts). */
    gtidStart: gtidState,
    /** GTID state after the file's last transaction, canonical text: the next file's gtidStart must equal it. */
    gtidEnd: gtidState,
    /** Time of the Format_description event: when the server opened the file. */
    openedAt: z.iso.datetime(),
    /** Time of the file's last event (its Rotate or Stop): everything committed before it is in this file or an earlier one. */
    closedAt: z.iso.datetime(),
    /** How the file ends: "rotate" (FLUSH BINARY LOGS or max_binlog_size: the next file follows) or "stop" (server shutdown). */
    endsWith: z.enum(['rotate', 'stop']),
    /** Committed transactions in the file, and the commit time of the first and last (null when none). */
    transactions: z.number().int().nonnegative(),
    firstCommitAt: z.iso.datetime().nullable(),
    lastCommitAt: z.iso.datetime().nullable(),
    plaintextBytes: bytes,
    plaintextSha256: sha256Hex,
    ciphertextBytes: bytes,
    ciphertextSha256: sha256Hex,
    compression: z.enum(['zstd', 'gzip', 'none']),
    /** Key ids as they appear in the PKESK packets, to check the message's addressees without a key. */
    recipientKeyIds: z.array(z.string().regex(/^[0-9a-f]{16}$/)).min(1),
    signingKeyFingerprint: fingerprint,
    archivedAt: z.iso.datetime(),
    agentVersion: z.string().min(1).max(40),
  })
  .strict()
  .superRefine((record, context) => {
    for (const field of ['gtidStart', 'gtidEnd'] as const) {
      try {
        if (canonicalGtidState(record[field], record.flavor) !== record[field]) {
          context.addIssue({ code: 'custom', path: [field], message: 'must be a canonical GTID state (format/binlog.ts canonicalGtidState)' });
        }
      } catch (error) {
        context.addIssue({ code: 'custom', path: [field], message: (error as Error).message });
      }
    }
  });
export type BinlogRecord = z.infer<typeof binlogRecordSchema>;

/** Why a (signature-checked) record does not belong under `key`; null when it does. */
export function binlogRecordMismatch(record: BinlogRecord, key: string): string | null {
  const expected = binlogObjectKey(record.group, record.host, record.source, record.binlogFile);
  return expected === key ? null : `the record is for ${expected}, not ${key} (object copied or swapped)`;
}
