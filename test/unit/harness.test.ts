import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { newMotoAccount, uniqueName } from '../harness/aws';

test('each test account sees only its own buckets in the shared moto_server', async () => {
  const a = await newMotoAccount();
  const b = await newMotoAccount();
  assert.notEqual(a.accountId, b.accountId);
  const s3a = new S3Client(a.clientConfig);
  const s3b = new S3Client(b.clientConfig);
  const bucket = uniqueName('harness');
  await s3a.send(new CreateBucketCommand({ Bucket: bucket }));
  const seenByA = (await s3a.send(new ListBucketsCommand({}))).Buckets?.map((x) => x.Name);
  const seenByB = (await s3b.send(new ListBucketsCommand({}))).Buckets?.map((x) => x.Name) ?? [];
  assert.ok(seenByA?.includes(bucket));
  assert.ok(!seenByB.includes(bucket));
});
