import { segmentKey } from '../../../format/layout';
import type { Artifact, Manifest } from '../../../format/manifest';
import type { ArtifactObject } from '../../../format/ranges';
import { messageRecipientKeyIds } from '../../../runtime/pgp';
import { openManifest, SignedDocumentError } from '../../../runtime/signed-document';
import { judgeBackup, type Judged, type JudgementInput, type ObjectFacts } from '../../../format/backup-judgement';
import { makeFinding, type Finding } from '../../shared/findings';
import type { BucketStore, ObjectHead } from '../../shared/ports';
import type { GroupKeys } from './keys';
import { replicaCheck, type ReplicaObject, type ReplicaState } from './replica';
import type { ListedBackup } from './inventory';
import type { VerificationRecord } from './hashing';

/**
 * The checks of one backup that need no private key and no full read: signature, schema, where it
 * is stored, exit status, completion, presence and size of each ciphertext, Object Lock, and the
 * OpenPGP recipients from the head of the message. Reading the whole ciphertext is returned as a
 * job, so the caller can order all jobs (new first) and spend its hashing budget where it matters.
 */

/** PKESK packets are ~90 bytes each for cv25519; 4 KiB covers dozens of recipients. */
const HEAD_BYTES = 4096;

export interface HashJob {
  readonly backup: ListedBackup;
  readonly manifest: Manifest;
  readonly artifact: Artifact;
  readonly head: ObjectHead;
  readonly previous: VerificationRecord | undefined;
  /** Never read before (or the object changed): goes before periodic re-reads. */
  readonly firstRead: boolean;
}

export interface CheckedBackup {
  readonly backup: ListedBackup;
  /** Present only when the signature and schema check out: nothing else is trusted. */
  readonly manifest: Manifest | undefined;
  readonly findings: Finding[];
  readonly jobs: HashJob[];
  /** Artifacts whose content is proven by a complete, matching read (now or earlier). */
  readonly verifiedArtifacts: number;
  readonly archivedArtifacts: number;
  /** Whether the backup is in the offsite replica; undefined when no replica is expected or the backup is not trusted. */
  readonly replica: ReplicaState | undefined;
}

export interface BackupCheckContext {
  readonly store: BucketStore;
  readonly bucket: string;
  readonly keys: GroupKeys;
  readonly records: ReadonlyMap<string, VerificationRecord>;
  readonly now: Date;
  readonly reverifyDays: number;
  /** Days each tier's objects stay in the bucket (the lifecycle's expiry). */
  readonly retentionDays: Partial<Record<string, number>>;
  /** Days each tier's objects are locked (the agent's Object Lock); absent for a stack that does not say, then the expiry stands in. */
  readonly lockDays?: Partial<Record<string, number>>;
  /** Set when the deployment has an offsite replica: each object's replication status is checked. */
  readonly replica?: { readonly maxPendingHours: number };
}

const s3 = (bucket: string, key: string) => `s3://${bucket}/${key}`;
const DO_NOT_RESTORE = 'Do not restore from this backup; restore from an earlier one if needed.';

export function manifestFinishedAt(backup: ListedBackup, manifest: Manifest | undefined): string {
  return manifest?.finishedAt ?? backup.manifest?.lastModified.toISOString() ?? new Date(0).toISOString();
}

export async function checkBackup(ctx: BackupCheckContext, backup: ListedBackup, options: { newest: boolean }): Promise<CheckedBackup> {
  const findings: Finding[] = [];
  const jobs: HashJob[] = [];
  let replica: ReplicaState | undefined;
  const result = (manifest: Manifest | undefined, verified = 0, archived = 0): CheckedBackup => ({ backup, manifest, findings, jobs, verifiedArtifacts: verified, archivedArtifacts: archived, replica });
  const listedManifest = backup.manifest;
  if (!listedManifest) return result(undefined);
  const loc = backup.location;
  const where = s3(ctx.bucket, listedManifest.key);
  const at = { group: loc.group, host: loc.host, source: loc.source, tier: loc.tier, where };
  const since = listedManifest.lastModified.toISOString();
  if (ctx.keys.problem) return result(undefined); // reported once per group by the caller
  const text = await ctx.store.getText(listedManifest.key);
  if (text === null) return result(undefined);

  let manifest: Manifest;
  try {
    manifest = (await openManifest(text, ctx.keys.signing)).document;
  } catch (error) {
    if (!(error instanceof SignedDocumentError)) throw error;
    if (error.problem === 'bad-signature') {
      findings.push(makeFinding({ ...at, subject: listedManifest.key, check: 'manifest-signature', severity: 'fail', since, summary: 'manifest does not match its signature: it was changed after it was signed', detail: error.message, action: `${DO_NOT_RESTORE} Find who wrote this key (S3 server access logs / CloudTrail data events) and treat the bucket as tampered with.` }));
    } else if (error.problem === 'unknown-signer' || error.problem === 'malformed-signature') {
      findings.push(makeFinding({ ...at, subject: listedManifest.key, check: 'manifest-signature', severity: 'fail', since, summary: `manifest is not signed by a trusted signing key of group "${loc.group}"`, detail: error.message, action: `${DO_NOT_RESTORE} If the group's signing key was rotated, add the new public key to ${ctx.keys.signingParameter}; otherwise find who wrote this manifest.` }));
    } else {
      findings.push(makeFinding({ ...at, subject: listedManifest.key, check: 'manifest-invalid', severity: 'fail', since, summary: 'manifest cannot be read as a coldseal signed manifest', detail: error.message, action: `${DO_NOT_RESTORE} Check the agent version on ${loc.host}; a newer format needs a newer verifier.` }));
    }
    return result(undefined);
  }

  // The judgement (format/backup-judgement.ts) is coldseal verify's too. Objects the signed
  // manifest names are those the listing shows, HEADed; the listing's others are what a segment
  // beyond the signed list would be.
  const named = new Set(manifest.artifacts.flatMap((a) => a.segments?.map((s) => s.key) ?? [a.key]));
  const heads = new Map<string, ObjectHead>();
  const objects = new Map<string, ObjectFacts | null>();
  for (const listed of backup.artifacts) {
    if (!named.has(listed.key)) {
      objects.set(listed.key, { size: listed.size, storageClass: listed.storageClass, lastModified: listed.lastModified, restore: undefined, lock: undefined });
      continue;
    }
    const head = await ctx.store.head(listed.key);
    if (head) heads.set(listed.key, head);
    // The verifier is granted s3:GetObjectRetention (infra/lib/lambda-function.ts): no lock shown is no lock.
    objects.set(listed.key, head && { size: head.size, storageClass: head.storageClass, lastModified: head.lastModified, restore: head.restore, lock: head.lockMode && head.lockUntil ? { mode: head.lockMode, until: head.lockUntil } : null });
  }
  const recordOf = (artifact: Artifact): VerificationRecord | undefined => {
    const record = ctx.records.get(artifact.key);
    // The first segment's ETag keys the read record: a replaced object must be read again.
    return record && record.etag === heads.get(artifact.key)?.etag ? record : undefined;
  };
  const readVerified = new Set(manifest.artifacts.filter((a) => recordOf(a)?.complete && recordOf(a)?.ok === true).map((a) => a.key));
  const input: JudgementInput = {
    manifest,
    manifestKey: listedManifest.key,
    objects,
    recipients: { configured: ctx.keys.recipientKeyIds, newest: options.newest },
    lock: { days: ctx.lockDays?.[loc.tier] ?? ctx.retentionDays[loc.tier] },
    readVerified,
    now: ctx.now,
  };
  // Content proven wrong by an earlier read is reported as such; the rest is read now for its addressees.
  const provenWrong = (a: Artifact) => recordOf(a)?.complete === true && recordOf(a)?.ok === false;
  const messages = new Map<string, readonly string[] | { error: string }>();
  const readable = judgeBackup(input).readable.filter((a) => !provenWrong(a));
  for (const artifact of readable) {
    const size = heads.get(artifact.key)?.size ?? 0;
    let headBytes = Buffer.alloc(0);
    for await (const chunk of await ctx.store.getRange(artifact.key, 0, Math.min(HEAD_BYTES, size))) headBytes = Buffer.concat([headBytes, chunk]);
    try {
      messages.set(artifact.key, await messageRecipientKeyIds(headBytes));
    } catch (error) {
      messages.set(artifact.key, { error: (error as Error).message });
    }
  }
  const judgement = judgeBackup({ ...input, messages });
  const location = judgement.items.find((i) => i.check === 'manifest-location');
  if (location?.check === 'manifest-location' && location.verdict === 'fail') {
    findings.push(makeFinding({ ...at, subject: listedManifest.key, check: 'manifest-location', severity: 'fail', since, summary: `manifest signed for ${location.signedFor} is stored under ${location.storedAt}`, action: `${DO_NOT_RESTORE} A signed manifest was copied to another place: find who wrote it.` }));
    return result(undefined);
  }
  const recipients = judgement.items.find((i) => i.check === 'recipients');
  const newestMismatch = recipients?.check === 'recipients' && recipients.verdict === 'fail';

  let verified = 0;
  let archived = 0;
  const replicaObjects: ReplicaObject[] = [];
  for (const artifact of manifest.artifacts) {
    const aWhere = s3(ctx.bucket, artifact.key);
    const aAt = { ...at, where: aWhere };
    const label = `artifact "${artifact.name}"`;
    const mine = judgement.items.filter((i): i is Extract<Judged, { artifact: Artifact }> => 'artifact' in i && i.artifact === artifact);
    const segmented = (mine.find((i) => i.check === 'segments' && i.verdict === 'pass') as Extract<Judged, { check: 'segments' }> | undefined)?.objects.length ?? 1;
    const oLabel = (object: ArtifactObject) => (segmented > 1 ? `${label} segment ${object.segment} of ${segmented}` : label);
    for (const item of mine) {
      const oAt = { ...at, where: s3(ctx.bucket, item.key) };
      switch (item.check) {
        case 'dump-exit-status':
          if (item.verdict === 'fail') {
            findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'dump-exit-status', severity: 'fail', since: manifest.finishedAt, summary: `${artifact.tool.name} exited with status ${artifact.exitCode} for ${label}`, detail: artifact.warnings.join('\n') || undefined, action: `Treat this dump as incomplete. Look at the agent's output for ${manifest.stamp} on ${loc.host} (SSM Run Command history) and fix the cause; then run coldseal trigger --group ${loc.group} --host ${loc.host}.` }));
          } else if (item.verdict === 'warn') {
            // Announced once (when the backup lands), never repeated: such exits recur and are not failures.
            findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'dump-exit-status', severity: 'warn', once: true, since: manifest.finishedAt, summary: `${artifact.tool.name} exited with status ${artifact.exitCode} for ${label}, which the agent tolerated: the dump is complete`, detail: artifact.warnings.join('\n') || undefined, action: `Nothing to do unless the warning names files you need exactly as they were (a file that changed while it was read is stored as it was read). This is said once per backup.` }));
          }
          break;
        case 'completion-marker':
          if (item.verdict === 'fail') findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'completion-marker', severity: 'fail', since: manifest.finishedAt, summary: `${label} has no ${artifact.completion.method} completion marker: the dump may be cut short`, action: `Do not rely on this dump. Check disk space and the dump tool's output on ${loc.host}; then run coldseal trigger --group ${loc.group} --host ${loc.host}.` }));
          break;
        case 'artifact-location':
          findings.push(makeFinding({ ...aAt, subject: listedManifest.key, check: 'manifest-location', severity: 'fail', since, summary: `manifest names ${artifact.key}, outside its own source and stamp`, action: `${DO_NOT_RESTORE} Find who wrote this manifest.` }));
          break;
        case 'segments':
          if (item.verdict === 'fail') findings.push(makeFinding({ ...aAt, subject: listedManifest.key, check: 'manifest-invalid', severity: 'fail', since, summary: `${label}: the manifest's segments do not describe its ciphertext`, detail: item.problem, action: `${DO_NOT_RESTORE} Find who wrote this manifest.` }));
          break;
        case 'ciphertext-missing':
          findings.push(makeFinding({ ...oAt, subject: item.key, check: 'ciphertext-missing', severity: 'fail', since: manifest.finishedAt, summary: `${oLabel(item.object)} (${item.object.bytes} bytes) named by the manifest is not in the bucket`, action: `${DO_NOT_RESTORE} Check the bucket's versions of this key (deleted? lifecycle?) and S3 access logs.` }));
          break;
        case 'ciphertext-size':
          findings.push(makeFinding({ ...oAt, subject: item.key, check: 'ciphertext-size', severity: 'fail', since: item.lastModified.toISOString(), summary: `${oLabel(item.object)} is ${item.size} bytes, the signed manifest says ${item.object.bytes} (${item.size < item.object.bytes ? 'truncated' : 'grown'})`, action: `${DO_NOT_RESTORE} Look for an older version of the object and for who wrote it.` }));
          break;
        case 'extra-segment': {
          const key = segmentKey(artifact.key, item.segment);
          findings.push(makeFinding({ ...at, where: s3(ctx.bucket, key), subject: key, check: 'ciphertext-size', severity: 'fail', since: item.lastModified.toISOString(), summary: `${label} has a segment ${item.segment} (${item.size} bytes) that its signed manifest does not list (it lists ${item.listed})`, action: `${DO_NOT_RESTORE} Find who wrote this object (S3 server access logs / CloudTrail data events).` }));
          break;
        }
        case 'object-lock':
          if (item.verdict === 'fail') findings.push(makeFinding({ ...oAt, subject: item.key, check: 'object-lock', severity: 'fail', since: item.lastModified.toISOString(), summary: item.state === 'ended' ? `${oLabel(item.object)} Object Lock retention ended ${item.lock?.until.toISOString()}, before the tier's retention` : `${oLabel(item.object)} has no Object Lock retention: it can be deleted or overwritten`, action: `Check the bucket's default retention and the agent's objectLock setting for tier ${loc.tier}; set retention on this object (put-object-retention).` }));
          break;
        case 'archived':
          if (provenWrong(artifact)) {
            findings.push(sha256Finding(aAt, artifact, recordOf(artifact)!, label));
            break;
          }
          archived++;
          if (item.verdict === 'pass') verified++;
          else findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'not-read-verified', severity: 'warn', since: manifest.finishedAt, summary: `${label} is in ${item.storageClass} and was never read back and hashed before it was archived`, action: `Its signature, size and lock were checked from metadata. To prove its content, restore it (coldseal restore --verify-only, or S3 RestoreObject) and let the next verification hash it.` }));
          break;
        case 'not-openpgp':
          findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'not-openpgp', severity: 'fail', since: heads.get(artifact.key)?.lastModified.toISOString() ?? since, summary: `${label} does not start like an OpenPGP message encrypted to public keys`, detail: item.error, action: `${DO_NOT_RESTORE} Find who wrote this object.` }));
          break;
        case 'message-recipients': {
          // The newest backup must be addressed to the recipients configured now; older ones to those their signed manifest says (keys rotate).
          const wrongForManifest = item.verdict === 'fail';
          if (!wrongForManifest && !newestMismatch) break;
          const whose = wrongForManifest ? 'the recipients its signed manifest lists' : `the recipients configured in ${ctx.keys.recipientsParameter}`;
          const expectedIds = wrongForManifest ? item.manifestIds : ctx.keys.recipientKeyIds;
          findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'recipients', severity: 'fail', since: manifest.finishedAt, summary: `${label} is encrypted to key ids ${item.messageIds.join(', ')}, not to ${whose} (${expectedIds.join(', ')})`, action: `The escrow key may not be able to decrypt this dump. Check the recipients in the agent config of group ${loc.group} (and ${ctx.keys.recipientsParameter}); then run coldseal trigger --group ${loc.group} --host ${loc.host} for a correctly addressed backup.` }));
          break;
        }
      }
    }
    for (const object of (mine.find((i) => i.check === 'segments') as Extract<Judged, { check: 'segments' }> | undefined)?.objects ?? []) {
      const head = heads.get(object.key);
      if (head) replicaObjects.push({ key: object.key, status: head.replicationStatus, lastModified: head.lastModified });
    }

    if (judgement.readable.includes(artifact) && provenWrong(artifact)) findings.push(sha256Finding(aAt, artifact, recordOf(artifact)!, label));
    if (!readable.includes(artifact)) continue;
    const head = heads.get(artifact.key)!;
    const record = recordOf(artifact);
    const reverifyDue = record?.complete && record.ok === true && ctx.now.getTime() - Date.parse(record.verifiedAt ?? record.firstReadAt) > ctx.reverifyDays * 86_400_000;
    if (record?.complete && record.ok === true && !reverifyDue) {
      verified++;
      continue;
    }
    jobs.push({ backup, manifest, artifact, head, previous: record, firstRead: !record?.complete });
  }
  if (ctx.replica) {
    // The manifest is what a restore from the replica starts from: it must be there too.
    const manifestHead = await ctx.store.head(listedManifest.key);
    if (manifestHead) replicaObjects.unshift({ key: listedManifest.key, status: manifestHead.replicationStatus, lastModified: manifestHead.lastModified });
    const checked = replicaCheck({ at: { group: loc.group, host: loc.host, source: loc.source, tier: loc.tier }, manifestKey: listedManifest.key, bucket: ctx.bucket, objects: replicaObjects, now: ctx.now, maxPendingHours: ctx.replica.maxPendingHours });
    replica = checked.state;
    if (checked.finding) findings.push(checked.finding);
  }
  return result(manifest, verified, archived);
}

export function sha256Finding(at: { group: string; host: string; source: string; tier: string; where: string }, artifact: Artifact, record: VerificationRecord, label = `artifact "${artifact.name}"`): Finding {
  return makeFinding({
    ...at,
    subject: artifact.key,
    check: 'ciphertext-sha256',
    severity: 'fail',
    since: record.firstReadAt,
    summary: `${label} does not match the SHA-256 in its signed manifest: its bytes were changed or damaged`,
    detail: record.mismatch,
    action: `${DO_NOT_RESTORE} Look for an older version of the object and for who wrote it (S3 server access logs / CloudTrail data events).`,
  });
}
