import { binlogRecordMismatch, binlogRecordSchema, type BinlogRecord } from '../format/binlog-record';
import type { PrivateKey, PublicKey } from './pgp';
import { openLogRecord, signLogRecord } from './wal-record';

/**
 * Signs and opens the record that rides in a binary log object's user metadata
 * (format/binlog-record.ts), exactly as WAL records are (runtime/wal-record.ts: same metadata
 * keys, same checks; failures are WalRecordError with the same problems).
 */
export async function signBinlogRecord(record: BinlogRecord, key: PrivateKey): Promise<Record<string, string>> {
  return signLogRecord(binlogRecordSchema, record, key, 'binary log record');
}

export async function openBinlogRecord(
  metadata: Record<string, string> | undefined,
  trusted: readonly PublicKey[],
  key: string,
): Promise<{ record: BinlogRecord; signerFingerprint: string }> {
  return openLogRecord(binlogRecordSchema, binlogRecordMismatch, metadata, trusted, key, { what: 'binary log record', writer: 'coldseal pitr binlog-push' });
}
