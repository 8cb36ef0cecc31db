import { strict as assert } from 'node:assert';
import { before, describe, it } from 'node:test';
import { generateKeyPair, readPrivateKey, readPublicKeys, type PrivateKey, type PublicKey } from '../../runtime/pgp';
import { openWalRecord, signWalRecord, USER_METADATA_LIMIT_BYTES, WalRecordError } from '../../runtime/wal-record';
import { WAL_RECORD_METADATA, type WalRecord } from '../../format/wal-record';
import { walObjectKey, parseKey } from '../../format/layout';
import { selfInvocation, shellCommand, shellQuote } from '../../agent/src/pitr/self-invocation';

let signing: PrivateKey;
let trusted: PublicKey[];
let other: PrivateKey;

function record(overrides: Partial<WalRecord> = {}): WalRecord {
  return {
    formatVersion: 1,
    group: 'db',
    host: 'pg1',
    source: 'main',
    walFile: '000000010000000000000003',
    systemIdentifier: '7314159265358979323',
    walSegmentSize: 16 * 1024 * 1024,
    plaintextBytes: 16 * 1024 * 1024,
    plaintextSha256: 'a'.repeat(64),
    ciphertextBytes: 40_000,
    ciphertextSha256: 'b'.repeat(64),
    compression: 'zstd',
    recipientKeyIds: ['0123456789abcdef', 'fedcba9876543210'],
    signingKeyFingerprint: signing.getFingerprint(),
    archivedAt: '2026-12-06T08:00:00.000Z',
    agentVersion: '0.1.0',
    ...overrides,
  };
}

const KEY = walObjectKey('db', 'pg1', 'main', '000000010000000000000003');

describe('WAL record in object metadata', () => {
  before(async () => {
    const pair = await generateKeyPair({ name: 'wal signer' }, undefined, { signOnly: true });
    signing = await readPrivateKey(pair.privateKey, 'test key');
    trusted = await readPublicKeys(pair.publicKey, 'test key');
    other = await readPrivateKey((await generateKeyPair({ name: 'intruder' }, undefined, { signOnly: true })).privateKey, 'intruder');
  });

  it('round-trips, fits S3 user metadata with room to spare, and names its key', async () => {
    const metadata = await signWalRecord(record(), signing);
    const size = Object.entries(metadata).reduce((sum, [k, v]) => sum + k.length + v.length, 0);
    assert.ok(size < USER_METADATA_LIMIT_BYTES * 0.75, `record takes ${size} bytes`);
    const { record: opened, signerFingerprint } = await openWalRecord(metadata, trusted, KEY);
    assert.equal(opened.walFile, '000000010000000000000003');
    assert.equal(signerFingerprint, signing.getFingerprint());
    assert.deepEqual(parseKey(KEY), { kind: 'wal', group: 'db', host: 'pg1', source: 'main', timeline: 1, walFile: '000000010000000000000003' });
  });

  it('refuses a record moved to another key (a swapped object)', async () => {
    const metadata = await signWalRecord(record(), signing);
    await assert.rejects(openWalRecord(metadata, trusted, walObjectKey('db', 'pg1', 'main', '000000010000000000000004')), (e: unknown) => e instanceof WalRecordError && e.problem === 'wrong-key');
  });

  it('refuses an edited payload, a foreign signer and a missing record', async () => {
    const metadata = await signWalRecord(record(), signing);
    const edited = Buffer.from(metadata[WAL_RECORD_METADATA.payload], 'base64').toString('utf8').replace('"b', '"c');
    await assert.rejects(
      openWalRecord({ ...metadata, [WAL_RECORD_METADATA.payload]: Buffer.from(edited).toString('base64') }, trusted, KEY),
      (e: unknown) => e instanceof WalRecordError && e.problem === 'bad-signature',
    );
    const foreign = await signWalRecord(record({ signingKeyFingerprint: other.getFingerprint() }), other);
    await assert.rejects(openWalRecord(foreign, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'unknown-signer');
    await assert.rejects(openWalRecord({}, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'missing');
    await assert.rejects(openWalRecord({ ...metadata, [WAL_RECORD_METADATA.signature]: 'bm90IGEgc2ln' }, trusted, KEY), (e: unknown) => e instanceof WalRecordError && e.problem === 'malformed');
  });

  it('will not sign with a key the record does not name', async () => {
    await assert.rejects(signWalRecord(record({ signingKeyFingerprint: other.getFingerprint() }), signing), /fingerprint of the key that signs it/);
  });
});

describe('self invocation', () => {
  it('runs the same node with the same options and script, quoted for /bin/sh', () => {
    const words = selfInvocation();
    assert.equal(words[0], process.execPath);
    assert.ok(words[words.length - 1].startsWith('/'));
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    assert.equal(shellCommand(['a b', '%f', '/x/y']), `'a b' %f /x/y`);
  });
});
