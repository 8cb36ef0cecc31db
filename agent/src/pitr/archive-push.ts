import { hostname } from 'node:os';
import { mkdir, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { PublishCommand } from '@aws-sdk/client-sns';
import type { AgentConfig, PostgresSourceConfig } from '../../../format/agent-config';
import { postgresPitrSchema } from '../../../format/agent-config';
import { hostNameFrom } from '../../../format/layout';
import { METRIC } from '../../../format/metric-names';
import { mapLimit } from '../../../runtime/concurrency';
import type { AgentClients } from '../aws';
import { loadKeys } from '../backup/run';
import { ColdsealError, describeError, EXIT, exitCodeOf, type ExitCode } from '../errors';
import type { Log } from '../log';
import { chooseCompression } from '../pipeline/compression';
import { prepareEncryptor } from '../pipeline/encrypt';
import { publishArchiverMetrics, readArchiverFailedCount } from './archiver-metrics';
import { readClusterIdentity } from './cluster-files';
import { defaultStateDir, markerDir, planPush } from './push-plan';
import { pitrConnection } from './source-connection';
import { archiveWalFile, MAX_WAL_FILE_BYTES, WalIntegrityError, type WalArchiveContext, type WalUploadResult } from './wal-upload';

/**
 * `coldseal pitr archive-push`, PostgreSQL's archive_command (through the wrapper script that
 * `pitr setup` installs). Exit 0 only once the requested file is in S3 with its signed record;
 * every failure maps to a code from format/exit-codes.ts, all below 126, because a status of 126
 * or more (or death by a signal) makes PostgreSQL's archiver process abort instead of retrying
 * (PostgreSQL docs, "Continuous Archiving and Point-in-Time Recovery", "Setting Up WAL
 * Archiving"). The files pushed ahead (push-plan.ts) never decide the exit status: PostgreSQL
 * asks for each in turn, and a failure then is reported then.
 */

/**
 * Ciphertext buffers in flight stay under this (one WAL file each: see wal-upload.ts). Node and
 * the bundle take ~110 MB before the first upload. With 16 MiB segments, 128 MiB (8 in flight)
 * took one call to 215–225 MB, past the 200 MB goal; 64 MiB (4) to 185–194 MB; 48 MiB (3) to
 * 149–161 MB, and archived no slower in the same bench (`npm run bench -- --pitr`): zstd and gpg,
 * children of their own, use the machine's cores, not the uploads in flight.
 */
export const BUFFER_BUDGET_BYTES = 48 * 1024 * 1024;
/** A call that takes longer leaves the file to PostgreSQL's next retry rather than stall the archiver. */
const CALL_DEADLINE_MS = 5 * 60 * 1000;

export interface ArchivePushOptions {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly source: PostgresSourceConfig;
  /** %p: relative to the data directory (the working directory) or absolute. */
  readonly walPath: string;
  /** %f */
  readonly walFile: string;
  readonly stateDir?: string;
  readonly dataDir?: string;
  readonly now?: () => Date;
}

export interface ArchivePushResult {
  readonly exitCode: ExitCode;
  readonly requested: WalUploadResult | 'pushed-ahead-earlier';
  /** Files pushed ahead by this call (their markers written). */
  readonly ahead: readonly string[];
}

export async function runArchivePush(options: ArchivePushOptions): Promise<ArchivePushResult> {
  const { config, clients, log, source } = options;
  const now = options.now ?? (() => new Date());
  const host = config.host ?? hostNameFrom(hostname());
  const pitr = source.pitr ?? postgresPitrSchema.parse({});
  if (!source.pitr?.enabled) log.warn(`source ${source.name} does not have "pitr": { "enabled": true }; archiving anyway (refusing would fill pg_wal)`, { source: source.name });
  const dataDir = options.dataDir ?? process.cwd();
  const walPath = isAbsolute(options.walPath) ? options.walPath : join(dataDir, options.walPath);

  const cluster = await readClusterIdentity(dataDir);
  if (cluster.walSegmentSize > MAX_WAL_FILE_BYTES) {
    throw new ColdsealError(EXIT.CONFIG, `this cluster's wal_segment_size is ${cluster.walSegmentSize / 1048576} MB: coldseal archives segments of at most ${MAX_WAL_FILE_BYTES / 1048576} MB`, 'Archive this cluster with another tool, or re-initialise it with initdb --wal-segsize=64 or less');
  }
  const markers = markerDir(options.stateDir ?? defaultStateDir(source.name), cluster.systemIdentifier);
  await mkdir(markers, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    throw new ColdsealError(EXIT.CONFIG, `cannot create the state directory ${markers}: ${error.code ?? error.message}`, `Run coldseal pitr setup --source ${source.name} --apply as root (it creates the state directory, owned by the server's user), or pass --state-dir`);
  });

  // Called directly for a file pushed ahead (the wrapper normally answers these without Node).
  if (await unlink(join(markers, options.walFile)).then(() => true, () => false)) {
    log.info('already archived (pushed ahead earlier)', { walFile: options.walFile, source: source.name });
    return { exitCode: EXIT.OK, requested: 'pushed-ahead-earlier', ahead: [] };
  }

  const statusDir = join(dataDir, 'pg_wal', 'archive_status');
  const [statusFiles, markerFiles] = await Promise.all([readdir(statusDir).catch(() => [] as string[]), readdir(markers)]);
  const plan = planPush({ requested: options.walFile, statusFiles, markers: markerFiles, pushAhead: pitr.pushAhead });
  await Promise.all(plan.staleMarkers.map((name) => unlink(join(markers, name)).catch(() => undefined)));

  const deadline = AbortSignal.timeout(CALL_DEADLINE_MS);
  // The archiver's failure count comes from the server: asked while the uploads run.
  const failedCount = pitrConnection(source, clients, 'coldseal-archive-push').then(readArchiverFailedCount);
  failedCount.catch(() => undefined);

  const keys = await loadKeys(config, clients);
  const encryptor = await prepareEncryptor(config.encryption.implementation, keys.recipients);
  const compression = chooseCompression(config.compression);
  const ctx: WalArchiveContext = {
    config,
    clients,
    log,
    host,
    source: source.name,
    keys,
    trustedSigningKeys: [keys.signingKey.toPublic()],
    encryptor,
    // Files are compressed side by side: one zstd thread each.
    compression: compression.algorithm === 'zstd' ? { ...compression, threads: 1 } : compression,
    cluster,
    now,
    signal: deadline,
  };

  const started = Date.now();
  const jobs = [{ path: walPath, walFile: options.walFile }, ...plan.ahead.map((name) => ({ path: join(dataDir, 'pg_wal', name), walFile: name }))];
  const concurrency = Math.max(1, Math.min(pitr.concurrency, Math.floor(BUFFER_BUDGET_BYTES / cluster.walSegmentSize)));
  let outcomes: Array<{ ok: true; result: WalUploadResult } | { ok: false; error: unknown }>;
  try {
    outcomes = await mapLimit(jobs, concurrency, async (job, index) => {
      try {
        const result = await archiveWalFile(ctx, job);
        log.debug(result.outcome, { walFile: result.walFile, key: result.key, plaintextBytes: result.plaintextBytes, ciphertextBytes: result.ciphertextBytes });
        // The marker is the wrapper's licence to say "archived" without asking S3: written only now.
        if (index > 0) await writeFile(join(markers, job.walFile), `${result.key}\n${result.plaintextSha256}\n`);
        return { ok: true as const, result };
      } catch (error) {
        return { ok: false as const, error };
      }
    });
  } finally {
    encryptor.close();
  }

  const requested = outcomes[0]!;
  const ahead = outcomes.slice(1).flatMap((o) => (o.ok ? [o.result.walFile] : []));
  const archived = outcomes.filter((o) => o.ok).length;
  for (const [i, o] of outcomes.entries()) {
    if (!o.ok && i > 0) log.warn(`pushing ${jobs[i]!.walFile} ahead failed (PostgreSQL asks for it later): ${describeError(o.error)}`, { walFile: jobs[i]!.walFile, exitCode: exitCodeOf(o.error) });
  }
  log.info('archive-push done', {
    source: source.name,
    walFile: options.walFile,
    requested: requested.ok ? requested.result.outcome : 'failed',
    pushedAhead: ahead.length,
    aheadFailed: outcomes.length - 1 - ahead.length,
    seconds: Math.round((Date.now() - started) / 10) / 100,
    maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  });

  const integrity = await notAlertedLately(
    join(markers, '..', 'alerted'),
    outcomes.flatMap((o) => (!o.ok && o.error instanceof WalIntegrityError ? [o.error] : [])),
    now(),
  );
  if (integrity.length > 0) await sendIntegrityAlert({ config, clients, log, host, source: source.name, errors: integrity, at: now() });

  const remaining = Math.max(0, plan.readyCount - ahead.length - (requested.ok && plan.requestedReady ? 1 : 0));
  const failures = await failedCount.catch((error: Error) => {
    log.warn(`could not read pg_stat_archiver (the ${METRIC.walArchiverFailedCount} metric is left out): ${error.message}`, { source: source.name });
    return undefined;
  });
  try {
    await publishArchiverMetrics(config, { group: config.group, host, source: source.name }, { readyBacklog: remaining, filesArchived: archived, failedCount: failures }, now(), deadline);
  } catch (error) {
    log.warn(`could not publish the archiver metrics: ${(error as Error).message}`, { source: source.name });
  }
  if (!requested.ok) throw requested.error;
  return { exitCode: EXIT.OK, requested: requested.result, ahead };
}

/** The same conflict is alerted once in this long, however often PostgreSQL retries the file (3 tries a minute). */
const REALERT_AFTER_MS = 6 * 3600 * 1000;

/**
 * The conflicts not alerted within REALERT_AFTER_MS, each noted (a file per WAL file, its mtime
 * the alert's time). An unwritable note costs a repeated alert, never a missed one.
 */
async function notAlertedLately(dir: string, errors: readonly WalIntegrityError[], at: Date): Promise<WalIntegrityError[]> {
  const fresh: WalIntegrityError[] = [];
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => undefined);
  for (const error of errors) {
    const note = join(dir, error.walFile);
    const last = await stat(note).then((s) => s.mtimeMs, () => undefined);
    if (last !== undefined && at.getTime() - last < REALERT_AFTER_MS) continue;
    fresh.push(error);
    await writeFile(note, `${error.key}\n`).catch(() => undefined);
  }
  return fresh;
}

async function sendIntegrityAlert(args: { config: AgentConfig; clients: AgentClients; log: Log; host: string; source: string; errors: WalIntegrityError[]; at: Date }): Promise<void> {
  const { config, clients, log, host, source, errors, at } = args;
  if (!config.alertTopicArn) return;
  const subject = `coldseal WAL INTEGRITY: ${config.group}/${host}/${source}`.slice(0, 99);
  const lines = [
    `WAL archiving of source ${source} on host ${host} (group ${config.group}) found an archived WAL file that differs from the one PostgreSQL holds, at ${at.toISOString()}.`,
    '',
    ...errors.flatMap((e) => [`${e.walFile} (s3://${config.bucket}/${e.key}):`, `  ${describeError(e)}`, '']),
    'Nothing was overwritten. PostgreSQL keeps the file in pg_wal and retries it; the archive is stuck until the cause is fixed, and pg_wal grows meanwhile.',
    `This alert is not repeated for the same file for ${REALERT_AFTER_MS / 3600_000} hours, however often PostgreSQL retries it.`,
  ];
  try {
    await clients.sns.send(new PublishCommand({ TopicArn: config.alertTopicArn, Subject: subject, Message: lines.join('\n') }));
  } catch (error) {
    log.error(`could not publish the integrity alert to ${config.alertTopicArn}: ${(error as Error).message}`);
  }
}
