import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PartReadError, type RangeFetcher } from './part-reader';
import { unreadableMessage, whyUnreadable } from './s3-presence';

/**
 * The PartReader's transport over S3 GetObject with a Range, shared by the agent and the verifier
 * Lambda so both read (and fail) the same way. A pinned read sends IfMatch (and VersionId when the
 * bucket is versioned): S3 answers 412 Precondition Failed when the object's ETag no longer
 * matches, https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html (IfMatch), and
 * NoSuchVersion when the version is gone. Errors that retrying cannot change are PartReadErrors;
 * the rest (network, throttling, 5xx) are left for the reader to retry.
 */
export function s3PartFetcher(s3: S3Client, bucket: string): RangeFetcher {
  return async ({ key, start, end, pin, signal }) => {
    const where = `s3://${bucket}/${key}`;
    let object;
    try {
      object = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}`, ...(pin?.versionId ? { VersionId: pin.versionId } : {}), ...(pin?.etag ? { IfMatch: pin.etag } : {}) }),
        { abortSignal: signal },
      );
    } catch (error) {
      const name = (error as { name?: string }).name ?? '';
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (name === 'InvalidObjectState') throw new PartReadError('archived', `${where} is archived and has no restored copy`, undefined, { cause: error });
      if (name === 'PreconditionFailed' || status === 412 || name === 'NoSuchVersion') throw new PartReadError('changed', `${where} was replaced or deleted while it was being read (the version first read is gone)`, undefined, { cause: error });
      // A 404, or a 403 that a listing explains (s3-presence.ts: S3's answer depends on s3:ListBucket).
      const why = await whyUnreadable(s3, bucket, key, error);
      if (why === 'missing') throw new PartReadError('missing', unreadableMessage(why, where), undefined, { cause: error });
      if (why) throw new PartReadError('storage', unreadableMessage(why, where), undefined, { cause: error });
      // Other 4xx answers (access denied, bad request) will not change on a retry.
      if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) throw new PartReadError('storage', `reading ${where} failed: ${(error as Error).message}`, undefined, { cause: error });
      throw error;
    }
    // Content-Range: "bytes 0-4095/12288" (https://www.rfc-editor.org/rfc/rfc9110#field.content-range)
    const total = /\/(\d+)$/.exec(object.ContentRange ?? '')?.[1];
    return { body: object.Body as AsyncIterable<Uint8Array>, etag: object.ETag, versionId: object.VersionId, objectSize: total === undefined ? undefined : Number(total) };
  };
}
