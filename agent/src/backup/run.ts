import { hostname } from 'node:os';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { PublishCommand } from '@aws-sdk/client-sns';
import {
  artifactKey,
  hostNameFrom,
  manifestKey,
  stampOf,
  type SourceLocation,
  type Tier,
} from '../../../format/layout';
import { MANIFEST_FORMAT_VERSION, type Artifact, type Inventory, type Manifest } from '../../../format/manifest';
import { recipientProblems } from '../../../runtime/key-roles';
import { UploadsLeftOpenError } from './upload/abort-upload';
import { encryptionKeyIds, fingerprintOf, KeyError, readPrivateKey, readPublicKeys, type PrivateKey, type PublicKey } from '../../../runtime/pgp';
import { signManifest } from '../../../runtime/signed-document';
import type { AgentClients } from '../aws';
import type { AgentConfig, SourceConfig } from '../../../format/agent-config';
import { ColdsealError, describeError, EXIT, exitCodeOf, type ExitCode } from '../errors';
import { formatBytes } from '../../../runtime/byte-size';
import { INCOMPLETE_UPLOAD_ABORT_DAYS } from '../../../format/run-document';
import type { Log } from '../log';
import { chooseCompression, type CompressionChoice } from '../pipeline/compression';
import { startArtifact, type ArtifactResult, type RunningArtifact } from './upload/artifact';
import { prepareEncryptor, type Encryptor } from '../pipeline/encrypt';
import { planUpload } from './upload/size-plan';
import { resolvePublicKeys, resolveSecret } from '../secrets';
import { prepareFiles } from './sources/files';
import { prepareMysql } from './sources/mysql';
import { preparePostgres } from './sources/postgres';
import { recordableArgs, type DumpStep, type InventorySession, type PreparedSource, type StepCompanion } from './sources/source';
import { interruptedBy } from '../interrupt';
import { tierFor } from './tier-calendar';
import { AGENT_VERSION } from '../version';

export interface BackupOptions {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  /** Force a tier instead of the calendar's choice. */
  readonly tier?: Tier;
  /** Only these sources (names); default all. */
  readonly sources?: readonly string[];
  readonly now?: () => Date;
}

export interface SourceResult {
  readonly source: string;
  readonly ok: boolean;
  readonly manifestKey?: string;
  readonly artifacts?: readonly Artifact[];
  readonly error?: string;
  readonly exitCode: ExitCode;
  /** Multipart uploads of this source S3 may still hold because their abort failed too. */
  readonly uploadsLeftOpen?: number;
}

export interface BackupResult {
  readonly tier: Tier;
  readonly host: string;
  readonly results: readonly SourceResult[];
  readonly exitCode: ExitCode;
}

export interface Keys {
  readonly recipients: readonly PublicKey[];
  readonly recipientFingerprints: string[];
  readonly recipientKeyIds: string[];
  readonly signingKey: PrivateKey;
}

export async function loadKeys(config: AgentConfig, clients: AgentClients): Promise<Keys> {
  try {
    const recipients = await readPublicKeys(await resolvePublicKeys(clients.ssm, config.recipients, 'recipients'), 'recipients');
    const signingKey = await readPrivateKey(await resolveSecret(clients.ssm, config.signingKey, 'signing key'), 'signing key', process.env.COLDSEAL_KEY_PASSPHRASE);
    const problems = recipientProblems(recipients, [{ owner: `group ${config.group} (the signing key this host signs with)`, keys: [signingKey] }]);
    if (problems.length > 0) {
      throw new ColdsealError(EXIT.KEYS, `recipients: ${problems.join('; ')}`, 'Nothing was dumped. Fix the recipients of this group (the stack\'s coldseal.recipients, or the agent configuration\'s recipients)');
    }
    return {
      recipients,
      recipientFingerprints: recipients.map(fingerprintOf),
      recipientKeyIds: await encryptionKeyIds(recipients),
      signingKey,
    };
  } catch (error) {
    if (error instanceof KeyError) throw new ColdsealError(EXIT.KEYS, error.message, 'Generate keys with coldseal keys generate; recipients take public keys only');
    throw error;
  }
}

/** The source's password (when it has one) and its dump steps: look-ups only, nothing is dumped. */
async function prepareSource(source: SourceConfig, clients: AgentClients): Promise<PreparedSource> {
  const password = 'password' in source && source.password ? await resolveSecret(clients.ssm, source.password, `source ${source.name} password`) : undefined;
  switch (source.type) {
    case 'postgres':
      return preparePostgres(source, password);
    case 'mysql':
      return prepareMysql(source, password);
    case 'files':
      return prepareFiles(source);
  }
}

function objectTags(loc: SourceLocation): string {
  return new URLSearchParams({ 'coldseal:group': loc.group, 'coldseal:host': loc.host, 'coldseal:source': loc.source, 'coldseal:tier': loc.tier }).toString();
}

function lockParams(config: AgentConfig, tier: Tier, now: Date) {
  const lock = config.objectLock[tier];
  if (!lock) return {};
  return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(now.getTime() + lock.days * 86_400_000) };
}

export async function runBackup(options: BackupOptions): Promise<BackupResult> {
  const { config, clients, log } = options;
  const now = options.now ?? (() => new Date());
  const host = config.host ?? hostNameFrom(hostname());
  const tier = options.tier ?? tierFor(now(), config.calendar);

  const selected = options.sources?.length ? options.sources : config.sources.map((s) => s.name);
  const unknown = selected.filter((name) => !config.sources.some((s) => s.name === name));
  if (unknown.length) {
    throw new ColdsealError(EXIT.USAGE, `unknown source ${unknown.map((u) => `"${u}"`).join(', ')}`, `Configured sources: ${config.sources.map((s) => s.name).join(', ')}`);
  }
  const compression = chooseCompression(config.compression);
  // The first source's look-ups (database list, versions, sizes) run while the keys are read and the
  // encryptor is set up: they are independent, and each costs a few child processes' start-up that
  // would otherwise delay the first dump. Its dump still waits for the keys.
  const first = config.sources.find((s) => selected.includes(s.name));
  const early: EarlyPreparation | undefined = first && { source: first.name, prepared: prepareSource(first, clients) };
  early?.prepared.catch(() => undefined);
  let keys: Keys;
  let encryptor: Encryptor;
  try {
    keys = await loadKeys(config, clients);
    encryptor = await prepareEncryptor(config.encryption.implementation, keys.recipients);
  } catch (error) {
    await discardPreparation(early?.prepared);
    // Nothing was dumped, yet every selected source missed its backup: that is alerted like any failure.
    const failed = selected.map((source) => ({ source, ok: false, error: describeError(error), exitCode: exitCodeOf(error) }));
    await sendFailureAlert({ config, clients, log, host, tier, failed, at: now() });
    throw error;
  }
  try {
    return await backUpSources({ config, clients, log, host, tier, selected, compression, keys, encryptor, now, early });
  } finally {
    encryptor.close();
  }
}

/** A source's preparation started before the keys were read (see runBackup). */
interface EarlyPreparation {
  readonly source: string;
  readonly prepared: Promise<PreparedSource>;
}

/** A preparation that will not be used: its temporary files (password files) are removed. */
async function discardPreparation(preparation: Promise<PreparedSource> | undefined): Promise<void> {
  await preparation?.then(
    (prepared) => prepared.cleanup(),
    () => undefined,
  );
}

async function backUpSources(args: {
  config: AgentConfig;
  clients: AgentClients;
  log: Log;
  host: string;
  tier: Tier;
  selected: readonly string[];
  compression: CompressionChoice;
  keys: Keys;
  encryptor: Encryptor;
  now: () => Date;
  early?: EarlyPreparation;
}): Promise<BackupResult> {
  const { config, clients, log, host, tier, selected, compression, keys, encryptor, now, early } = args;
  log.info('backup starting', { group: config.group, host, tier, sources: selected, compression: compression.implementation, encryption: encryptor.implementation, recipients: keys.recipientFingerprints });

  const results: SourceResult[] = [];
  for (const source of config.sources.filter((s) => selected.includes(s.name))) {
    const preparation = early?.source === source.name ? early.prepared : undefined;
    const signal = interruptedBy();
    if (signal) {
      await discardPreparation(preparation);
      results.push({ source: source.name, ok: false, error: `not started: the backup was interrupted by ${signal}`, exitCode: EXIT.INTERRUPTED });
      continue;
    }
    try {
      const { manifest, refused } = await backUpSource({ source, config, clients, log, keys, compression, encryptor, loc: { tier, group: config.group, host, source: source.name }, now, preparation });
      const total = manifest.artifacts.reduce((sum, a) => sum + a.ciphertextBytes, 0);
      const key = manifestKey({ tier, group: config.group, host, source: source.name }, manifest.stamp);
      log.info('source backed up', { source: source.name, manifest: `s3://${config.bucket}/${key}`, artifacts: manifest.artifacts.length, ciphertextBytes: total, size: formatBytes(total) });
      if (refused.length === 0) {
        results.push({ source: source.name, ok: true, manifestKey: key, artifacts: manifest.artifacts, exitCode: EXIT.OK });
      } else {
        // What was backed up is committed; the part that was refused still fails the source, so it is alerted.
        const message = `${refused.map(describeError).join('; ')} (the other artifacts were backed up: s3://${config.bucket}/${key})`;
        log.error(`source ${source.name}: ${message}`, { source: source.name, exitCode: exitCodeOf(refused[0]) });
        results.push({ source: source.name, ok: false, manifestKey: key, artifacts: manifest.artifacts, error: message, exitCode: exitCodeOf(refused[0]) });
      }
    } catch (error) {
      const code = error instanceof ColdsealError ? error.exitCode : EXIT.FAILURE;
      const message = describeError(error);
      log.error(`source ${source.name} failed: ${message}`, { source: source.name, exitCode: code });
      results.push({ source: source.name, ok: false, error: message, exitCode: code, uploadsLeftOpen: error instanceof UploadsLeftOpenError ? error.outcome.notAborted.length : 0 });
    }
  }

  const failed = results.filter((r) => !r.ok);
  if (failed.length) await sendFailureAlert({ config, clients, log, host, tier, failed, at: now() });
  const exitCode: ExitCode = interruptedBy() ? EXIT.INTERRUPTED : failed.length === 0 ? EXIT.OK : failed.length === results.length ? (new Set(failed.map((f) => f.exitCode)).size === 1 ? failed[0].exitCode : EXIT.FAILURE) : EXIT.PARTIAL;
  return { tier, host, results, exitCode };
}

async function backUpSource(args: {
  source: SourceConfig;
  config: AgentConfig;
  clients: AgentClients;
  log: Log;
  keys: Keys;
  compression: CompressionChoice;
  encryptor: Encryptor;
  loc: SourceLocation;
  now: () => Date;
  /** The preparation already under way for this source, if any. */
  preparation?: Promise<PreparedSource>;
}): Promise<{ manifest: Manifest; refused: readonly Error[] }> {
  const { source, config, clients, log, keys, compression, encryptor, loc } = args;
  const startedAt = args.now();
  const stamp = stampOf(startedAt);
  const prepared = await (args.preparation ?? prepareSource(source, clients));
  if (prepared.steps.length === 0) {
    await prepared.cleanup();
    throw new ColdsealError(EXIT.SOURCE, `source ${source.name} has nothing to back up (no database matched)`, 'Check databases and excludeDatabases in the source');
  }

  // Every artifact's upload waits at its very end for this: all of the source, or nothing.
  let commit!: () => void;
  let cancel!: (error: Error) => void;
  const committed = new Promise<void>((resolve, reject) => {
    commit = resolve;
    cancel = reject;
  });
  committed.catch(() => undefined);

  const running: RunningStep[] = [];
  // Every inventory session and companion opened, closed at the end even when its dump never started (E2BIG).
  const sessions: (InventorySession | StepCompanion)[] = [];
  try {
    for (const planned of prepared.steps) {
      if (planned.stillExists && !(await planned.stillExists())) {
        log.warn(`database ${planned.name} of source ${source.name} was dropped after the databases were listed; skipped`, { source: source.name, artifact: planned.name });
        continue;
      }
      const key = artifactKey(loc, stamp, planned.name, `${planned.extension}.${compression.extension}`);
      const inventory = await openInventory(planned, source.name, log);
      if (inventory) sessions.push(inventory);
      const companion = await planned.companion?.({ stamp, loc, s3: clients.s3, bucket: config.bucket, log });
      if (companion) sessions.push(companion);
      const extraArgs = [...(inventory?.args ?? []), ...(companion?.args ?? [])];
      const step = extraArgs.length ? { ...planned, args: [...planned.args, ...extraArgs] } : planned;
      log.info('dumping', { source: source.name, artifact: step.name, tool: step.tool.name, key });
      const artifact = startArtifact({
        step,
        label: `${source.name}/${step.name}`,
        compression,
        encryptor,
        commit: committed,
        log,
        companion,
        target: {
          s3: clients.s3,
          bucket: config.bucket,
          key,
          plan: planUpload({ estimatedBytes: step.estimatedBytes, partSizeMiB: config.upload.partSizeMiB, queueSize: config.upload.queueSize, segmentParts: config.upload.segmentParts }),
          objectParams: { ContentType: 'application/pgp-encrypted', StorageClass: config.upload.storageClass, ...storedObjectParams(config, loc, args.now()) },
        },
      });
      running.push({ step, key, artifact, inventory });
      try {
        // Whichever settles first: the dump checked out, or the upload failed before the dump's end.
        await Promise.race([artifact.dumped, artifact.stored]);
      } finally {
        // The dump tool has exited: the snapshot it imported may be released.
        await inventory?.close();
        await companion?.close();
      }
    }
    if (running.length === 0) {
      throw new ColdsealError(EXIT.SOURCE, `every database of source ${source.name} was dropped while the backup ran; nothing to back up`, 'Check what drops databases during the backup window');
    }
    commit();
    const stored: ArtifactResult[] = [];
    for (const r of running) stored.push(await r.artifact.stored);
    const inventories = await collectInventories(running, source.name, log);
    const artifacts = running.map((r, i) => toArtifact(r.step, r.key, stored[i], inventories[i]));
    const manifest: Manifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      group: loc.group,
      host: loc.host,
      source: loc.source,
      tier: loc.tier,
      stamp,
      engine: prepared.engine,
      startedAt: startedAt.toISOString(),
      finishedAt: args.now().toISOString(),
      compression: { algorithm: compression.algorithm, level: compression.level, implementation: compression.implementation },
      encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', implementation: encryptor.implementation, recipientFingerprints: keys.recipientFingerprints, recipientKeyIds: keys.recipientKeyIds },
      signingKeyFingerprint: fingerprintOf(keys.signingKey),
      artifacts,
      agent: { version: AGENT_VERSION, node: process.version },
    };
    await putManifest(manifest, { config, clients, keys, loc, now: args.now });
    return { manifest, refused: prepared.refused ?? [] };
  } catch (error) {
    cancel(error instanceof Error ? error : new Error(String(error)));
    throw await afterAborts(error, running);
  } finally {
    await Promise.allSettled(sessions.map((session) => session.close()));
    await prepared.cleanup();
  }
}

/** Artifact objects and the manifest alike: tagged, KMS-encrypted when configured, locked for the tier. */
function storedObjectParams(config: AgentConfig, loc: SourceLocation, now: Date) {
  return {
    Tagging: objectTags(loc),
    ...(config.upload.kmsKeyId ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: config.upload.kmsKeyId, BucketKeyEnabled: true } : {}),
    ...lockParams(config, loc.tier, now),
  };
}

/** Each artifact's inventory, undefined where it failed (a failure costs the inventory, never the backup). */
async function collectInventories(running: readonly RunningStep[], source: string, log: Log): Promise<(Inventory | undefined)[]> {
  const inventories: (Inventory | undefined)[] = [];
  for (const r of running) {
    inventories.push(
      await r.inventory?.inventory.catch((error: Error) => {
        log.warn(`no inventory for ${source}/${r.step.name}: ${error.message}`, { source, artifact: r.step.name });
        return undefined;
      }),
    );
  }
  return inventories;
}

/** Signs the manifest and writes it: the commit point of the source's backup. */
async function putManifest(manifest: Manifest, args: { config: AgentConfig; clients: AgentClients; keys: Keys; loc: SourceLocation; now: () => Date }): Promise<void> {
  const { config, clients, keys, loc } = args;
  const body = await signManifest(manifest, keys.signingKey);
  try {
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: config.bucket,
        Key: manifestKey(loc, manifest.stamp),
        Body: body,
        ContentType: 'application/json',
        IfNoneMatch: '*',
        ...storedObjectParams(config, loc, args.now()),
      }),
    );
  } catch (error) {
    throw new ColdsealError(EXIT.STORAGE, `writing the manifest s3://${config.bucket}/${manifestKey(loc, manifest.stamp)} failed: ${(error as Error).message}`, 'The dumps were uploaded but are not committed; run the backup again', { cause: error });
  }
}

/**
 * The error to report once every upload of a failed source was aborted: nothing half-done stays,
 * or the report says which upload S3 still holds (the abort failed too).
 */
async function afterAborts(error: unknown, running: readonly RunningStep[]): Promise<unknown> {
  const settled = await Promise.allSettled(running.map((r) => r.artifact.stored));
  if (error instanceof UploadsLeftOpenError) return error;
  const left = settled.flatMap((s) => (s.status === 'rejected' && s.reason instanceof UploadsLeftOpenError ? [s.reason] : []));
  if (left.length > 0 && error instanceof ColdsealError) {
    return new UploadsLeftOpenError(error, { aborted: [], notAborted: left.flatMap((l) => l.outcome.notAborted) });
  }
  return error;
}

interface RunningStep {
  readonly step: DumpStep;
  readonly key: string;
  readonly artifact: RunningArtifact;
  readonly inventory?: InventorySession;
}

/** Starts a step's inventory (row counts, schema fingerprint); a failure costs the inventory, never the backup. */
async function openInventory(step: DumpStep, source: string, log: Log): Promise<InventorySession | undefined> {
  if (!step.inventory) return undefined;
  try {
    return await step.inventory();
  } catch (error) {
    log.warn(`no inventory for ${source}/${step.name}: ${(error as Error).message}`, { source, artifact: step.name });
    return undefined;
  }
}

function toArtifact(step: DumpStep, key: string, result: ArtifactResult, inventory: Inventory | undefined): Artifact {
  return {
    name: step.name,
    kind: step.kind,
    key,
    contentFormat: step.contentFormat,
    tool: { name: step.tool.name, version: step.tool.version, args: recordableArgs(step.args) },
    exitCode: result.exitCode,
    warnings: result.warnings,
    completion: { method: step.completion.method, detail: result.completionDetail },
    startedAt: result.startedAt.toISOString(),
    finishedAt: result.finishedAt.toISOString(),
    uncompressedBytes: result.uncompressedBytes,
    compressedBytes: result.compressedBytes,
    ciphertextBytes: result.digest.bytes,
    ciphertextSha256: result.digest.sha256,
    parts: { size: result.digest.partSize, sha256: result.digest.partSha256 },
    segments: result.segments,
    ...(inventory ? { inventory } : {}),
    ...result.facts,
  };
}

async function sendFailureAlert(args: { config: AgentConfig; clients: AgentClients; log: Log; host: string; tier: Tier; failed: SourceResult[]; at: Date }): Promise<void> {
  const { config, clients, log, host, tier, failed, at } = args;
  if (!config.alertTopicArn) return;
  const names = failed.map((f) => f.source).join(', ');
  const subject = `coldseal FAILED: ${config.group}/${host} ${names}`.slice(0, 99);
  const lines = [
    `Backup FAILED on host ${host} (group ${config.group}, tier ${tier}) at ${at.toISOString()}.`,
    '',
    ...failed.flatMap((f) => [`Source ${f.source} (exit ${f.exitCode}):`, `  ${f.error}`, '']),
    // A source whose refused part (a base backup) failed it still committed its other artifacts.
    failed.every((f) => f.manifestKey)
      ? 'The other artifacts of these sources were committed (the manifest named above); only the part said above is missing.'
      : failed.some((f) => f.uploadsLeftOpen)
        ? `Nothing was committed for these sources: no manifest was written. Some incomplete uploads could not be aborted (see above): S3's lifecycle rule removes them ${INCOMPLETE_UPLOAD_ABORT_DAYS} days after they began.`
        : `Nothing was committed for ${failed.some((f) => f.manifestKey) ? 'the sources without a manifest named above' : 'these sources'}: no manifest was written and incomplete uploads were aborted.`,
    'What to do: fix the cause above, then run the backup again, e.g.',
    `  aws ssm send-command --document-name <coldseal document> --targets Key=InstanceIds,Values=<instance id> --parameters tier=${tier},sources=${failed.map((f) => f.source).join(',')}`,
    'or on the host: node coldseal-agent.js backup --config-parameter <group config parameter> --source <name>',
  ];
  try {
    await clients.sns.send(new PublishCommand({ TopicArn: config.alertTopicArn, Subject: subject, Message: lines.join('\n') }));
  } catch (error) {
    // The exit status and the SSM command-failure rule still report the failure.
    log.error(`could not publish the failure alert to ${config.alertTopicArn}: ${(error as Error).message}`);
  }
}
