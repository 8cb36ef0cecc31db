import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { S3Client } from '@aws-sdk/client-s3';
import { INCOMPLETE_UPLOAD_ABORT_DAYS } from '../../format/run-document';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { abortIncompleteUploads, abortSummary, UploadsLeftOpenError, withAbortOutcome } from '../../agent/src/backup/upload/abort-upload';

/** Multipart uploads by key; `stuck` keys ignore aborts; `failing` keys answer every call with an error. */
function s3(open: Record<string, string[]>, options: { stuck?: string[]; failing?: string[] } = {}): { client: S3Client; calls: string[] } {
  const calls: string[] = [];
  const client = {
    send: async (command: { constructor: { name: string }; input: { Key?: string; Prefix?: string; UploadId?: string } }) => {
      const kind = command.constructor.name;
      const key = command.input.Key ?? command.input.Prefix ?? '';
      calls.push(`${kind.replace('Command', '')} ${key}${command.input.UploadId ? ` ${command.input.UploadId}` : ''}`);
      if (options.failing?.includes(key)) throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied' });
      if (kind === 'AbortMultipartUploadCommand') {
        const ids = open[key] ?? [];
        if (!ids.includes(command.input.UploadId!)) throw Object.assign(new Error(''), { name: 'NoSuchUpload' });
        if (!options.stuck?.includes(key)) open[key] = ids.filter((id) => id !== command.input.UploadId);
        return {};
      }
      return { Uploads: (open[key] ?? []).map((UploadId) => ({ Key: key, UploadId })) };
    },
  } as unknown as S3Client;
  return { client, calls };
}

test('aborted by id, and any other upload under the key; an upload already gone counts as aborted', async () => {
  const { client, calls } = s3({ a: ['id-1', 'id-lost'], b: [] });
  const outcome = await abortIncompleteUploads(client, 'bucket', [{ key: 'a', uploadId: 'id-1' }, { key: 'b', uploadId: 'id-9' }]);
  assert.deepEqual(outcome, { aborted: ['a', 'b'], notAborted: [] });
  assert.deepEqual(calls, ['AbortMultipartUpload a id-1', 'ListMultipartUploads a', 'AbortMultipartUpload a id-lost', 'ListMultipartUploads a', 'AbortMultipartUpload b id-9', 'ListMultipartUploads b']);
});

test('an upload S3 still lists, or one that cannot be aborted or listed, is reported with the reason', async () => {
  const stuck = await abortIncompleteUploads(s3({ a: ['id-1'] }, { stuck: ['a'] }).client, 'bucket', [{ key: 'a', uploadId: 'id-1' }]);
  assert.deepEqual(stuck.notAborted, [{ key: 'a', reason: 'S3 still lists the upload after the abort' }]);
  const denied = await abortIncompleteUploads(s3({ a: ['id-1'] }, { failing: ['a'] }).client, 'bucket', [{ key: 'a', uploadId: 'id-1' }]);
  assert.deepEqual(denied, { aborted: [], notAborted: [{ key: 'a', reason: 'Access Denied' }] });
});

test('abortSummary and withAbortOutcome put the outcome into the failure\'s message', async () => {
  assert.equal(abortSummary({ aborted: ['a'], notAborted: [] }), 'the incomplete upload was aborted');
  assert.equal(abortSummary({ aborted: ['a', 'b'], notAborted: [] }), 'the incomplete uploads were aborted');
  assert.equal(abortSummary({ aborted: [], notAborted: [{ key: 'k', reason: 'r' }] }), `could not abort the incomplete upload of k (r); S3's lifecycle rule removes it ${INCOMPLETE_UPLOAD_ABORT_DAYS} days after it began`);
  const failure = new ColdsealError(EXIT.SOURCE, 'pg_dump failed', 'Check the server');
  const aborted = await withAbortOutcome(failure, async () => ({ aborted: ['k'], notAborted: [] }));
  assert.deepEqual([aborted.exitCode, aborted.message, aborted.hint], [EXIT.SOURCE, 'pg_dump failed; the incomplete upload was aborted', 'Check the server']);
  assert.equal(await withAbortOutcome(failure, async () => ({ aborted: [], notAborted: [] })), failure, 'nothing was open: the failure as it was');
  const left = await withAbortOutcome(failure, async () => Promise.reject(new Error('network down')));
  assert.ok(left instanceof UploadsLeftOpenError);
  assert.equal(left.exitCode, EXIT.SOURCE);
  assert.match(left.message, /^pg_dump failed; could not abort the incomplete upload of this artifact \(network down\); /);
  assert.equal(left.cause, failure);
});
