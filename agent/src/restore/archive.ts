import { RestoreObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ARCHIVED_CLASSES } from '../../../format/backup-listing';
import { retrievalTime, type RetrievalTier } from '../../../format/retrieval';
import { headRestoreState, type RestoreState } from '../catalog/glacier';
import { storageError } from '../catalog/listing';
import { ColdsealError, EXIT } from '../errors';
import { formatBytes } from '../../../runtime/byte-size';
import type { Log } from '../log';

/**
 * Objects in GLACIER or DEEP_ARCHIVE cannot be read until a temporary copy is restored. This
 * module decides what to do: use a restored copy, start a restore with the tier the user chose,
 * wait for it (--wait, polling with a time limit) or stop and say exactly what to run later.
 * The polling talks to a narrow interface so a test can play an archive that takes its time
 * (moto completes restores at once).
 */
export { RETRIEVAL_TIERS, type RetrievalTier } from '../../../format/retrieval';

export interface ArchiveState {
  readonly storageClass: string;
  readonly restore: RestoreState;
  readonly size: number;
}

export interface ArchiveClient {
  /** Undefined when the object is missing. */
  head(key: string): Promise<ArchiveState | undefined>;
  requestRestore(key: string, tier: RetrievalTier, days: number): Promise<void>;
}

export function s3ArchiveClient(s3: S3Client, bucket: string): ArchiveClient {
  return {
    head: (key) => headRestoreState(s3, bucket, key),
    async requestRestore(key, tier, days) {
      try {
        await s3.send(new RestoreObjectCommand({ Bucket: bucket, Key: key, RestoreRequest: { Days: days, GlacierJobParameters: { Tier: tier } } }));
      } catch (error) {
        // Already running: fine, we wait for that one.
        if ((error as { name?: string }).name === 'RestoreAlreadyInProgress') return;
        throw storageError(error, `starting the retrieval of s3://${bucket}/${key}`);
      }
    },
  };
}

/** Usual waits and relative cost, as AWS documents them, so a user can choose with open eyes. */
export function tierChoices(storageClass: string): string[] {
  const deep = storageClass === 'DEEP_ARCHIVE';
  return [
    deep ? 'Expedited  not available for DEEP_ARCHIVE' : 'Expedited  usually 1–5 minutes    highest cost (per GB and per request)',
    `Standard   usually ${deep ? 'within 12 hours' : '3–5 hours'}${deep ? '     ' : '         '}moderate cost`,
    `Bulk       usually ${deep ? 'within 48 hours' : '5–12 hours'}${deep ? '     ' : '        '}lowest cost`,
  ];
}

export function typicalWait(storageClass: string, tier: RetrievalTier): string {
  // The documented times (format/retrieval.ts); Expedited is refused for DEEP_ARCHIVE before any wait is told.
  return (retrievalTime(storageClass === 'DEEP_ARCHIVE' ? 'DEEP_ARCHIVE' : 'GLACIER', tier) ?? retrievalTime('GLACIER', tier)!).text;
}

export interface ArchivePolicy {
  /** Retrieval tier to start a restore with; without it an archived object stops the command with the choices. */
  readonly tier?: RetrievalTier;
  /** Days the restored copy stays readable. */
  readonly days: number;
  readonly wait: boolean;
  readonly waitTimeoutMs: number;
  readonly pollIntervalMs: number;
  /** The command to run again later (printed as is; it never holds a secret). */
  readonly rerun: string;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

export const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Returns when every key is readable (not archived, or a restored copy exists); otherwise starts
 * restores / waits as the policy says, or throws ARCHIVED with what to do next. A key that is
 * missing throws `missing(key)` (the caller knows what the key is: a listed segment, say), before
 * any retrieval is started or paid for.
 */
export async function ensureReadable(client: ArchiveClient, keys: readonly string[], policy: ArchivePolicy, log: Log, missing: (key: string) => Error = (key) => new Error(`${key} is missing`)): Promise<void> {
  const pending: { key: string; state: ArchiveState }[] = [];
  for (const key of keys) {
    const state = await client.head(key);
    if (!state) throw missing(key);
    if (!ARCHIVED_CLASSES.has(state.storageClass)) continue;
    if (state.restore.state === 'restored') {
      log.info(`using the restored copy of archived ${key}${state.restore.expiry ? ` (readable until ${state.restore.expiry.toISOString()})` : ''}`);
      continue;
    }
    pending.push({ key, state });
  }
  if (pending.length === 0) return;

  const storageClass = pending.some((p) => p.state.storageClass === 'DEEP_ARCHIVE') ? 'DEEP_ARCHIVE' : 'GLACIER';
  const notStarted = pending.filter((p) => p.state.restore.state === 'none');
  if (notStarted.length) {
    if (!policy.tier) {
      const size = notStarted.reduce((sum, p) => sum + p.state.size, 0);
      throw new ColdsealError(
        EXIT.ARCHIVED,
        `this backup is archived in ${storageClass} (${notStarted.length} object(s), ${formatBytes(size)}) and must be retrieved before it can be read. Retrieval tiers:\n  ${tierChoices(storageClass).join('\n  ')}`,
        `Choose one and run: ${policy.rerun} --retrieval-tier Standard   (add --wait to wait for it here)`,
      );
    }
    if (policy.tier === 'Expedited' && storageClass === 'DEEP_ARCHIVE') {
      throw new ColdsealError(EXIT.USAGE, 'Expedited retrieval is not available for DEEP_ARCHIVE', 'Use --retrieval-tier Standard (within 12 hours) or Bulk (within 48 hours)');
    }
    for (const p of notStarted) {
      await client.requestRestore(p.key, policy.tier, policy.days);
      log.info(`retrieval started for ${p.key}`, { tier: policy.tier, storageClass: p.state.storageClass, readableForDays: policy.days });
    }
  }
  const tier = policy.tier ?? 'Standard';
  if (!policy.wait) {
    throw new ColdsealError(
      EXIT.ARCHIVED,
      `${notStarted.length ? 'retrieval from' : 'a retrieval is already in progress for'} ${storageClass} ${notStarted.length ? `started (${tier}, usually ${typicalWait(storageClass, tier)})` : ''}`.trim(),
      `Run the same command again once it is done: ${stripRetrieval(policy.rerun)}   (or add --wait to wait here)`,
    );
  }
  await waitForRestore(
    client,
    pending.map((p) => p.key),
    policy,
    log,
  );
}

function stripRetrieval(command: string): string {
  return command.replace(/\s--retrieval-tier(=|\s+)\S+/, '').replace(/\s--wait\b/, '');
}

/** Polls until every key has a restored copy; throws ARCHIVED at the time limit (the retrieval goes on). */
export async function waitForRestore(client: ArchiveClient, keys: readonly string[], policy: ArchivePolicy, log: Log): Promise<number> {
  const sleep = policy.sleep ?? defaultSleep;
  const now = policy.now ?? Date.now;
  const start = now();
  let polls = 0;
  let waiting = [...keys];
  for (;;) {
    const still: string[] = [];
    for (const key of waiting) {
      const state = await client.head(key);
      polls++;
      if (!state) throw new ColdsealError(EXIT.INTEGRITY, `presence check failed: ${key} was deleted while its retrieval was awaited`, 'Do not use this backup: restore an older one (coldseal list)');
      if (state.restore.state !== 'restored') still.push(key);
    }
    waiting = still;
    const elapsed = now() - start;
    if (waiting.length === 0) {
      log.info(`retrieval complete after ${Math.round(elapsed / 1000)} s`);
      return polls;
    }
    if (elapsed + policy.pollIntervalMs > policy.waitTimeoutMs) {
      throw new ColdsealError(
        EXIT.ARCHIVED,
        `the retrieval is still in progress after ${Math.round(elapsed / 60000)} min (${waiting.length} object(s) waiting); the time limit is ${Math.round(policy.waitTimeoutMs / 60000)} min`,
        `It goes on without us: run again later: ${stripRetrieval(policy.rerun)}`,
      );
    }
    log.progress({ label: 'waiting for the archive retrieval', bytes: 0, elapsedSeconds: elapsed / 1000, detail: `${waiting.length} object(s) still archived, next check in ${Math.round(policy.pollIntervalMs / 1000)} s` });
    await sleep(policy.pollIntervalMs);
  }
}
