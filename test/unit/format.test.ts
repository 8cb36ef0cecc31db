import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { artifactKey, dateOfStamp, drillReceiptKey, hostNameFrom, manifestKey, parseKey, stampOf } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { groupParameters } from '../../format/parameters';
import { DigestStream } from '../../runtime/digest';
import { generateKeyPair, readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { openManifest, signManifest, SignedDocumentError } from '../../runtime/signed-document';

const loc = { tier: 'daily', group: 'prod', host: 'db-1', source: 'main' } as const;

describe('key layout', () => {
  test('keys round-trip through parseKey, including database names with dots, slashes and unicode', () => {
    const stamp = stampOf(new Date('2026-11-22T01:02:03.456Z'));
    assert.equal(stamp, '20261122T010203Z');
    assert.deepEqual(dateOfStamp(stamp), new Date('2026-11-22T01:02:03Z'));
    const key = artifactKey(loc, stamp, 'my.db/ä b', 'pgdump.zst');
    assert.equal(key, 'backups/daily/prod/db-1/main/20261122T010203Z.my%2Edb%2F%C3%A4%20b.pgdump.zst.pgp');
    assert.deepEqual(parseKey(key), { kind: 'artifact', ...loc, stamp, artifact: 'my.db/ä b', extension: 'pgdump.zst', segment: 1 });
    assert.deepEqual(parseKey(manifestKey(loc, stamp)), { kind: 'manifest', ...loc, stamp });
    assert.deepEqual(parseKey(drillReceiptKey('prod', 'drill-1', stamp)), { kind: 'drill-receipt', group: 'prod', host: 'drill-1', stamp });
  });

  test('foreign keys are not ours, and bad names are refused with the rule', () => {
    for (const key of ['reports/2026-11-22/verification.json', 'backups/hourly/prod/h/s/20261122T010203Z.manifest.json', 'backups/daily/prod/h/s/notastamp.manifest.json', 'backups/daily/prod/h/s/20261122T010203Z.x.pgdump']) {
      assert.equal(parseKey(key), null, key);
    }
    assert.throws(() => manifestKey({ ...loc, host: 'a/b' }, '20261122T010203Z'), /host "a\/b" is not a valid name: use 1-63 characters/);
    assert.throws(() => groupParameters('bad group'), /group "bad group" is not a valid name/);
  });

  test('OS host names become valid key segments', () => {
    assert.equal(hostNameFrom('ip-10-0-1-2.eu-west-1.compute.internal'), 'ip-10-0-1-2');
    assert.equal(hostNameFrom('_weird!host'), 'weird-host');
  });

  test('parameter names derive from the group and the prefix', () => {
    assert.deepEqual(groupParameters('prod', '/acme/coldseal/'), {
      config: '/acme/coldseal/groups/prod/config',
      recipients: '/acme/coldseal/groups/prod/recipients',
      signingKey: '/acme/coldseal/groups/prod/signing-key',
      signingPublicKeys: '/acme/coldseal/groups/prod/signing-public-keys',
    });
  });
});

describe('ciphertext digests', () => {
  test('whole and per-part SHA-256 equal hashing the bytes directly, whatever the chunking', async () => {
    const data = Buffer.alloc(10_000_123);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 9)) & 0xff;
    const chunks: Buffer[] = [];
    for (let offset = 0, size = 1; offset < data.length; offset += size, size = (size * 7) % 300_001 + 1) chunks.push(data.subarray(offset, offset + size));
    const digest = new DigestStream(1_000_000);
    await pipeline(Readable.from(chunks), digest, new Writable({ write: (_chunk, _encoding, callback) => callback() }));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(digest.digest.sha256, sha(data));
    assert.equal(digest.digest.bytes, data.length);
    assert.equal(digest.digest.partSha256.length, 11);
    assert.deepEqual(digest.digest.partSha256, Array.from({ length: 11 }, (_, i) => sha(data.subarray(i * 1_000_000, (i + 1) * 1_000_000))));
  });

  test('an empty stream has one part: the hash of nothing', () => {
    const digest = new DigestStream(5);
    const result = digest.finish();
    assert.equal(result.partSha256.length, 1);
    assert.equal(result.sha256, createHash('sha256').digest('hex'));
  });
});

describe('signed manifests', () => {
  const manifest = (fingerprint: string): Manifest => ({
    formatVersion: 1,
    ...loc,
    stamp: '20261122T010203Z',
    engine: { kind: 'postgres', version: '15.20' },
    startedAt: '2026-11-22T01:02:03.000Z',
    finishedAt: '2026-11-22T01:03:03.000Z',
    compression: { algorithm: 'zstd', level: 3, implementation: 'zstd-cli 1.5.4' },
    encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', recipientFingerprints: ['a'.repeat(40)], recipientKeyIds: ['b'.repeat(16)] },
    signingKeyFingerprint: fingerprint,
    artifacts: [
      {
        name: 'app',
        kind: 'database',
        key: 'backups/daily/prod/db-1/main/20261122T010203Z.app.pgdump.zst.pgp',
        contentFormat: 'pg-custom',
        tool: { name: 'pg_dump', version: '15', args: [] },
        exitCode: 0,
        warnings: [],
        completion: { method: 'exit-status', detail: 'ok' },
        startedAt: '2026-11-22T01:02:03.000Z',
        finishedAt: '2026-11-22T01:03:03.000Z',
        uncompressedBytes: 100,
        compressedBytes: 50,
        ciphertextBytes: 80,
        ciphertextSha256: 'c'.repeat(64),
        parts: { size: 16777216, sha256: ['c'.repeat(64)] },
      },
    ],
    agent: { version: '0.1.0', node: 'v20' },
  });

  test('a signed manifest opens with the group key and is refused when edited, foreign, or not a manifest', async () => {
    const signer = await generateKeyPair({ name: 's' });
    const stranger = await generateKeyPair({ name: 'x' });
    const key = await readPrivateKey(signer.privateKey, 'signer');
    const trusted = await readPublicKeys(signer.publicKey, 'trusted');
    const text = await signManifest(manifest(signer.fingerprint), key);
    const opened = await openManifest(text, trusted);
    assert.equal(opened.signerFingerprint, signer.fingerprint);
    assert.equal(opened.document.artifacts[0].ciphertextSha256, 'c'.repeat(64));

    const edited = text.replace('\\"ciphertextBytes\\": 80', '\\"ciphertextBytes\\": 81');
    assert.notEqual(edited, text);
    await assert.rejects(openManifest(edited, trusted), (e: SignedDocumentError) => e.problem === 'bad-signature' && /edited after signing/.test(e.message));

    const foreign = await signManifest(manifest(stranger.fingerprint), await readPrivateKey(stranger.privateKey, 'x'));
    await assert.rejects(openManifest(foreign, trusted), (e: SignedDocumentError) => e.problem === 'unknown-signer' && /not a trusted signing key of this group/.test(e.message));
    await assert.rejects(openManifest('{"hello": 1}', trusted), (e: SignedDocumentError) => e.problem === 'malformed-envelope');
    await assert.rejects(signManifest(manifest(stranger.fingerprint), key), /must be the fingerprint of the key that signs it/);
  });

  test('readPublicKeys refuses private keys and garbage, naming what was wrong', async () => {
    const pair = await generateKeyPair({ name: 'r' });
    await assert.rejects(readPublicKeys(pair.privateKey, 'recipients[0]'), /recipients\[0\] holds a PRIVATE key/);
    await assert.rejects(readPublicKeys('hello', 'recipients[1]'), /recipients\[1\] is not an armored OpenPGP public key/);
  });
});
