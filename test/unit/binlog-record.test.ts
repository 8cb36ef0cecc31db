import { strict as assert } from 'node:assert';
import { before, describe, it } from 'node:test';
import { binlogRecordMismatch, binlogRecordSchema, BINLOG_RECORD_METADATA, type BinlogRecord } from '../../format/binlog-record';
import { canonicalGtidState } from '../../format/binlog';
import { binlogObjectKey } from '../../format/layout';
import { generateKeyPair, readPrivateKey, readPublicKeys, type PrivateKey, type PublicKey } from '../../runtime/pgp';
import { openBinlogRecord, signBinlogRecord } from '../../runtime/binlog-record';
import { openWalRecord, signWalRecord, USER_METADATA_LIMIT_BYTES, WalRecordError } from '../../runtime/wal-record';

let signing: PrivateKey;
let trusted: PublicKey[];
let other: PrivateKey;

function record(overrides: Partial<BinlogRecord> = {}): BinlogRecord {
  return {
    formatVersion: 1,
    kind: 'binlog',
    group: 'db',
    host: 'maria1',
    source: 'shop',
    binlogFile: 'mariadb-bin.000003',
    flavor: 'mariadb',
    serverVersion: '10.11.6-MariaDB-0+deb12u1-log',
    serverId: 1,
    gtidStart: '0-1-40',
    gtidEnd: '0-1-42',
    openedAt: '2026-12-06T08:00:00.000Z',
    closedAt: '2026-12-06T08:05:00.000Z',
    endsWith: 'rotate',
    transactions: 2,
    firstCommitAt: '2026-12-06T08:01:00.000Z',
    lastCommitAt: '2026-12-06T08:04:00.000Z',
    plaintextBytes: 1_048_576,
    plaintextSha256: 'a'.repeat(64),
    ciphertextBytes: 40_000,
    ciphertextSha256: 'b'.repeat(64),
    compression: 'zstd',
    recipientKeyIds: ['0123456789abcdef', 'fedcba9876543210'],
    signingKeyFingerprint: signing.getFingerprint(),
    archivedAt: '2026-12-06T08:05:30.000Z',
    agentVersion: '0.1.0',
    ...overrides,
  };
}

const KEY = binlogObjectKey('db', 'maria1', 'shop', 'mariadb-bin.000003');
const metadataBytes = (m: Record<string, string>) => Object.entries(m).reduce((sum, [k, v]) => sum + Buffer.byteLength(k) + Buffer.byteLength(v), 0);

describe('binary log record in object metadata', () => {
  before(async () => {
    const pair = await generateKeyPair({ name: 'binlog signer' }, undefined, { signOnly: true });
    signing = await readPrivateKey(pair.privateKey, 'test key');
    trusted = await readPublicKeys(pair.publicKey, 'test key');
    other = await readPrivateKey((await generateKeyPair({ name: 'intruder' }, undefined, { signOnly: true })).privateKey, 'intruder');
  });

  it('round-trips under the WAL record keys and names its key', async () => {
    const metadata = await signBinlogRecord(record(), signing);
    assert.deepEqual(Object.keys(metadata).sort(), [BINLOG_RECORD_METADATA.payload, BINLOG_RECORD_METADATA.signature].sort());
    const { record: opened, signerFingerprint } = await openBinlogRecord(metadata, trusted, KEY);
    assert.equal(opened.binlogFile, 'mariadb-bin.000003');
    assert.equal(opened.gtidEnd, '0-1-42');
    assert.equal(signerFingerprint, signing.getFingerprint());
    assert.equal(binlogRecordMismatch(opened, KEY), null);
  });

  it('refuses a record under another key (a swapped or copied object)', async () => {
    const metadata = await signBinlogRecord(record(), signing);
    const elsewhere = binlogObjectKey('db', 'maria1', 'shop', 'mariadb-bin.000004');
    await assert.rejects(openBinlogRecord(metadata, trusted, elsewhere), (e: unknown) => e instanceof WalRecordError && e.problem === 'wrong-key' && /the record is for wal\/db\/maria1\/shop\/binlog\/mariadb-bin\.000003\.pgp, not .*000004\.pgp \(object copied or swapped\)/.test(e.message));
    await assert.rejects(openBinlogRecord(metadata, trusted, binlogObjectKey('db', 'maria2', 'shop', 'mariadb-bin.000003')), (e: unknown) => e instanceof WalRecordError && e.problem === 'wrong-key');
  });

  it('refuses an edited payload, a foreign signer and a missing record, naming binlog-push', async () => {
    const metadata = await signBinlogRecord(record(), signing);
    const edited = { ...metadata, [BINLOG_RECORD_METADATA.payload]: Buffer.from(JSON.stringify({ ...record(), gtidEnd: '0-1-41' })).toString('base64') };
    await assert.rejects(openBinlogRecord(edited, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'bad-signature' && /binary log record signature check failed/.test(e.message));
    const foreign = await signBinlogRecord(record({ signingKeyFingerprint: other.getFingerprint() }), other);
    await assert.rejects(openBinlogRecord(foreign, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'unknown-signer');
    await assert.rejects(openBinlogRecord({}, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'missing' && /not written by coldseal pitr binlog-push/.test(e.message));
    await assert.rejects(signBinlogRecord(record({ signingKeyFingerprint: other.getFingerprint() }), signing), /fingerprint of the key that signs it/);
  });

  it('a WAL record and a binary log record are never taken for one another (same metadata keys)', async () => {
    const binlog = await signBinlogRecord(record(), signing);
    await assert.rejects(openWalRecord(binlog, trusted, 'wal/db/maria1/shop/00000001/000000010000000000000003.pgp'), (e: unknown) => e instanceof WalRecordError && e.problem === 'invalid-payload');
    const wal = await signWalRecord(
      { formatVersion: 1, group: 'db', host: 'maria1', source: 'shop', walFile: '000000010000000000000003', systemIdentifier: '1', walSegmentSize: 16 * 1024 * 1024, plaintextBytes: 1, plaintextSha256: 'a'.repeat(64), ciphertextBytes: 1, ciphertextSha256: 'b'.repeat(64), compression: 'zstd', recipientKeyIds: ['0123456789abcdef'], signingKeyFingerprint: signing.getFingerprint(), archivedAt: '2026-12-06T08:00:00.000Z', agentVersion: '0.1.0' },
      signing,
    );
    await assert.rejects(openBinlogRecord(wal, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'invalid-payload' && /binary log record is signed but does not match the schema/.test(e.message));
  });

  it('the schema: canonical GTID states only, file names only, MySQL sets too', () => {
    assert.match(binlogRecordSchema.safeParse(record({ gtidEnd: '0-2-5,0-1-42' })).error?.message ?? '', /canonical GTID state/);
    assert.match(binlogRecordSchema.safeParse(record({ gtidEnd: '0-1-x' })).error?.message ?? '', /not a MariaDB GTID/);
    assert.equal(binlogRecordSchema.safeParse(record({ binlogFile: 'mariadb-bin.index' })).success, false);
    assert.equal(binlogRecordSchema.safeParse({ ...record(), extra: 1 }).success, false);
    const U = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
    assert.equal(binlogRecordSchema.safeParse(record({ flavor: 'mysql', gtidStart: `${U}:1-40`, gtidEnd: `${U}:1-42` })).success, true);
    assert.equal(binlogRecordSchema.safeParse(record({ flavor: 'mysql', gtidStart: `${U.toUpperCase()}:1-40`, gtidEnd: `${U}:1-42` })).success, false, 'upper-case UUID is not canonical');
  });

  it('fits S3 user metadata with GTID states of ~200 characters each (12 MariaDB domains); a record that does not fit is refused at signing, with its size', async () => {
    const state = (seq: number) => Array.from({ length: 12 }, (_, d) => `${d}-${1000 + d}-${seq + d}`).join(',');
    const start = canonicalGtidState(state(1_000_000_000), 'mariadb');
    const end = canonicalGtidState(state(1_000_000_100), 'mariadb');
    assert.ok(start.length >= 190 && end.length >= 190, `${start.length}, ${end.length} chars`);
    const metadata = await signBinlogRecord(record({ gtidStart: start, gtidEnd: end }), signing);
    assert.ok(metadataBytes(metadata) <= USER_METADATA_LIMIT_BYTES, `${metadataBytes(metadata)} bytes`);
    const huge = (seq: number) => canonicalGtidState(Array.from({ length: 30 }, (_, d) => `${d}-1-${seq}`).join(','), 'mariadb');
    await assert.rejects(signBinlogRecord(record({ gtidStart: huge(1_000_000_000), gtidEnd: huge(1_000_000_001) }), signing), /the binary log record takes \d+ bytes of user metadata, over S3's 2048/);
  });
});
