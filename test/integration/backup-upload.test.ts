import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { CreateBucketCommand, S3Client, UploadPartCommand, CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import { withPayloadHash } from '../../agent/src/backup/upload/multipart';
import { createAgentSandbox } from '../harness/agent';
import { uniqueName } from '../harness/aws';
import { startS3Proxy } from '../harness/s3-proxy';

/**
 * What the agent sends to S3, seen on the wire: every part carries the SHA-256 of its own bytes as
 * the SigV4 payload hash (so S3 rejects a part damaged in transit), taken from the same one-pass
 * digest that the signed manifest records; writes are conditional; objects are tagged.
 */
test('each uploaded part is signed with its own SHA-256, which is also the manifest part digest', async () => {
  const sandbox = await createAgentSandbox();
  const proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint);
  try {
    // A pg_dump that emits 13 MB of incompressible bytes: three parts of 5 MiB after encryption.
    const bin = join(sandbox.dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['psql', 'pg_dumpall']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
    writeFileSync(join(bin, 'pg_dump'), '#!/bin/sh\nif [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\nhead -c 13000000 /dev/urandom\n');
    chmodSync(join(bin, 'pg_dump'), 0o755);
    const config = sandbox.config({
      endpoint: proxy.url,
      upload: { partSizeMiB: 5 },
      sources: [{ name: 'wire', type: 'postgres', databases: ['postgres'], host: '127.0.0.1', user: 'postgres', binDir: bin }],
    });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
    assert.equal(result.code, EXIT.OK, result.log);

    const parts = proxy.seen.filter((r) => r.method === 'PUT' && r.query.has('partNumber'));
    assert.equal(parts.length, 3, '13 MB of incompressible data in 5 MiB parts');
    for (const part of parts) {
      assert.equal(part.headers['x-amz-content-sha256'], part.bodySha256, `part ${part.query.get('partNumber')} payload hash`);
      assert.equal(part.headers['x-amz-checksum-sha256'], Buffer.from(part.bodySha256, 'hex').toString('base64'), `part ${part.query.get('partNumber')} checksum`);
    }

    // Kept-alive connections: a part that asks for "100 Continue" gets a throwaway connection from
    // the SDK (a TCP and TLS handshake per part, to real S3) and waits a round trip before its body.
    for (const part of parts) {
      assert.equal(part.headers.expect, undefined, `part ${part.query.get('partNumber')} sent with Expect: ${part.headers.expect}`);
      assert.notEqual(part.headers.connection, 'close', `part ${part.query.get('partNumber')} asks for its connection to be closed`);
    }
    const connections = new Set(proxy.seen.map((r) => r.connection));
    assert.ok(connections.size < proxy.seen.length, `${proxy.seen.length} requests came on ${connections.size} connections: none was reused`);

    const manifestKey = (await sandbox.listKeys('backups/daily/testgroup/testhost/wire/')).find((k) => k.endsWith('.manifest.json'))!;
    const { document } = await openManifest((await sandbox.getObject(manifestKey)).toString(), await readPublicKeys(sandbox.signing.publicKey, 's'));
    const byNumber = [...parts].sort((a, b) => Number(a.query.get('partNumber')) - Number(b.query.get('partNumber')));
    assert.deepEqual(document.artifacts[0].parts.sha256, byNumber.map((p) => p.bodySha256));

    const create = proxy.seen.find((r) => r.method === 'POST' && r.query.has('uploads'))!;
    assert.equal(create.headers['x-amz-checksum-algorithm'], 'SHA256');
    assert.equal(create.headers['x-amz-tagging'], 'coldseal%3Agroup=testgroup&coldseal%3Ahost=testhost&coldseal%3Asource=wire&coldseal%3Atier=daily');
    const complete = proxy.seen.find((r) => r.method === 'POST' && r.query.has('uploadId'))!;
    assert.equal(complete.headers['if-none-match'], '*', 'the multipart upload completes only if the key is new');
    const manifestPut = proxy.seen.find((r) => r.method === 'PUT' && !r.query.has('partNumber'))!;
    assert.equal(manifestPut.headers['if-none-match'], '*', 'the manifest is written only if the key is new');
  } finally {
    await proxy.close();
  }
});

test('the signer takes the part hash already computed instead of hashing the payload again', async () => {
  const sandbox = await createAgentSandbox();
  const proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint);
  try {
    const s3 = new S3Client({ ...sandbox.account.clientConfig, endpoint: proxy.url, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const bucket = uniqueName('payload');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'k' }));
    // A hash deliberately not the body's: only a signer that uses it sends it.
    const marker = 'f'.repeat(64);
    await s3.send(withPayloadHash(new UploadPartCommand({ Bucket: bucket, Key: 'k', UploadId, PartNumber: 1, Body: Buffer.from('hello') }), marker)).catch(() => undefined);
    await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'k', UploadId, PartNumber: 2, Body: Buffer.from('hello') }));
    const sent = proxy.seen.filter((r) => r.query.has('partNumber')).map((r) => r.headers['x-amz-content-sha256']);
    assert.deepEqual(sent, [marker, proxy.seen.filter((r) => r.query.has('partNumber'))[1].bodySha256]);
  } finally {
    await proxy.close();
  }
});

test('Object Lock retention per tier and SSE-KMS are set on every object, artifacts and manifest', async () => {
  const sandbox = await createAgentSandbox({ objectLock: true });
  const proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint);
  try {
    const config = sandbox.config({
      endpoint: proxy.url,
      objectLock: { weekly: { mode: 'COMPLIANCE', days: 90 }, daily: { mode: 'GOVERNANCE', days: 35 } },
      upload: { kmsKeyId: 'arn:aws:kms:us-east-1:111122223333:key/test-key' },
      sources: [{ name: 'locked', type: 'files', paths: [sandbox.dir] }],
    });
    const before = Date.now();
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'weekly']);
    assert.equal(result.code, EXIT.OK, result.log);
    const writes = proxy.seen.filter((r) => (r.method === 'PUT' && !r.query.has('partNumber')) || (r.method === 'POST' && r.query.has('uploads')));
    assert.equal(writes.length, 2, 'the artifact (one small PUT) and the manifest');
    for (const write of writes) {
      assert.equal(write.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
      const until = Date.parse(String(write.headers['x-amz-object-lock-retain-until-date']));
      assert.ok(Math.abs(until - (before + 90 * 86_400_000)) < 120_000, `retain until ${write.headers['x-amz-object-lock-retain-until-date']}`);
      assert.equal(write.headers['x-amz-server-side-encryption'], 'aws:kms');
      assert.equal(write.headers['x-amz-server-side-encryption-aws-kms-key-id'], 'arn:aws:kms:us-east-1:111122223333:key/test-key');
      assert.ok(write.headers['x-amz-checksum-sha256'] || write.headers['x-amz-checksum-crc32'], 'S3 requires a checksum with Object Lock');
    }
    assert.equal((await sandbox.listKeys('backups/weekly/')).length, 2);
  } finally {
    await proxy.close();
  }
});
