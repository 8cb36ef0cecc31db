import { createHash } from 'node:crypto';
import { VERIFIED_PREFIX, WAL_PREFIX } from '../../../format/layout';
import { assertWalSegmentSize, parseWalFileName, segmentNumberOf } from '../../../format/wal';
import type { WindowBinlog } from '../../../format/binlog-window';
import type { WalRecord } from '../../../format/wal-record';
import { messageRecipientKeyIds } from '../../../runtime/pgp';
import { openWalRecord, WalRecordError, type WalRecordProblem } from '../../../runtime/wal-record';
import type { BucketStore, ListedObject } from '../../shared/ports';
import type { Budget } from './hashing';
import type { GroupKeys } from './keys';

/**
 * The keyless checks of one archived log object (a PostgreSQL WAL file, or a MySQL/MariaDB binary
 * log: same metadata record scheme, same checks, binlog-pitr.ts opens its record), and what the
 * verifier remembers of it between runs.
 *
 * A WAL object carries its signed record in its own user metadata (format/wal-record.ts): a HEAD
 * reads it. The record names the object's key (a copy under another segment's name fails), the
 * cluster's system identifier, wal_segment_size, the ciphertext's size and SHA-256 and the key ids
 * it is encrypted to. The object's bytes are hashed in one streaming GET (a WAL object is at most
 * one compressed segment, ≤ 64 MiB plus OpenPGP framing, a binary log up to max_binlog_size; never buffered: only the first
 * 4 KiB are kept, for the recipients in the message head, as for backups).
 *
 * Incremental: the results are kept per source in one state object (state/verified/wal/<g>/<h>/<s>.json,
 * one GET and one PUT per source and run instead of one per object), keyed by WAL file name with
 * the listing's ETag. An object is checked again only when its ETag (or size) changes, when its
 * hash is still pending (budget ran out), or when the daily sample picks it for a re-read.
 */

export const WAL_STATE_SCHEMA = 'coldseal-wal-verification/1';
/** PKESK packets are ~90 bytes each for cv25519; 4 KiB covers dozens of recipients. */
const HEAD_BYTES = 4096;

/** Which archive an object belongs to: its checks and messages name it (PostgreSQL WAL, MySQL/MariaDB binary logs). */
export type LogKind = 'wal' | 'binlog';
type ObjectCheckName = 'signature' | 'record' | 'sha256' | 'recipients';
export type WalObjectCheck = `${LogKind}-${ObjectCheckName}`;

export interface WalProblem {
  readonly check: WalObjectCheck;
  readonly summary: string;
  readonly detail?: string;
  readonly since: string;
}

export interface WalObjectState {
  /** The listing's ETag (or size@lastModified where a listing gives none): other bytes under the key change it. */
  readonly identity: string;
  readonly size: number;
  readonly firstCheckedAt: string;
  /** When the bytes were last hashed and matched; null while the hash is pending (budget). */
  readonly hashedAt: string | null;
  /** From the signed record, once its signature checked out. */
  readonly archivedAt?: string;
  readonly systemIdentifier?: string;
  readonly walSegmentSize?: number;
  readonly recipientKeyIds?: readonly string[];
  /** Object Lock retain-until date from the HEAD; null: no retention (absent in states written before it was recorded). */
  readonly lockUntil?: string | null;
  /** A binary log's record as the window needs it (format/binlog-window.ts), and its server: continuity is judged without a HEAD per run. */
  readonly binlog?: WindowBinlog & { readonly serverId: number };
  /** A failed check: the object is reported each run, without reading it again, until its bytes change. */
  readonly problem?: WalProblem;
}

export interface WalSourceState {
  readonly schema: typeof WAL_STATE_SCHEMA;
  /** By WAL file name. */
  readonly objects: Record<string, WalObjectState>;
}

export function walStateKey(group: string, host: string, source: string): string {
  return `${VERIFIED_PREFIX}${WAL_PREFIX}${group}/${host}/${source}.json`;
}

export function objectIdentity(o: ListedObject): string {
  return o.etag ?? `${o.size}@${o.lastModified.toISOString()}`;
}

export async function loadWalState(store: BucketStore, key: string): Promise<WalSourceState> {
  const text = await store.getText(key);
  if (text) {
    try {
      const parsed = JSON.parse(text) as WalSourceState;
      if (parsed.schema === WAL_STATE_SCHEMA && parsed.objects && typeof parsed.objects === 'object') return parsed;
    } catch {
      // An unreadable state only costs a re-read of every object.
    }
  }
  return { schema: WAL_STATE_SCHEMA, objects: {} };
}

const NOUNS: Record<LogKind, { record: string; file: string }> = { wal: { record: 'WAL record', file: 'WAL file' }, binlog: { record: 'binary log record', file: 'binary log' } };

function recordSummary(kind: LogKind, problem: WalRecordProblem): string {
  const { record, file } = NOUNS[kind];
  return {
    missing: `has no signed ${record} in its metadata`,
    malformed: `has a ${record} whose signature is not an OpenPGP signature`,
    'unknown-signer': 'is not signed by a trusted signing key of its group',
    'bad-signature': 'does not match its signature: its record was changed after it was signed',
    'invalid-payload': `has a signed ${record} that does not match the schema`,
    'wrong-key': `carries the signed record of another ${file}: it was copied or swapped under this name`,
  }[problem];
}

export function sameKeyIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

const short = (hex: string) => `${hex.slice(0, 12)}...`;

export interface WalCheckContext {
  readonly store: BucketStore;
  readonly keys: GroupKeys;
  readonly budget: Budget;
  readonly now: Date;
}

export interface WalCheckOutcome {
  readonly state: WalObjectState;
  readonly hashedBytes: number;
}

/** What the integrity checks need of an object's signed record, whichever archive it belongs to. */
export interface OpenedLogRecord {
  readonly ciphertextBytes: number;
  readonly ciphertextSha256: string;
  readonly recipientKeyIds: readonly string[];
  readonly archivedAt: string;
}

/**
 * Opens and judges one object's record: the record and the facts to remember, or the problem
 * (with the facts known so far). Throws WalRecordError for what openLogRecord refuses.
 */
export type LogRecordOpener = (metadata: Record<string, string> | undefined, key: string) => Promise<{ record: OpenedLogRecord; facts: Partial<WalObjectState>; problem?: Omit<WalProblem, 'since'> }>;

/**
 * Checks one WAL object: record (signature, schema, own key, a wal_segment_size that fits its
 * name), then checkLogObject's size, hash and recipients. Null when the object is gone.
 */
export async function checkWalObject(ctx: WalCheckContext, object: ListedObject, walFile: string, previous: WalObjectState | undefined): Promise<WalCheckOutcome | null> {
  return checkLogObject(ctx, object, previous, 'wal', async (metadata, key) => {
    const record: WalRecord = (await openWalRecord(metadata, ctx.keys.signing, key)).record;
    const facts = { archivedAt: record.archivedAt, systemIdentifier: record.systemIdentifier, walSegmentSize: record.walSegmentSize, recipientKeyIds: record.recipientKeyIds };
    try {
      assertWalSegmentSize(record.walSegmentSize);
      if (parseWalFileName(walFile).kind !== 'history') segmentNumberOf(walFile, record.walSegmentSize);
    } catch (error) {
      return { record, facts, problem: { check: 'wal-record', summary: `has a signed record whose wal_segment_size (${record.walSegmentSize}) does not fit its name`, detail: (error as Error).message } };
    }
    return { record, facts };
  });
}

/**
 * Checks one object of a log archive: its record (through `open`), the size the listing shows, the
 * SHA-256 of its bytes when the budget allows (else only the head, and the hash stays pending),
 * and the OpenPGP recipients in the message head against the signed record. Null when the object is gone.
 */
export async function checkLogObject(ctx: WalCheckContext, object: ListedObject, previous: WalObjectState | undefined, kind: LogKind, open: LogRecordOpener): Promise<WalCheckOutcome | null> {
  const now = ctx.now.toISOString();
  const identity = objectIdentity(object);
  const firstCheckedAt = previous && previous.identity === identity ? previous.firstCheckedAt : now;
  const head = await ctx.store.head(object.key);
  if (!head) return null;
  const since = head.lastModified.toISOString();
  // The verifier is granted s3:GetObjectRetention (infra/lib/lambda-function.ts): no lock shown is no lock.
  const base = { identity, size: head.size, firstCheckedAt, hashedAt: null, lockUntil: head.lockMode && head.lockUntil ? head.lockUntil.toISOString() : null };
  const failed = (problem: Omit<WalProblem, 'since'>, facts: Partial<WalObjectState> = {}): WalCheckOutcome => ({ state: { ...base, ...facts, problem: { ...problem, since } }, hashedBytes: 0 });

  let record: OpenedLogRecord;
  let facts: Partial<WalObjectState>;
  try {
    const opened = await open(head.metadata, object.key);
    if (opened.problem) return failed(opened.problem, opened.facts);
    ({ record, facts } = opened);
  } catch (error) {
    if (!(error instanceof WalRecordError)) throw error;
    const check: WalObjectCheck = error.problem === 'invalid-payload' || error.problem === 'wrong-key' ? `${kind}-record` : `${kind}-signature`;
    return failed({ check, summary: recordSummary(kind, error.problem), detail: error.message });
  }
  if (head.size !== record.ciphertextBytes) {
    return failed({ check: `${kind}-sha256`, summary: `is ${head.size} bytes, its signed record says ${record.ciphertextBytes} (${head.size < record.ciphertextBytes ? 'truncated' : 'grown'})` }, facts);
  }

  let headBytes = Buffer.alloc(0);
  const keepHead = (chunk: Uint8Array) => {
    if (headBytes.length < HEAD_BYTES) headBytes = Buffer.concat([headBytes, Buffer.from(chunk.subarray(0, HEAD_BYTES - headBytes.length))]);
  };
  let hashedBytes = 0;
  let hashed = false;
  if (!ctx.budget.exhausted) {
    // Reserved before the read: concurrent checks see the budget as it will be.
    ctx.budget.consume(head.size);
    const hash = createHash('sha256');
    for await (const chunk of await ctx.store.getRange(object.key, 0)) {
      hash.update(chunk);
      hashedBytes += chunk.length;
      keepHead(chunk);
    }
    if (hashedBytes !== head.size) ctx.budget.consume(hashedBytes - head.size);
    ctx.budget.hashedObjects += 1;
    const sha256 = hash.digest('hex');
    if (hashedBytes !== record.ciphertextBytes || sha256 !== record.ciphertextSha256) {
      return { ...failed({ check: `${kind}-sha256`, summary: 'does not match the SHA-256 in its signed record: its bytes were changed or damaged', detail: `read ${hashedBytes} bytes with SHA-256 ${short(sha256)}, the signed record says ${record.ciphertextBytes} bytes, ${short(record.ciphertextSha256)}` }, facts), hashedBytes };
    }
    hashed = true;
  } else {
    for await (const chunk of await ctx.store.getRange(object.key, 0, Math.min(HEAD_BYTES, head.size))) keepHead(chunk);
  }
  let messageIds: string[];
  try {
    messageIds = await messageRecipientKeyIds(headBytes);
  } catch (error) {
    return { ...failed({ check: `${kind}-recipients`, summary: 'does not start like an OpenPGP message encrypted to public keys', detail: (error as Error).message }, facts), hashedBytes };
  }
  if (!sameKeyIds(messageIds, record.recipientKeyIds)) {
    return { ...failed({ check: `${kind}-recipients`, summary: `is encrypted to key ids ${messageIds.join(', ')}, not to those its signed record lists (${record.recipientKeyIds.join(', ')})` }, facts), hashedBytes };
  }
  return { state: { ...base, ...facts, hashedAt: hashed ? now : null }, hashedBytes };
}
