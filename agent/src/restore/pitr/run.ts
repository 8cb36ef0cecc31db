import { access, readFile } from 'node:fs/promises';
import { freeLocalPort, portIsFree } from '../../local-host';
import { join } from 'node:path';
import type { Artifact, Manifest } from '../../../../format/manifest';
import type { PostgresSourceConfig } from '../../../../format/agent-config';
import { manifestKey } from '../../../../format/layout';
import { artifactObjects, objectLabel } from '../../../../format/ranges';
import { formatLsn } from '../../../../format/wal';
import type { BackupEntry } from '../../catalog/listing';
import { asUser } from '../../db/as-user';
import { psqlRun, type PgConnection } from '../../db/postgres';
import { ColdsealError, EXIT } from '../../errors';
import type { Log } from '../../log';
import { runTool, toolSink } from '../../pipeline/sink';
import { selfInvocation, shellCommand } from '../../pitr/self-invocation';
import { ensureReadable, s3ArchiveClient, type ArchivePolicy } from '../archive';
import { missingObject, openPlaintext } from '../plaintext';
import { progress, streamInto } from '../restore';
import { loadVerifiedManifest } from '../select';
import { controlSettings, MINIMAL_PG_HBA, MINIMAL_PG_IDENT, minimalPostgresqlConf, pgCtlStartCommand, pgCtlStopCommand, recoveryConfBlock } from './config';
import { canOwnAs, checkDataDir, createDataDirs, osUser, removeDataDirs, writeOwned, type DataDirPlan, type OsUser } from './data-dir';
import { planRecovery, type ArchiveView, type BaseCandidate, type RecoveryPlan } from './plan';
import { startServer, stopServer, waitForRecovery, type RecoveryReached, type RestoredServer } from './server';
import { describeTarget, type RecoveryTarget, type TargetTimeline } from './target';
import { oneHostsBackups, type LogRestoreSource } from '../log-restore';

/**
 * `coldseal restore --source pg --to-time … | --to-lsn … | --to-latest --data-dir DIR`: a new
 * PostgreSQL data directory recovered to a point in time, from the newest base backup that ended
 * before it and the WAL archive. Everything that can refuse does so before the first byte is
 * downloaded; a failure while laying the base backup removes what was written.
 */
export interface WalArchiveAccess {
  /** The source's WAL archive: every archived file with its time, and the .history files' content. */
  view(): Promise<ArchiveView>;
  /** Writes restore_command's plan into the spool directory (owned by `owner`) and returns restore_command. */
  prepareFetch(spoolDir: string, owner: OsUser, plan: RecoveryPlan): Promise<string>;
  /** Once recovery ended: removes what restore_command no longer needs (the copy of the private key). */
  afterRecovery?(spoolDir: string): Promise<void>;
}

export interface PitrRestoreRequest extends LogRestoreSource {
  readonly target: RecoveryTarget;
  readonly timeline: TargetTimeline;
  readonly dataDir: string;
  readonly prepareOnly: boolean;
  readonly port?: number;
  readonly keepArchiving: boolean;
  /** The source as this host's configuration has it (its server is asked where its data directory is; runAs, binDir). */
  readonly sourceConfig?: PostgresSourceConfig;
  /** A connection to the source's server, for `show data_directory` (default: from sourceConfig). */
  readonly sourceConnection?: PgConnection;
  readonly archive: ArchivePolicy;
  readonly wal: (host: string) => WalArchiveAccess;
  /** Give up waiting for recovery after this long (the drill); default: wait as long as it takes. */
  readonly recoveryTimeoutMs?: number;
  /** Stop the server when recovery fails or times out (the drill); a user's restore leaves it for a look. */
  readonly stopOnFailure?: boolean;
}

export interface PitrRestoreResult {
  readonly plan: RecoveryPlan;
  readonly manifest: Manifest;
  readonly host: string;
  readonly dataDir: string;
  readonly spoolDir: string;
  readonly port: number;
  readonly server: RestoredServer;
  readonly startCommand: string;
  readonly stopCommand: string;
  /** Absent with --prepare-only. */
  readonly reached?: RecoveryReached;
  /** Configuration files written because the backup had none (Debian keeps them in /etc). */
  readonly wroteConfig: string[];
  readonly connection: string;
}

/** The base backups of the source (manifests checked); the host they came from. */
export async function baseCandidates(request: Pick<PitrRestoreRequest, 'clients' | 'bucket' | 'group' | 'host' | 'source' | 'trusted'>): Promise<{ host: string; bases: BaseCandidate[]; manifests: Map<string, Manifest> }> {
  const { host, entries } = await oneHostsBackups(request.clients.s3, request.bucket, { group: request.group, host: request.host, source: request.source });
  // Base backups by their listing (an artifact named "cluster"); each is proven by its signed manifest.
  const listed = entries.filter((e: BackupEntry) => e.artifacts.some((a) => a.artifact === 'cluster'));
  const bases: BaseCandidate[] = [];
  const manifests = new Map<string, Manifest>();
  for (const entry of listed) {
    const key = manifestKey(entry, entry.stamp);
    const { manifest } = await loadVerifiedManifest(request.clients.s3, request.bucket, key, request.trusted);
    const artifact = manifest.artifacts.find((a) => a.kind === 'cluster' && a.baseBackup);
    if (!artifact?.baseBackup) continue;
    manifests.set(key, manifest);
    bases.push({ manifestKey: key, stamp: manifest.stamp, artifact: artifact.name, baseBackup: artifact.baseBackup });
  }
  return { host, bases, manifests };
}

/** The running server's data directory, when it answers: a restore never goes there. */
async function runningDataDirectory(connection: PgConnection | undefined, log: Log): Promise<string | undefined> {
  if (!connection) return undefined;
  try {
    const out = await runTool(psqlRun({ ...connection, env: { ...connection.env, PGCONNECT_TIMEOUT: '5' } }, 'postgres'), 'asking the source server for its data directory', 'show data_directory;');
    return out.trim() || undefined;
  } catch (error) {
    log.info(`could not ask the source's server where its data directory is (${(error as Error).message.split('\n')[0]}): the new directory must be empty and hold no cluster, which is checked anyway`);
    return undefined;
  }
}

/** pg_ctl of the backup's major version: the source's binDir when it has one, else Debian's layout. */
async function serverBinDir(manifest: Manifest, source: PostgresSourceConfig | undefined): Promise<string> {
  const major = /^(\d+)/.exec(manifest.engine.version ?? '')?.[1];
  const choices = [source?.binDir, major ? `/usr/lib/postgresql/${major}/bin` : undefined].filter((d): d is string => d !== undefined);
  for (const dir of choices) {
    try {
      await access(join(dir, 'pg_ctl'));
      return dir;
    } catch {
      // next
    }
  }
  throw new ColdsealError(
    EXIT.CONFIG,
    `no pg_ctl of PostgreSQL ${major ?? manifest.engine.version ?? '(unknown version)'} here (looked in ${choices.join(', ') || 'nothing: the backup does not say its version'})`,
    `Install the PostgreSQL ${major ?? ''} server package (postgresql-${major ?? 'NN'}), or set binDir on the source`,
  );
}

/** The server binaries must be of the data directory's major version (PG_VERSION), or PostgreSQL refuses to start. */
async function checkServerVersion(binDir: string, dataDir: string): Promise<void> {
  const wanted = (await readFile(join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
  const have = /\(PostgreSQL\) (\d+)/.exec(await runTool({ command: join(binDir, 'pg_ctl'), args: ['--version'] }, 'pg_ctl --version').catch(() => ''))?.[1];
  if (wanted && have && wanted !== have) {
    throw new ColdsealError(EXIT.CONFIG, `the base backup is of PostgreSQL ${wanted} (PG_VERSION) but ${binDir} is PostgreSQL ${have}`, `Install the PostgreSQL ${wanted} server (its binaries in /usr/lib/postgresql/${wanted}/bin), or set binDir on the source to them. Nothing was kept`);
  }
}

function sourceConnection(source: PostgresSourceConfig | undefined): PgConnection | undefined {
  if (!source) return undefined;
  const env: Record<string, string> = { PGPORT: String(source.port) };
  if (source.host) env.PGHOST = source.host;
  if (source.user) env.PGUSER = source.user;
  return { env, runAs: source.runAs, binDir: source.binDir };
}

/** The user the restored server's processes run as, when it is not this process's. */
function serverRunAs(owner: OsUser): string | undefined {
  return owner.uid === process.getuid?.() ? undefined : owner.name;
}

/**
 * restore_command runs this agent again as the server's OS user. If that user cannot run it (the
 * script in a directory it cannot read), Node exits 1, which PostgreSQL takes for "not in the
 * archive": recovery would end early and promote. So it is tried before anything is written.
 */
async function checkAgentRunsAs(owner: OsUser, runAs: string | undefined): Promise<void> {
  if (!runAs) return;
  const words = selfInvocation();
  const [first, ...args] = words;
  const { command, args: full } = asUser(runAs, first!, [...args, '--version']);
  try {
    await runTool({ command, args: full }, `running the agent as ${owner.name}`);
  } catch (error) {
    throw new ColdsealError(
      EXIT.CONFIG,
      `restore_command would run this agent (${words.at(-1)}) as ${owner.name}, who cannot run it: ${(error as Error).message}`,
      `Put the agent where ${owner.name} can read it (e.g. /opt/coldseal, mode 755/644), and run the restore from there. Nothing was written`,
    );
  }
}

export async function runPitrRestore(request: PitrRestoreRequest): Promise<PitrRestoreResult> {
  const { clients, bucket, log } = request;
  // ── Decide, before anything is downloaded or written ─────────────────────────────────────────
  const { host, bases, manifests } = await baseCandidates(request);
  const wal = request.wal(host);
  const view = await wal.view();
  const plan = planRecovery(bases, view, request.target, request.timeline);
  const base = plan.base;
  const manifest = manifests.get(base.manifestKey)!;
  const artifact = manifest.artifacts.find((a) => a.name === base.artifact)!;
  log.info(`base backup ${base.stamp} (ended ${base.baseBackup.stoppedAt}, LSN ${base.baseBackup.stopLsn}, timeline ${base.baseBackup.timeline}), then WAL from ${plan.firstSegment} on timeline ${plan.timeline}, to ${describeTarget(request.target)}`, {
    manifest: `s3://${bucket}/${base.manifestKey}`,
    archivedUpTo: formatLsn(plan.reachableLsn),
  });

  const owner = osUser(request.sourceConfig?.runAs ?? 'postgres');
  if (!canOwnAs(owner)) throw new ColdsealError(EXIT.USAGE, `the restored data directory must belong to ${owner.name}, and this process (uid ${process.getuid?.()}) cannot give it away`, `Run the restore as root or as ${owner.name}`);
  const binDir = await serverBinDir(manifest, request.sourceConfig).catch((error: unknown) => {
    if (request.prepareOnly) {
      log.warn(`${(error as Error).message}: the data directory is prepared anyway`);
      return `/usr/lib/postgresql/${/^(\d+)/.exec(manifest.engine.version ?? '')?.[1] ?? 'NN'}/bin`;
    }
    throw error;
  });
  await checkAgentRunsAs(owner, serverRunAs(owner));
  const port = request.port ?? (await freeLocalPort());
  if (request.port !== undefined && !request.prepareOnly && !(await portIsFree(port))) throw new ColdsealError(EXIT.USAGE, `port ${port} is in use on 127.0.0.1`, 'Give another --port, or leave it out to take a free one');
  const running = await runningDataDirectory(request.sourceConnection ?? sourceConnection(request.sourceConfig), log);
  const dirs = await checkDataDir(request.dataDir, { runningDataDir: running, port, owner });
  const objects = artifactObjects(artifact);
  await ensureReadable(s3ArchiveClient(clients.s3, bucket), objects.map((o) => o.key), request.archive, log, (key) => {
    const object = objects.find((o) => o.key === key)!;
    return missingObject(objectLabel(`s3://${bucket}/${key}`, object.segment, objects.length), key, bucket);
  });

  // ── Lay the base backup and the recovery settings ─────────────────────────────────────────────
  const server: RestoredServer = { binDir, dataDir: dirs.dataDir, socketDir: dirs.spoolDir, port, logFile: join(dirs.spoolDir, 'postgresql.log'), runAs: serverRunAs(owner) };
  const wroteConfig: string[] = [];
  // Ctrl-C or SIGTERM while the base backup is laid: stop, and leave no half-written directory.
  let interrupted: NodeJS.Signals | undefined;
  let stopLaying: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    stopLaying?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await createDataDirs(dirs);
  try {
    await layBaseBackup(request, manifest, artifact, dirs, (stop) => (stopLaying = stop));
    if (interrupted) throw new Error('interrupted');
    if (!request.prepareOnly) await checkServerVersion(binDir, dirs.dataDir);
    const restoreCommand = await wal.prepareFetch(dirs.spoolDir, owner, plan);
    wroteConfig.push(...(await writeRecoveryFiles(request, plan, dirs, server, restoreCommand)));
  } catch (error) {
    await removeDataDirs(dirs).catch((undoError: Error) => log.warn(`could not remove ${dirs.dataDir} after the failure: ${undoError.message}`));
    if (interrupted) throw new ColdsealError(EXIT.INTERRUPTED, `interrupted by ${interrupted} while laying the base backup: ${dirs.dataDir} and ${dirs.spoolDir} were removed`, 'Run the restore again');
    throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  for (const file of wroteConfig) log.info(`the base backup has no ${file} (its server keeps it outside the data directory, as Debian does): wrote a minimal one`);

  const startCommand = shellCommand(pgCtlStartCommand({ pgCtl: join(binDir, 'pg_ctl'), dataDir: dirs.dataDir, logFile: server.logFile, runAs: server.runAs }));
  const stopCommand = shellCommand(pgCtlStopCommand({ pgCtl: join(binDir, 'pg_ctl'), dataDir: dirs.dataDir, runAs: server.runAs }));
  const connection = `psql -h ${dirs.spoolDir} -p ${port} -U ${owner.name} -d postgres${server.runAs ? ` (as the OS user ${server.runAs}: runuser -u ${server.runAs} -- psql …)` : ''}`;
  const result = { plan, manifest, host, dataDir: dirs.dataDir, spoolDir: dirs.spoolDir, port, server, startCommand, stopCommand, wroteConfig, connection };
  if (request.prepareOnly) return result;

  // ── Recover ──────────────────────────────────────────────────────────────────────────────────
  log.info(`starting PostgreSQL on port ${port} to replay WAL (log: ${server.logFile})`);
  await startServer(server);
  let reached: RecoveryReached;
  try {
    reached = await waitForRecovery(server, {
      log,
      walSegmentSize: base.baseBackup.walSegmentSize,
      timeoutMs: request.recoveryTimeoutMs,
      onAbort: (file) => `WAL file ${file} of s3://${bucket}/wal/${request.group}/${host}/${request.source}/ failed its checks or could not be fetched (the line of coldseal pitr wal-fetch above says which). Restore to a target before it (an earlier --to-time or --to-lsn), or run coldseal verify to see what is damaged; remove ${dirs.dataDir} and ${dirs.spoolDir} before the next attempt`,
    });
  } catch (error) {
    if (request.stopOnFailure) await stopServer(server, 'immediate').catch(() => undefined);
    throw error;
  }
  await wal.afterRecovery?.(dirs.spoolDir);
  return { ...result, reached };
}

/** The base backup's tar into the data directory, as its owner; then backup_label must be the manifest's. */
async function layBaseBackup(request: PitrRestoreRequest, manifest: Manifest, artifact: Artifact, dirs: DataDirPlan, onStop: (stop: () => void) => void): Promise<void> {
  const { clients, bucket, log } = request;
  const runAs = dirs.owner.uid === process.getuid?.() ? undefined : dirs.owner.name;
  // --preserve-permissions: PostgreSQL's files stay 0600/0700 whoever extracts them.
  const tar = asUser(runAs, 'tar', ['--extract', '--file=-', `--directory=${dirs.dataDir}`, '--preserve-permissions', '--no-same-owner']);
  const opened = await openPlaintext({ s3: clients.s3, bucket, manifest, artifact, key: request.key, onProgress: progress(log, `base backup ${manifest.stamp}`) });
  const sink = toolSink(tar, `tar into ${dirs.dataDir}`, { drain: true });
  onStop(() => {
    opened.abort();
    sink.kill();
  });
  try {
    await streamInto(opened, sink);
    await opened.finished;
  } finally {
    log.endProgress();
  }
  const label = await readFile(join(dirs.dataDir, 'backup_label'), 'utf8').catch(() => undefined);
  if (label !== artifact.baseBackup!.backupLabel) {
    throw new ColdsealError(EXIT.INTEGRITY, `the backup_label in the restored base backup ${label === undefined ? 'is missing' : 'differs from the one its signed manifest records'}`, 'Do not use this base backup: restore to a later target from another one, and run coldseal verify');
  }
  log.info(`base backup ${manifest.stamp} laid into ${dirs.dataDir}: every part's SHA-256, the whole SHA-256, OpenPGP integrity, decompression and backup_label checked`);
}

/** recovery.signal, the recovery settings, and the configuration files a Debian backup lacks. Returns the files written for lack of them. */
async function writeRecoveryFiles(request: PitrRestoreRequest, plan: RecoveryPlan, dirs: DataDirPlan, server: RestoredServer, restoreCommand: string): Promise<string[]> {
  const dir = dirs.dataDir;
  const exists = (name: string) => access(join(dir, name)).then(() => true, () => false);
  const wrote: string[] = [];
  if (!(await exists('postgresql.conf'))) {
    const control = await runTool(asUser(server.runAs, join(server.binDir, 'pg_controldata'), [dir]), 'reading pg_control of the base backup').catch(() => '');
    await writeOwned(join(dir, 'postgresql.conf'), minimalPostgresqlConf(controlSettings(control)), dirs.owner);
    wrote.push('postgresql.conf');
  }
  if (!(await exists('pg_hba.conf'))) {
    await writeOwned(join(dir, 'pg_hba.conf'), MINIMAL_PG_HBA, dirs.owner);
    wrote.push('pg_hba.conf');
  }
  if (!(await exists('pg_ident.conf'))) {
    await writeOwned(join(dir, 'pg_ident.conf'), MINIMAL_PG_IDENT, dirs.owner);
    wrote.push('pg_ident.conf');
  }
  const comment = `coldseal restore ${new Date().toISOString()}: point-in-time recovery of ${request.group}/${request.source} from base backup ${plan.base.stamp} to ${describeTarget(request.target)}, timeline ${plan.requestedTimeline}`;
  await writeOwned(join(dir, 'postgresql.auto.conf'), recoveryConfBlock({ restoreCommand, target: request.target, timeline: plan.requestedTimeline, port: server.port, socketDir: dirs.spoolDir, keepArchiving: request.keepArchiving, comment }), dirs.owner, { append: true });
  await writeOwned(join(dir, 'recovery.signal'), '', dirs.owner);
  return wrote;
}
