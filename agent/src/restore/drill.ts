import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { drillReceiptKey, hostNameFrom, manifestKey, stampOf } from '../../../format/layout';
import type { DrillReceipt } from '../../../format/manifest';
import { fingerprintOf, KeyError, readPrivateKey, type PrivateKey, type PublicKey } from '../../../runtime/pgp';
import { signDrillReceipt } from '../../../runtime/signed-document';
import type { AgentClients } from '../aws';
import { isComplete, listBackups, storageError, type BackupEntry } from '../catalog/listing';
import type { AgentConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';
import { readClients, type ReadLocation } from '../replica';
import { resolveSecret } from '../secrets';
import { AGENT_VERSION } from '../version';
import { verifyBackup, type Check, type ScratchServers } from './verify';
import { pitrDrill } from './pitr/drill';
import type { WalArchiveAccess } from './pitr/run';
import { binlogPitrDrill, isBinlogArchive } from './binlog/drill';

/**
 * `coldseal drill`: on the designated drill host, restore the latest backup of every (host, source)
 * of the group into scratch, check it as `verify --deep` does, and write a signed receipt to
 * drills/<group>/<drill host>/<stamp>.drill.json, which the verifier's report includes.
 */
export interface DrillOptions {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly key: PrivateKey;
  readonly trusted: readonly PublicKey[];
  readonly scratch: ScratchServers;
  readonly expectedRecipientKeyIds?: readonly string[];
  /** Only backups of these hosts / sources (default: all of the group). */
  readonly hosts?: readonly string[];
  readonly sources?: readonly string[];
  readonly now?: () => Date;
  /** Where the backups are read from (default: the configured data bucket); the replica with drill --replica. */
  readonly read?: ReadLocation;
  /** Write the signed receipt to this local file instead of drills/ in the data bucket. */
  readonly receiptFile?: string;
  /** Instead of the latest backups: a point-in-time restore of every PITR source (drill --pitr) to a random point of its window. */
  readonly pitr?: {
    readonly wal: (host: string, source: string) => WalArchiveAccess;
    readonly sources: (s3: AgentClients['s3'], bucket: string, group: string) => Promise<{ host: string; source: string }[]>;
    readonly timeoutMs: number;
    readonly random?: () => number;
    /** Binary logs fetched ahead by a MySQL/MariaDB source's drill. */
    readonly binlogConcurrency?: number;
  };
}

export interface DrillOutcome {
  readonly receipt: DrillReceipt;
  /** s3://bucket/key of the receipt, or the local file it was written to. */
  readonly receiptKey: string;
}

export function latestPerSource(entries: readonly BackupEntry[]): BackupEntry[] {
  const latest = new Map<string, BackupEntry>();
  for (const entry of entries.filter(isComplete)) {
    const id = `${entry.group}/${entry.host}/${entry.source}`;
    const best = latest.get(id);
    if (!best || entry.stamp > best.stamp) latest.set(id, entry);
  }
  return [...latest.values()].sort((a, b) => a.host.localeCompare(b.host) || a.source.localeCompare(b.source));
}

function detailOf(check: Check): string {
  return check.skipped ? `skipped: ${check.detail}` : check.warn ? `warning: ${check.detail}` : check.detail;
}

export async function runDrill(options: DrillOptions): Promise<DrillOutcome> {
  const { config, clients, log } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const drillHost = config.host ?? hostNameFrom(hostname());
  let signingKey: PrivateKey;
  try {
    signingKey = await readPrivateKey(await resolveSecret(clients.ssm, config.signingKey, 'signing key'), 'signing key', process.env.COLDSEAL_KEY_PASSPHRASE);
  } catch (error) {
    if (error instanceof KeyError) throw new ColdsealError(EXIT.KEYS, error.message, 'The drill signs its receipt with the group signing key named in the configuration');
    throw error;
  }

  const read = options.read ?? { bucket: config.bucket, s3: clients.s3 };
  const readingClients = readClients(clients, read);
  // drill --pitr drills the point-in-time restores only (its own receipt); a plain drill, the latest backups.
  const entries = options.pitr
    ? []
    : latestPerSource(await listBackups(read.s3, read.bucket, { group: config.group })).filter(
        (e) => (!options.hosts?.length || options.hosts.includes(e.host)) && (!options.sources?.length || options.sources.includes(e.source)),
      );
  if (entries.length === 0 && !options.pitr) {
    throw new ColdsealError(EXIT.NOT_FOUND, `no complete backup of group ${config.group}${options.hosts?.length ? ` on ${options.hosts.join(', ')}` : ''}${options.sources?.length ? ` for ${options.sources.join(', ')}` : ''} to drill`, 'Run a backup first (coldseal backup), or check --host/--source');
  }

  const results: DrillReceipt['results'] = [];
  const pitrSources = options.pitr
    ? (await options.pitr.sources(read.s3, read.bucket, config.group)).filter((p) => (!options.hosts?.length || options.hosts.includes(p.host)) && (!options.sources?.length || options.sources.includes(p.source)))
    : [];
  if (options.pitr && pitrSources.length === 0) throw new ColdsealError(EXIT.NOT_FOUND, `drill --pitr: no WAL archive in group ${config.group}${options.sources?.length ? ` for ${options.sources.join(', ')}` : ''}`, 'Enable pitr on a PostgreSQL or MySQL/MariaDB source (coldseal pitr setup), or drop --pitr');
  for (const entry of entries) {
    const key = manifestKey(entry, entry.stamp);
    log.info(`drill: ${entry.host}/${entry.source} backup ${entry.stamp}`, { manifest: key });
    const started = Date.now();
    // The latest of its source: held to today's recipients.
    const verification = await verifyBackup(key, { clients: readingClients, bucket: read.bucket, log, trusted: options.trusted, expectedRecipientKeyIds: options.expectedRecipientKeyIds, newest: true, objectLock: config.objectLock, deep: { key: options.key, scratch: options.scratch } });
    const backupChecks = verification.checks.map((c) => ({ name: c.name, ok: c.ok, detail: detailOf(c) }));
    if (verification.artifacts.length === 0) {
      results.push({ manifestKey: key, source: entry.source, artifact: '(manifest)', ok: false, durationMs: Date.now() - started, checks: backupChecks });
    }
    for (const artifact of verification.artifacts) {
      results.push({
        manifestKey: key,
        source: entry.source,
        artifact: artifact.artifact,
        ok: artifact.ok && verification.checks.every((c) => c.ok),
        durationMs: artifact.durationMs,
        ...(artifact.timings ? { timings: artifact.timings } : {}),
        checks: [...backupChecks, ...artifact.checks.map((c) => ({ name: c.name, ok: c.ok, detail: detailOf(c) }))],
      });
    }
  }

  // What a drill of either kind of log archive reads with, and how it treats archived objects.
  const pitrDrillBase = {
    clients: readingClients,
    bucket: read.bucket,
    log,
    group: config.group,
    trusted: options.trusted,
    key: options.key,
    archive: { days: 1, wait: false, waitTimeoutMs: 0, pollIntervalMs: 60_000, rerun: 'coldseal drill --pitr' },
    random: options.pitr?.random,
  };
  for (const { host, source } of pitrSources) {
    if (await isBinlogArchive(read.s3, read.bucket, config.group, host, source)) {
      results.push(
        await binlogPitrDrill(
          {
            ...pitrDrillBase,
            scratch: options.scratch.mysql,
            concurrency: options.pitr!.binlogConcurrency ?? 4,
          },
          host,
          source,
        ),
      );
      continue;
    }
    const postgres = config.sources.find((s) => s.type === 'postgres');
    results.push(
      await pitrDrill(
        {
          ...pitrDrillBase,
          server: postgres?.type === 'postgres' ? postgres : undefined,
          wal: options.pitr!.wal,
          timeoutMs: options.pitr!.timeoutMs,
        },
        host,
        source,
      ),
    );
  }

  const receipt: DrillReceipt = {
    formatVersion: 1,
    group: config.group,
    host: drillHost,
    stamp: stampOf(startedAt),
    startedAt: startedAt.toISOString(),
    finishedAt: now().toISOString(),
    ok: results.every((r) => r.ok),
    results,
    signingKeyFingerprint: fingerprintOf(signingKey),
    agent: { version: AGENT_VERSION, node: process.version },
    ...(read.replica ? { readFrom: read.replica } : {}),
  };
  const receiptKey = drillReceiptKey(config.group, drillHost, receipt.stamp);
  const body = await signDrillReceipt(receipt, signingKey);
  if (options.receiptFile) {
    await writeReceiptFile(options.receiptFile, body);
    return { receipt, receiptKey: options.receiptFile };
  }
  // The replica is written only by replication: the receipt goes to the data bucket (drills/ is
  // replicated, so it reaches the replica too), where the verifier's report reads it.
  try {
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: config.bucket,
        Key: receiptKey,
        Body: body,
        ContentType: 'application/json',
        IfNoneMatch: '*',
        ...(config.upload.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: config.upload.kmsKeyId, BucketKeyEnabled: true } : {}),
      }),
    );
  } catch (error) {
    const failure = storageError(error, `writing the drill receipt s3://${config.bucket}/${receiptKey}`);
    if (!read.replica) throw failure;
    // A drill from the replica is the one run while the primary may be gone: keep its proof.
    const kept = resolve(`${config.group}-${drillHost}-${receipt.stamp}.drill.json`);
    await writeReceiptFile(kept, body);
    throw new ColdsealError(failure.exitCode, `the drill from the replica ran (${receipt.ok ? 'every check passed' : 'some checks FAILED'}), but ${failure.message}; the signed receipt is kept in ${kept}`, `When the data bucket is reachable again: aws s3 cp ${kept} s3://${config.bucket}/${receiptKey}`, { cause: error });
  }
  return { receipt, receiptKey };
}

async function writeReceiptFile(path: string, body: string): Promise<void> {
  try {
    await writeFile(path, body, { flag: 'wx', mode: 0o644 });
  } catch (error) {
    throw new ColdsealError(EXIT.CONFIG, `cannot write the drill receipt to ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'Give a path that does not exist yet, in a writable directory');
  }
}
