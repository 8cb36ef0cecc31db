import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { unreadableMessage, whyUnreadable } from '../../../runtime/s3-presence';
import { ColdsealError, EXIT } from '../errors';
import { storageError } from './listing';

/** Whether an archived object has a readable restored copy: S3's x-amz-restore header. */
export type RestoreState = { state: 'none' } | { state: 'ongoing' } | { state: 'restored'; expiry?: Date };

/** Parses the x-amz-restore header: ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT". */
export function parseRestoreHeader(header: string | undefined): RestoreState {
  if (!header) return { state: 'none' };
  if (/ongoing-request="true"/.test(header)) return { state: 'ongoing' };
  const expiry = /expiry-date="([^"]+)"/.exec(header)?.[1];
  return { state: 'restored', expiry: expiry ? new Date(expiry) : undefined };
}

/** An object's storage class and retrieval state; undefined when it is missing (s3-presence.ts). */
export async function headRestoreState(s3: S3Client, bucket: string, key: string): Promise<{ storageClass: string; restore: RestoreState; size: number } | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { storageClass: head.StorageClass ?? 'STANDARD', restore: parseRestoreHeader(head.Restore), size: head.ContentLength ?? 0 };
  } catch (error) {
    const why = await whyUnreadable(s3, bucket, key, error);
    if (why === 'missing') return undefined;
    if (why) throw new ColdsealError(EXIT.STORAGE, unreadableMessage(why, `s3://${bucket}/${key}`), "Use credentials allowed to read this group's backups (the operator or restore role)", { cause: error });
    throw storageError(error, `reading s3://${bucket}/${key}`);
  }
}
