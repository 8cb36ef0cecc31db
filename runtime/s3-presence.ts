import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

/**
 * Why S3 would not let a reader have an object the signed manifest lists, as truthfully as the
 * reader's permissions allow. One judgement for every reader (restore, verify, drill, the verifier
 * Lambda's ranged reads), so a listed object that is gone is a failed completeness check everywhere.
 *
 * - `missing`: the object is not there (its current version is gone, or a delete marker hides it).
 * - `denied`: it is there, and this caller may not read it (a policy, or the KMS key).
 * - `denied-or-missing`: S3 said 403 and the caller may not list the key either, so nobody can tell.
 *
 * S3 answers a GET or HEAD of a missing key with 404 only to a caller allowed s3:ListBucket on the
 * bucket; to anyone else it answers 403, as for a real refusal
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html and API_GetObject.html,
 * "Permissions"). A HEAD has no body, so the SDK names a 404 `NotFound` and a 403 `Unknown`, both
 * with the message "UnknownError". The drill host may list only its group's prefixes (an s3:prefix
 * condition, which a GET does not satisfy): it gets 403, and a listing under the key's own name,
 * which it is allowed, then says whether the key exists.
 */
export type Unreadable = 'missing' | 'denied' | 'denied-or-missing';

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** A 404 about the key (not the bucket: the reader read the manifest from that bucket first). */
export function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'NoSuchKey' || name === 'NotFound' || (statusOf(error) === 404 && name !== 'NoSuchBucket' && name !== 'NoSuchVersion');
}

/** The refusal of a GET or HEAD of `key` explained; undefined when `error` is not a 404 or 403 (network, throttling…). */
export async function whyUnreadable(s3: S3Client, bucket: string, key: string, error: unknown): Promise<Unreadable | undefined> {
  if (isNotFound(error)) return 'missing';
  if (statusOf(error) !== 403) return undefined;
  try {
    // Keys sort by bytes: were the key there, it would be the first key with itself as prefix.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }));
    return listed.Contents?.[0]?.Key === key ? 'denied' : 'missing';
  } catch {
    return 'denied-or-missing';
  }
}

/** What a reader says about each answer, naming the object (`what`, e.g. "segment 2 of 3, s3://…"). */
export function unreadableMessage(why: Unreadable, what: string): string {
  switch (why) {
    case 'missing':
      return `${what} is missing although the signed manifest lists it`;
    case 'denied':
      return `${what} exists but these credentials may not read it (access denied)`;
    case 'denied-or-missing':
      return `${what} cannot be read: access denied, and these credentials may not list the bucket to tell whether it is missing (S3 answers a missing object with 403 to a caller without s3:ListBucket)`;
  }
}
