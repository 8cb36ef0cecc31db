import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { INCOMPLETE_UPLOAD_ABORT_DAYS } from '../../../../format/run-document';
import { ColdsealError } from '../../errors';

/**
 * Aborting the multipart uploads of a failed artifact, and saying truthfully how that went. After
 * an S3 outage the abort itself often fails too: then the upload stays open (invisible in the
 * bucket listing, but stored and billed) until the bucket's lifecycle rule
 * (AbortIncompleteMultipartUpload after the longest run and a day, set by the stack's vault) removes it, and the log
 * and the alert must say so rather than "aborted".
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html
 */
export interface OpenUpload {
  readonly key: string;
  /** Known when CreateMultipartUpload answered; otherwise uploads under the key are looked up. */
  readonly uploadId?: string;
}

export interface AbortOutcome {
  /** Keys whose uploads are gone (aborted, or none was open). */
  readonly aborted: readonly string[];
  /** Uploads that may still be open, with the reason the abort or the check failed. */
  readonly notAborted: readonly { readonly key: string; readonly reason: string }[];
}

const LIFECYCLE_NOTE = `S3's lifecycle rule removes it ${INCOMPLETE_UPLOAD_ABORT_DAYS} days after it began`;

/**
 * Aborts each upload (by id, and any other upload under the same key whose creation answer was
 * lost), then lists the key's uploads again: an upload counts as aborted only when S3 no longer
 * lists it.
 */
export async function abortIncompleteUploads(s3: S3Client, bucket: string, uploads: readonly OpenUpload[]): Promise<AbortOutcome> {
  const aborted: string[] = [];
  const notAborted: { key: string; reason: string }[] = [];
  for (const upload of uploads) {
    let reason: string | undefined;
    const abort = (uploadId: string) =>
      s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: uploadId })).catch((error: Error) => {
        // NoSuchUpload: already gone (aborted by an earlier attempt, or completed): nothing left open.
        if ((error as { name?: string }).name !== 'NoSuchUpload') reason ??= error.message || (error as { name?: string }).name || 'unknown error';
      });
    if (upload.uploadId) await abort(upload.uploadId);
    try {
      const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: upload.key }));
      const open = (listed.Uploads ?? []).filter((u) => u.Key === upload.key && u.UploadId);
      for (const u of open) await abort(u.UploadId!);
      if (open.length > 0) {
        const again = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: upload.key }));
        if ((again.Uploads ?? []).some((u) => u.Key === upload.key)) reason ??= 'S3 still lists the upload after the abort';
      }
    } catch (error) {
      reason ??= `listing the open uploads failed: ${(error as Error).message}`;
    }
    if (reason) notAborted.push({ key: upload.key, reason });
    else aborted.push(upload.key);
  }
  return { aborted, notAborted };
}

/** One clause for a log line or an alert: what became of the incomplete upload(s). */
export function abortSummary(outcome: AbortOutcome): string {
  if (outcome.notAborted.length === 0) return outcome.aborted.length === 1 ? 'the incomplete upload was aborted' : 'the incomplete uploads were aborted';
  const which = outcome.notAborted.map((n) => `${n.key} (${n.reason.slice(0, 200)})`).join(', ');
  return `could not abort the incomplete upload${outcome.notAborted.length === 1 ? '' : 's'} of ${which}; ${LIFECYCLE_NOTE}`;
}

/** A failure whose incomplete uploads could not all be aborted: the alert says so. */
export class UploadsLeftOpenError extends ColdsealError {
  constructor(
    cause: ColdsealError,
    readonly outcome: AbortOutcome,
  ) {
    super(cause.exitCode, `${cause.message}; ${abortSummary(outcome)}`, cause.hint, { cause });
  }
}

/**
 * Runs an abort and puts its outcome into the failure's message: "…; the incomplete upload was
 * aborted", or an UploadsLeftOpenError that says it could not be and what removes it. For any
 * upload writer: pass its abort.
 */
export async function withAbortOutcome(failure: ColdsealError, abort: () => Promise<AbortOutcome>): Promise<ColdsealError> {
  let outcome: AbortOutcome;
  try {
    outcome = await abort();
  } catch (error) {
    outcome = { aborted: [], notAborted: [{ key: 'this artifact', reason: (error as Error).message }] };
  }
  if (outcome.notAborted.length > 0) return new UploadsLeftOpenError(failure, outcome);
  if (outcome.aborted.length === 0) return failure;
  return new ColdsealError(failure.exitCode, `${failure.message}; ${abortSummary(outcome)}`, failure.hint, { cause: failure.cause });
}
