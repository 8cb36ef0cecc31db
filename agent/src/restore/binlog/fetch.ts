import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Sha256Stream } from '../../../../runtime/digest';
import { whyUnreadable } from '../../../../runtime/s3-presence';
import { ColdsealError, EXIT } from '../../errors';
import type { ReplayStep } from './plan';

/**
 * The archived binary logs of a replay, fetched ahead into a private spool directory: each GET's
 * ciphertext goes to a 0600 temp file while its size and SHA-256 are computed, and is handed to
 * replay only once both match the signed record (so no byte of a changed object is ever
 * decrypted, let alone replayed). At most `concurrency` files are fetched or waiting, and replay
 * deletes each once it is done with it: disk use is bounded by concurrency × the largest file.
 */
export const TAMPERED_HINT = 'Do not use this object: find out who wrote or changed it (the bucket\'s CloudTrail data events); restore to a target before this file, or from the offsite replica';



export class BinlogPrefetcher {
  private dir: string | undefined;
  private readonly fetches = new Map<number, Promise<string>>();
  private readonly aborts = new Map<number, () => void>();
  private consumed = 0;
  private closed = false;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly steps: readonly ReplayStep[],
    private readonly concurrency: number,
  ) {}

  /** Starts the first fetches (replay may still be waiting for the dump). */
  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'coldseal-binlog-'));
    this.fill();
  }

  /** The verified ciphertext of step `index`, in a file replay reads (and then hands back with `done`). */
  next(index: number): Promise<string> {
    this.consumed = Math.max(this.consumed, index);
    this.fill();
    return this.fetches.get(index)!;
  }

  /** Replay is done with step `index`: its file goes, and another fetch may start. */
  async done(index: number, path: string): Promise<void> {
    this.fetches.delete(index);
    this.aborts.delete(index);
    await rm(path, { force: true });
    this.consumed = index + 1;
    this.fill();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const abort of this.aborts.values()) abort();
    for (const fetch of this.fetches.values()) fetch.catch(() => undefined);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private fill(): void {
    if (this.closed || !this.dir) return;
    for (let i = this.consumed; i < Math.min(this.steps.length, this.consumed + this.concurrency); i++) {
      if (this.fetches.has(i)) continue;
      const controller = new AbortController();
      this.aborts.set(i, () => controller.abort());
      const fetch = this.fetch(this.steps[i], join(this.dir, `${i}.pgp`), controller.signal);
      // Rejections are reported when replay asks for the file, not as unhandled here.
      fetch.catch(() => undefined);
      this.fetches.set(i, fetch);
    }
  }

  private async fetch(step: ReplayStep, path: string, signal: AbortSignal): Promise<string> {
    const { record } = step;
    const where = `s3://${this.bucket}/${step.key}`;
    let body: Readable;
    try {
      const response = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: step.key }), { abortSignal: signal });
      if (!response.Body) throw new Error('no body');
      body = response.Body as Readable;
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'InvalidObjectState') throw new ColdsealError(EXIT.ARCHIVED, `${where} is in an archive storage class and must be retrieved first`, 'Start a retrieval of the binary log objects of this window (aws s3api restore-object), wait for it, and restore again');
      const why = await whyUnreadable(this.s3, this.bucket, step.key, error).catch(() => undefined);
      if (why === 'missing') throw new ColdsealError(EXIT.INTEGRITY, `binary log ${record.binlogFile} (${where}) is gone from the archive: it was there when the restore was planned`, 'Find out who deleted it (CloudTrail data events); restore it from the offsite replica or a previous object version, or restore to a target before it');
      throw new ColdsealError(EXIT.STORAGE, `reading ${where} failed: ${(error as Error).message}`, 'Check network access to S3 and the credentials, then restore again');
    }
    const hashing = new Sha256Stream();
    const written = await new Promise<string | null>((resolve) => pipeline(body, hashing, createWriteStream(path, { flags: 'wx', mode: 0o600 }), (error) => resolve(error ? error.message : null)));
    if (written !== null) {
      await rm(path, { force: true });
      throw new ColdsealError(EXIT.STORAGE, `reading ${where} into ${path} failed: ${written}`, 'Check network access to S3 and free disk space in the temporary directory, then restore again');
    }
    const got = hashing.digest();
    if (got.bytes !== record.ciphertextBytes || got.sha256 !== record.ciphertextSha256) {
      await rm(path, { force: true });
      throw new ColdsealError(
        EXIT.INTEGRITY,
        `binary log ${record.binlogFile} at ${where} failed its integrity check: its ciphertext (${got.bytes} bytes, SHA-256 ${got.sha256}) is not what the signed record says (${record.ciphertextBytes} bytes, ${record.ciphertextSha256})`,
        TAMPERED_HINT,
      );
    }
    return path;
  }
}
