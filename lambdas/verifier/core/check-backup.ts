import { artifactObjects, messageRecipientKeyIds, openManifest, parseKey, SignedDocumentError, sourcePrefix, type Artifact, type ArtifactObject, type Manifest } from '../../../format';
import { ARCHIVED_CLASSES } from '../../../format/backup-listing';
import { makeFinding, type Finding } from '../../shared/findings';
import type { BucketStore, ListedObject, ObjectHead } from '../../shared/ports';
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
  readonly retentionDays: Partial<Record<string, number>>;
  /** Set when the deployment has an offsite replica: each object's replication status is checked. */
  readonly replica?: { readonly maxPendingHours: number };
}

const s3 = (bucket: string, key: string) => `s3://${bucket}/${key}`;
const DO_NOT_RESTORE = 'Do not restore from this backup; restore from an earlier one if needed.';

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

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

  const claimed = { tier: manifest.tier, group: manifest.group, host: manifest.host, source: manifest.source, stamp: manifest.stamp };
  const actual = { ...loc, stamp: backup.stamp };
  if (Object.entries(claimed).some(([k, v]) => actual[k as keyof typeof actual] !== v)) {
    findings.push(makeFinding({ ...at, subject: listedManifest.key, check: 'manifest-location', severity: 'fail', since, summary: `manifest signed for ${claimed.tier}/${claimed.group}/${claimed.host}/${claimed.source}/${claimed.stamp} is stored under ${actual.tier}/${actual.group}/${actual.host}/${actual.source}/${actual.stamp}`, action: `${DO_NOT_RESTORE} A signed manifest was copied to another place: find who wrote it.` }));
    return result(undefined);
  }

  let verified = 0;
  let archived = 0;
  const prefix = sourcePrefix(loc);
  const replicaObjects: ReplicaObject[] = [];
  for (const artifact of manifest.artifacts) {
    const aWhere = s3(ctx.bucket, artifact.key);
    const aAt = { ...at, where: aWhere };
    const label = `artifact "${artifact.name}"`;
    if (artifact.exitCode !== 0) {
      findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'dump-exit-status', severity: 'fail', since: manifest.finishedAt, summary: `${artifact.tool.name} exited with status ${artifact.exitCode} for ${label}`, detail: artifact.warnings.join('\n') || undefined, action: `Treat this dump as incomplete. Look at the agent's output for ${manifest.stamp} on ${loc.host} (SSM Run Command history) and fix the cause; then run coldseal trigger --group ${loc.group} --host ${loc.host}.` }));
    }
    if (artifact.completion.method !== 'exit-status' && artifact.completion.detail.trim() === '') {
      findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'completion-marker', severity: 'fail', since: manifest.finishedAt, summary: `${label} has no ${artifact.completion.method} completion marker: the dump may be cut short`, action: `Do not rely on this dump. Check disk space and the dump tool's output on ${loc.host}; then run coldseal trigger --group ${loc.group} --host ${loc.host}.` }));
    }
    if (!artifact.key.startsWith(prefix) || !artifact.key.slice(prefix.length).startsWith(`${backup.stamp}.`)) {
      findings.push(makeFinding({ ...aAt, subject: listedManifest.key, check: 'manifest-location', severity: 'fail', since, summary: `manifest names ${artifact.key}, outside its own source and stamp`, action: `${DO_NOT_RESTORE} Find who wrote this manifest.` }));
      continue;
    }
    let objects: ArtifactObject[];
    try {
      objects = artifactObjects(artifact);
    } catch (error) {
      findings.push(makeFinding({ ...aAt, subject: listedManifest.key, check: 'manifest-invalid', severity: 'fail', since, summary: `${label}: the manifest's segments do not describe its ciphertext`, detail: (error as Error).message, action: `${DO_NOT_RESTORE} Find who wrote this manifest.` }));
      continue;
    }
    // Each segment (one object for an unsegmented artifact) must be there, at its size, locked.
    const segmented = objects.length > 1;
    const heads: ObjectHead[] = [];
    let objectsOk = true;
    const retention = ctx.retentionDays[loc.tier];
    for (const object of objects) {
      const oLabel = segmented ? `${label} segment ${object.segment} of ${objects.length}` : label;
      const oAt = { ...at, where: s3(ctx.bucket, object.key) };
      const listed: ListedObject | undefined = backup.artifacts.find((o) => o.key === object.key);
      const oHead = listed ? await ctx.store.head(object.key) : null;
      if (!listed || !oHead) {
        findings.push(makeFinding({ ...oAt, subject: object.key, check: 'ciphertext-missing', severity: 'fail', since: manifest.finishedAt, summary: `${oLabel} (${object.bytes} bytes) named by the manifest is not in the bucket`, action: `${DO_NOT_RESTORE} Check the bucket's versions of this key (deleted? lifecycle?) and S3 access logs.` }));
        objectsOk = false;
        continue;
      }
      replicaObjects.push({ key: object.key, status: oHead.replicationStatus, lastModified: oHead.lastModified });
      if (oHead.size !== object.bytes) {
        findings.push(makeFinding({ ...oAt, subject: object.key, check: 'ciphertext-size', severity: 'fail', since: oHead.lastModified.toISOString(), summary: `${oLabel} is ${oHead.size} bytes, the signed manifest says ${object.bytes} (${oHead.size < object.bytes ? 'truncated' : 'grown'})`, action: `${DO_NOT_RESTORE} Look for an older version of the object and for who wrote it.` }));
        objectsOk = false;
        continue;
      }
      const ageDays = (ctx.now.getTime() - oHead.lastModified.getTime()) / 86_400_000;
      const lockValid = oHead.lockMode !== undefined && oHead.lockUntil !== undefined && oHead.lockUntil.getTime() > ctx.now.getTime();
      if (!lockValid && (retention === undefined || ageDays < retention)) {
        findings.push(makeFinding({ ...oAt, subject: object.key, check: 'object-lock', severity: 'fail', since: oHead.lastModified.toISOString(), summary: oHead.lockMode ? `${oLabel} Object Lock retention ended ${oHead.lockUntil?.toISOString()}, before the tier's retention` : `${oLabel} has no Object Lock retention: it can be deleted or overwritten`, action: `Check the bucket's default retention and the agent's objectLock setting for tier ${loc.tier}; set retention on this object (put-object-retention).` }));
      }
      heads.push(oHead);
    }
    // A segment beyond the signed list: the ciphertext is not what was backed up.
    const own = parseKey(artifact.key);
    for (const extra of backup.artifacts) {
      const parsed = parseKey(extra.key);
      if (!own || own.kind !== 'artifact' || parsed?.kind !== 'artifact' || objects.some((o) => o.key === extra.key)) continue;
      if (parsed.artifact !== own.artifact || parsed.extension !== own.extension) continue;
      findings.push(makeFinding({ ...at, where: s3(ctx.bucket, extra.key), subject: extra.key, check: 'ciphertext-size', severity: 'fail', since: extra.lastModified.toISOString(), summary: `${label} has a segment ${parsed.segment} (${extra.size} bytes) that its signed manifest does not list (it lists ${objects.length})`, action: `${DO_NOT_RESTORE} Find who wrote this object (S3 server access logs / CloudTrail data events).` }));
      objectsOk = false;
    }
    if (!objectsOk) continue;
    // The first segment's head stands for the artifact (its ETag keys the read record), except that
    // one archived segment without a restored copy makes the whole artifact unreadable until restored.
    const unread = heads.find((h) => ARCHIVED_CLASSES.has(h.storageClass) && !(h.restore ?? '').includes('ongoing-request="false"'));
    const head: ObjectHead = unread ? { ...heads[0], storageClass: unread.storageClass, restore: unread.restore } : heads[0];

    const record = ctx.records.get(artifact.key);
    const sameObject = record !== undefined && record.etag === head.etag;
    if (sameObject && record.complete && record.ok === false) {
      findings.push(sha256Finding(aAt, artifact, record, label));
      continue;
    }
    const isArchived = ARCHIVED_CLASSES.has(head.storageClass) && !(head.restore ?? '').includes('ongoing-request="false"');
    if (isArchived) {
      archived++;
      if (sameObject && record.complete && record.ok) verified++;
      else {
        findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'not-read-verified', severity: 'warn', since: manifest.finishedAt, summary: `${label} is in ${head.storageClass} and was never read back and hashed before it was archived`, action: `Its signature, size and lock were checked from metadata. To prove its content, restore it (coldseal restore --verify-only, or S3 RestoreObject) and let the next verification hash it.` }));
      }
      continue;
    }

    // The head of the message names who can decrypt it. The newest backup must be addressed to the
    // recipients configured now; older ones to those their signed manifest says (keys rotate).
    const expectedIds = options.newest ? ctx.keys.recipientKeyIds : manifest.encryption.recipientKeyIds;
    let headBytes = Buffer.alloc(0);
    for await (const chunk of await ctx.store.getRange(artifact.key, 0, Math.min(HEAD_BYTES, head.size))) headBytes = Buffer.concat([headBytes, chunk]);
    let messageIds: string[] | undefined;
    try {
      messageIds = await messageRecipientKeyIds(headBytes);
    } catch (error) {
      findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'not-openpgp', severity: 'fail', since: head.lastModified.toISOString(), summary: `${label} does not start like an OpenPGP message encrypted to public keys`, detail: (error as Error).message, action: `${DO_NOT_RESTORE} Find who wrote this object.` }));
    }
    if (messageIds && !sameSet(messageIds, expectedIds)) {
      const whose = options.newest ? `the recipients configured in ${ctx.keys.recipientsParameter}` : 'the recipients its signed manifest lists';
      findings.push(makeFinding({ ...aAt, subject: artifact.key, check: 'recipients', severity: 'fail', since: manifest.finishedAt, summary: `${label} is encrypted to key ids ${messageIds.join(', ')}, not to ${whose} (${expectedIds.join(', ')})`, action: `The escrow key may not be able to decrypt this dump. Check the recipients in the agent config of group ${loc.group} (and ${ctx.keys.recipientsParameter}); then run coldseal trigger --group ${loc.group} --host ${loc.host} for a correctly addressed backup.` }));
    }

    const reverifyDue = sameObject && record.complete && record.ok === true && ctx.now.getTime() - Date.parse(record.verifiedAt ?? record.firstReadAt) > ctx.reverifyDays * 86_400_000;
    if (sameObject && record.complete && record.ok === true && !reverifyDue) {
      verified++;
      continue;
    }
    jobs.push({ backup, manifest, artifact, head, previous: sameObject ? record : undefined, firstRead: !sameObject || !record.complete });
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
