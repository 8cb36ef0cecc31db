import { ARCHIVED_CLASSES } from './backup-listing';
import { parseKey, sourcePrefix, type SourceLocation } from './layout';
import type { Artifact, Manifest } from './manifest';
import { artifactObjects, type ArtifactObject } from './ranges';

/**
 * The judgement of one backup from what both readers see without a private key: `coldseal verify`
 * (and the drill) on the agent side, the verifier Lambda on the other. One pure function of the
 * signed manifest (its signature already proven by the caller with runtime/signed-document.ts),
 * where it was found, the objects' heads, the messages' addressees and the clock. Each side turns
 * the verdicts into its own words (the agent's verify lines and exit code, the Lambda's findings),
 * so the two can no longer disagree on what is wrong with a backup.
 *
 * What only one side can do stays there: reading and hashing the whole ciphertext, decrypting and
 * test-restoring (agent), the hashing budget and its records, RPO, size history and replica (Lambda).
 */

/** skip: the evidence needed was not available to this reader (neither proof nor failure). */
export type Verdict = 'pass' | 'warn' | 'fail' | 'skip';

/** What a reader's HEAD of one object says. */
export interface ObjectFacts {
  readonly size: number;
  readonly storageClass: string;
  readonly lastModified: Date;
  /** x-amz-restore: set while a Glacier restore runs or its temporary copy exists. */
  readonly restore: string | undefined;
  /**
   * Object Lock retention; null when the object has none; undefined when the reader cannot tell
   * (S3 shows retention only to callers allowed s3:GetObjectRetention:
   * https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, x-amz-object-lock-mode).
   */
  readonly lock: { readonly mode: string; readonly until: Date } | null | undefined;
}

export interface JudgementInput {
  readonly manifest: Manifest;
  /** The key the manifest was read from. */
  readonly manifestKey: string;
  /**
   * HEAD of every object the reader looked at: each object the manifest names, and any other
   * object of the backup it found (a segment beyond the signed list). null or absent: not there.
   */
  readonly objects: ReadonlyMap<string, ObjectFacts | null>;
  /** Key ids of the PKESK packets at the head of each readable artifact's message, by artifact key; or why they could not be read. Absent: not read. */
  readonly messages?: ReadonlyMap<string, readonly string[] | { readonly error: string }>;
  /** The recipients configured today, when the reader knows them, and whether this is its source's newest backup. */
  readonly recipients?: { readonly configured: readonly string[]; readonly newest: boolean };
  /**
   * Object Lock the tier expects: undefined when none is expected; days undefined when the term is
   * not known (then the lock must hold now, at any age).
   */
  readonly lock?: { readonly days: number | undefined };
  /** Artifact keys whose content a complete read proved before they were archived (the verifier's records). */
  readonly readVerified?: ReadonlySet<string>;
  readonly now: Date;
}

interface Of {
  readonly artifact: Artifact;
  /** The S3 key the verdict is about: the artifact's, or one of its segments'. */
  readonly key: string;
}

/** One object's place among its artifact's objects (a segmented artifact has several). */
interface Placed extends Of {
  readonly object: ArtifactObject;
  readonly of: number;
}

export type Judged =
  /** The manifest is signed for another place than it is stored at (copied). */
  | { readonly check: 'manifest-location'; readonly verdict: 'pass' | 'fail'; readonly key: string; readonly signedFor: string; readonly storedAt: string }
  /** An artifact the manifest names lies outside the manifest's own source and stamp. */
  | ({ readonly check: 'artifact-location'; readonly verdict: 'fail' } & Of)
  /** The dump tool's exit status: 0; or not 0 but tolerated by the agent with a warning (tar "file changed as we read it"). */
  | ({ readonly check: 'dump-exit-status'; readonly verdict: 'pass' | 'warn' | 'fail' } & Of)
  | ({ readonly check: 'completion-marker'; readonly verdict: 'pass' | 'fail' } & Of)
  /** The signed segment list describes the ciphertext (or not: problem). */
  | ({ readonly check: 'segments'; readonly verdict: 'pass' | 'fail'; readonly objects: readonly ArtifactObject[]; readonly problem?: string } & Of)
  | ({ readonly check: 'ciphertext-missing'; readonly verdict: 'fail' } & Placed)
  | ({ readonly check: 'ciphertext-size'; readonly verdict: 'fail'; readonly size: number; readonly lastModified: Date } & Placed)
  /** A segment of the artifact that the signed list does not name. */
  | ({ readonly check: 'extra-segment'; readonly verdict: 'fail'; readonly segment: number; readonly size: number; readonly lastModified: Date; readonly listed: number } & Of)
  | ({
      readonly check: 'object-lock';
      readonly verdict: 'pass' | 'fail' | 'skip';
      /** held: locked now; served: the lock (or its absence) no longer matters, the object is past the tier's term; none; ended (before the term); unknown: this reader cannot see retention. */
      readonly state: 'held' | 'served' | 'none' | 'ended' | 'unknown';
      readonly lock: { readonly mode: string; readonly until: Date } | null | undefined;
      readonly lastModified: Date;
    } & Placed)
  /** In an archive class without a restored copy: the content cannot be read (proven earlier, or not). */
  | ({ readonly check: 'archived'; readonly verdict: 'pass' | 'warn'; readonly storageClass: string } & Of)
  /** The manifest's recipients against those configured today: the newest backup must match; an older one keeps the keys of its time. */
  | { readonly check: 'recipients'; readonly verdict: 'pass' | 'fail'; readonly key: string; readonly manifestIds: readonly string[]; readonly configured: readonly string[]; readonly newest: boolean }
  /** The message's addressees (PKESK packets) against the signed manifest's. */
  | ({ readonly check: 'message-recipients'; readonly verdict: 'pass' | 'fail'; readonly messageIds: readonly string[]; readonly manifestIds: readonly string[] } & Of)
  | ({ readonly check: 'not-openpgp'; readonly verdict: 'fail'; readonly error: string } & Of);

export type JudgedCheck = Judged['check'];

export interface BackupJudgement {
  /** The worst verdict (skip counts as pass). */
  readonly verdict: 'pass' | 'warn' | 'fail';
  readonly items: readonly Judged[];
  /** Artifacts whose every object is present, whole and not archived: their content can be read now. */
  readonly readable: readonly Artifact[];
}

const DAY_MS = 86_400_000;
/** A lock set by a host for the tier's days may end up to a day early (host clock, S3's rounding), as the hosts' IAM allows a day more. */
const LOCK_TOLERANCE_MS = DAY_MS;

export function sameKeyIds(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a.map((k) => k.toLowerCase()));
  const y = new Set(b.map((k) => k.toLowerCase()));
  return x.size === y.size && [...x].every((k) => y.has(k));
}

/** Archived (Glacier, Deep Archive) and no restored copy to read. */
export function unreadableArchive(facts: Pick<ObjectFacts, 'storageClass' | 'restore'>): boolean {
  return ARCHIVED_CLASSES.has(facts.storageClass) && !(facts.restore ?? '').includes('ongoing-request="false"');
}

const describe = (l: SourceLocation & { stamp: string }) => `${l.tier}/${l.group}/${l.host}/${l.source}/${l.stamp}`;

/**
 * Whether the manifest describes the place it is stored at, and names only artifacts of its own
 * source and stamp: a signed manifest copied elsewhere would lie about what it is.
 */
export function judgeLocation(manifest: Manifest, manifestKey: string): Judged[] {
  const parsed = parseKey(manifestKey);
  const signedFor = describe(manifest);
  const stored = parsed && parsed.kind === 'manifest' ? describe(parsed) : manifestKey;
  if (stored !== signedFor) return [{ check: 'manifest-location', verdict: 'fail', key: manifestKey, signedFor, storedAt: stored }];
  const own = `${sourcePrefix(manifest)}${manifest.stamp}.`;
  const items: Judged[] = [{ check: 'manifest-location', verdict: 'pass', key: manifestKey, signedFor, storedAt: stored }];
  for (const artifact of manifest.artifacts) {
    if (!artifact.key.startsWith(own)) items.push({ check: 'artifact-location', verdict: 'fail', artifact, key: artifact.key });
  }
  return items;
}

function judgeLock(expected: { days: number | undefined }, facts: ObjectFacts, placed: Placed, now: Date): Judged {
  const base = { check: 'object-lock' as const, ...placed, lock: facts.lock, lastModified: facts.lastModified };
  if (facts.lock === undefined) return { ...base, verdict: 'skip', state: 'unknown' };
  if (facts.lock && facts.lock.until.getTime() > now.getTime()) return { ...base, verdict: 'pass', state: 'held' };
  const days = expected.days;
  if (days !== undefined) {
    // The agent sets the lock when the upload starts, and a long dump's object is dated when it
    // completes: the term runs from the earlier of the two.
    const start = Math.min(facts.lastModified.getTime(), Date.parse(placed.artifact.startedAt));
    // Past the tier's term the lock has done its work (the lifecycle expires the object later).
    if (now.getTime() - start >= days * DAY_MS) return { ...base, verdict: 'pass', state: 'served' };
    if (facts.lock && facts.lock.until.getTime() >= start + days * DAY_MS - LOCK_TOLERANCE_MS) return { ...base, verdict: 'pass', state: 'served' };
  }
  return { ...base, verdict: 'fail', state: facts.lock ? 'ended' : 'none' };
}

function judgeArtifact(input: JudgementInput, artifact: Artifact, items: Judged[]): boolean {
  const { manifest } = input;
  const own = { artifact, key: artifact.key };
  const tolerated = artifact.exitCode !== 0 && artifact.warnings.length > 0;
  items.push({ check: 'dump-exit-status', verdict: artifact.exitCode === 0 ? 'pass' : tolerated ? 'warn' : 'fail', ...own });
  items.push({ check: 'completion-marker', verdict: artifact.completion.method !== 'exit-status' && artifact.completion.detail.trim() === '' ? 'fail' : 'pass', ...own });
  if (items.some((i) => i.check === 'artifact-location' && i.artifact === artifact)) return false;

  let objects: ArtifactObject[];
  try {
    objects = artifactObjects(artifact);
  } catch (error) {
    items.push({ check: 'segments', verdict: 'fail', ...own, objects: [], problem: (error as Error).message });
    return false;
  }
  items.push({ check: 'segments', verdict: 'pass', ...own, objects });

  let whole = true;
  const present: { facts: ObjectFacts; placed: Placed }[] = [];
  for (const object of objects) {
    const placed: Placed = { artifact, key: object.key, object, of: objects.length };
    const facts = input.objects.get(object.key);
    if (!facts) {
      items.push({ check: 'ciphertext-missing', verdict: 'fail', ...placed });
      whole = false;
    } else if (facts.size !== object.bytes) {
      items.push({ check: 'ciphertext-size', verdict: 'fail', ...placed, size: facts.size, lastModified: facts.lastModified });
      whole = false;
    } else present.push({ facts, placed });
  }
  // A segment beyond the signed list: the ciphertext is not what was backed up.
  const parsedOwn = parseKey(artifact.key);
  for (const [key, facts] of input.objects) {
    if (!facts || objects.some((o) => o.key === key)) continue;
    const parsed = parseKey(key);
    if (parsedOwn?.kind !== 'artifact' || parsed?.kind !== 'artifact' || parsed.artifact !== parsedOwn.artifact || parsed.extension !== parsedOwn.extension || parsed.stamp !== manifest.stamp || !key.startsWith(sourcePrefix(manifest))) continue;
    items.push({ check: 'extra-segment', verdict: 'fail', ...own, segment: parsed.segment, size: facts.size, lastModified: facts.lastModified, listed: objects.length });
    whole = false;
  }
  if (input.lock) for (const { facts, placed } of present) items.push(judgeLock(input.lock, facts, placed, input.now));
  if (!whole) return false;

  // One archived segment without a restored copy makes the whole artifact unreadable until restored.
  const archived = present.find((p) => unreadableArchive(p.facts));
  if (archived) {
    items.push({ check: 'archived', verdict: input.readVerified?.has(artifact.key) ? 'pass' : 'warn', ...own, storageClass: archived.facts.storageClass });
    return false;
  }

  const message = input.messages?.get(artifact.key);
  if (message && 'error' in message) items.push({ check: 'not-openpgp', verdict: 'fail', ...own, error: message.error });
  else if (message) {
    const manifestIds = manifest.encryption.recipientKeyIds;
    items.push({ check: 'message-recipients', verdict: sameKeyIds(message, manifestIds) ? 'pass' : 'fail', ...own, messageIds: message, manifestIds });
  }
  return true;
}

export function judgeBackup(input: JudgementInput): BackupJudgement {
  const { manifest } = input;
  const items: Judged[] = judgeLocation(manifest, input.manifestKey);
  if (items[0].verdict === 'fail') return { verdict: 'fail', items, readable: [] };
  if (input.recipients) {
    const { configured, newest } = input.recipients;
    const manifestIds = manifest.encryption.recipientKeyIds;
    items.push({ check: 'recipients', verdict: !newest || sameKeyIds(manifestIds, configured) ? 'pass' : 'fail', key: input.manifestKey, manifestIds, configured, newest });
  }
  const readable: Artifact[] = [];
  for (const artifact of manifest.artifacts) if (judgeArtifact(input, artifact, items)) readable.push(artifact);
  const verdict = items.some((i) => i.verdict === 'fail') ? 'fail' : items.some((i) => i.verdict === 'warn') ? 'warn' : 'pass';
  return { verdict, items, readable };
}
