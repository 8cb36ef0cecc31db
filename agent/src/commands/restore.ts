import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KeyError, readPublicKeys } from '../../../runtime/pgp';
import { EXIT, ColdsealError } from '../errors';
import { resolvePublicKeys } from '../secrets';
import { formatBytes } from '../../../runtime/byte-size';
import type { Log } from '../log';
import { RETRIEVAL_TIERS, type ArchiveClient, type RetrievalTier } from '../restore/archive';
import { runRestore, type RestoreResult, type RestoreTarget } from '../restore/restore';
import { loadPrivateKey, loadTrustedKeys } from '../restore/select';
import { parseMysqlUrl } from '../restore/targets/mysql';
import { parsePostgresUrl } from '../restore/targets/postgres';
import { readClients, readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { collect, GROUP_FLAG, loadAgentConfig, PASSPHRASE_FILE_FLAG, withConfigOptions, withFlags, withReplicaOptions, type ConfigOrigin, type GetLog, type KeyOptions, type RunAction, type SelectionOptions } from './options';
import { rerunCommand, terminalConfirm } from './terminal';
import { runPitrRestore, type PitrRestoreResult } from '../restore/pitr/run';
import { parseRecoveryTarget, wantsPitr, type RecoveryTarget, type TargetTimeline } from '../restore/pitr/target';
import { walArchiveAccess } from '../restore/pitr/wal-access';
import { pitrConnection } from '../pitr/source-connection';
import type { SafetyDump, SafetyDumpPolicy } from '../restore/safety-dump';
import { runBinlogRestore, type BinlogRestoreResult } from '../restore/binlog/run';
import { describeBinlogTarget, parseBinlogTarget } from '../restore/binlog/target';

export interface RestoreCommandOptions extends ConfigOrigin, ReplicaOptions, SelectionOptions, KeyOptions {
  readonly source?: string;
  readonly at: string;
  readonly artifact?: string;
  readonly target?: string;
  readonly directory?: string;
  readonly output?: string;
  readonly list?: boolean;
  readonly table?: string[];
  readonly schema?: string[];
  /** false with --no-owner */
  readonly owner?: boolean;
  readonly yes?: boolean;
  readonly safetyDir?: string;
  /** false with --no-encrypt-safety-dump */
  readonly encryptSafetyDump?: boolean;
  readonly retrievalTier?: string;
  readonly retrievalDays: string;
  readonly wait?: boolean;
  readonly waitTimeout: string;
  readonly pollInterval: string;
  // Point-in-time recovery of a PostgreSQL source (restore/pitr/).
  readonly toTime?: string;
  readonly toLsn?: string;
  readonly toLatest?: boolean;
  // Point-in-time recovery of a MySQL/MariaDB source (restore/binlog/).
  readonly toPosition?: string;
  readonly toGtid?: string;
  readonly targetTimeline?: string;
  readonly dataDir?: string;
  readonly prepareOnly?: boolean;
  readonly port?: string;
  readonly keepArchiving?: boolean;
}

export function defineRestoreCommand(program: Command, run: RunAction, log: GetLog): void {
  withFlags(
    withReplicaOptions(withConfigOptions(program.command('restore').description('verify a backup (signature, SHA-256, recipients, OpenPGP integrity) and only then restore it into a database, a directory or a file'))),
    { flags: '--source <name>', description: 'the source to restore' },
    { flags: '--host <name>', description: 'the host that backed it up (needed when several hosts have the source)' },
    GROUP_FLAG,
    { flags: '--at <when>', description: 'latest, a stamp (20261122T005849Z), a time (the last backup at or before it) or an S3 key', default: 'latest' },
    { flags: '--artifact <name>', description: 'which database of the backup (when it holds several)' },
    { flags: '--key <file>', description: 'recipient private key file, or - for stdin (passphrase: COLDSEAL_KEY_PASSPHRASE or --passphrase-file)' },
    PASSPHRASE_FILE_FLAG,
    { flags: '--signing-public-key <file>', description: 'trusted signing public key(s) of the group (default: the group\'s SSM parameter, or the configured signing key)' },
    { flags: '--target <url>', description: 'postgres://user@host:port/db or mysql://user@host:port/db (no password: use PGPASSWORD/~/.pgpass or MYSQL_PWD/~/.my.cnf)' },
    { flags: '--directory <dir>', description: 'restore a files backup into this directory' },
    { flags: '--output <file>', description: 'write the decrypted, decompressed dump to this file instead' },
    { flags: '--list', description: 'show what a PostgreSQL dump holds (pg_restore --list)' },
    { flags: '--table <name>', description: 'PostgreSQL: only this table ([schema.]table; repeatable)', parse: collect },
    { flags: '--schema <name>', description: 'PostgreSQL: only this schema (repeatable)', parse: collect },
    { flags: '--no-owner', description: 'PostgreSQL: do not restore ownership and grants (roles may not exist here)' },
    { flags: '--yes', description: 'do not ask before replacing an existing target (the safety dump is still taken)' },
    { flags: '--safety-dir <dir>', description: 'where safety dumps of an existing target go, 0600 files in a 0700 directory, never deleted by coldseal (default ~/.coldseal/safety-dumps)' },
    { flags: '--no-encrypt-safety-dump', description: 'keep the safety dump in plaintext (default: encrypted to the recipients, like the backups)' },
    { flags: '--retrieval-tier <tier>', description: `archived backups: start a retrieval with this tier (${RETRIEVAL_TIERS.join(', ')})` },
    { flags: '--retrieval-days <days>', description: 'days the retrieved copy stays readable', default: '3' },
    { flags: '--wait', description: 'wait for the retrieval of an archived backup, polling' },
    { flags: '--wait-timeout <minutes>', description: 'give up waiting after this long (the retrieval goes on)', default: '720' },
    { flags: '--poll-interval <seconds>', description: 'seconds between retrieval status checks', default: '60' },
    { flags: '--to-time <time>', description: "point-in-time recovery to this moment, with its zone ('2026-12-06 10:15:00+01'): PostgreSQL into --data-dir, MySQL/MariaDB into --target mysql://…/db" },
    { flags: '--to-lsn <lsn>', description: 'PostgreSQL point-in-time recovery to this WAL position (16/B374D848)' },
    { flags: '--to-position <file:offset>', description: 'MySQL/MariaDB point-in-time recovery to this binary log position (mariadb-bin.000042:1234: every event before it)' },
    { flags: '--to-gtid <gtid>', description: 'MySQL/MariaDB point-in-time recovery up to and including this GTID (0-1-4711)' },
    { flags: '--to-latest', description: 'point-in-time recovery to the end of the archive (WAL or binary logs)' },
    { flags: '--target-timeline <id>', description: 'the timeline to recover along: latest (default) or its ID' },
    { flags: '--data-dir <dir>', description: 'point-in-time recovery: the new data directory (absent or empty; never the running cluster\'s)' },
    { flags: '--prepare-only', description: 'point-in-time recovery: lay the base backup and the recovery settings, print the pg_ctl line, do not start' },
    { flags: '--port <port>', description: 'point-in-time recovery: the restored server\'s port on 127.0.0.1 (default: a free one)' },
    { flags: '--keep-archiving', description: 'point-in-time recovery: keep the source\'s archive_command, so the promoted copy archives its new timeline into the source\'s archive (for a copy that becomes the primary)' },
  ).action((options: RestoreCommandOptions) => run(() => (wantsBinlogPitr(options) ? printBinlogRestore(options, log()) : wantsPitr(options) ? printPitrRestore(options, log()) : printRestore(options, log()))));
}

export function validateRestoreOptions(options: RestoreCommandOptions): { target: RestoreTarget; tier?: RetrievalTier; days: number; waitTimeoutMs: number; pollIntervalMs: number } {
  validateReplicaOptions(options);
  const targets = [options.target, options.directory, options.output, options.list ? 'list' : undefined].filter((t) => t !== undefined);
  if (targets.length !== 1) throw new ColdsealError(EXIT.USAGE, targets.length ? 'give only one of --target, --directory, --output and --list' : 'where to? no target given', 'Use --target postgres://…/db or mysql://…/db, --directory DIR (files), --output FILE (the decrypted dump), or --list');
  if (!options.key) throw new ColdsealError(EXIT.USAGE, 'the recipient private key is required to decrypt', 'Add --key FILE (or --key - to read it from stdin)');
  let target: RestoreTarget;
  if (options.target) {
    if (/^postgres(ql)?:/.test(options.target)) target = { kind: 'postgres', target: parsePostgresUrl(options.target), tables: options.table, schemas: options.schema, noOwner: options.owner === false };
    else if (/^(mysql|mariadb):/.test(options.target)) target = { kind: 'mysql', target: parseMysqlUrl(options.target) };
    else throw new ColdsealError(EXIT.USAGE, `--target "${options.target.replace(/\/\/[^@/]*@/, '//…@')}" is not a postgres:// or mysql:// URL`, 'For files use --directory DIR');
  } else if (options.directory) target = { kind: 'directory', path: options.directory };
  else if (options.output) target = { kind: 'file', path: options.output };
  else target = { kind: 'list' };
  if ((options.table?.length || options.schema?.length) && target.kind !== 'postgres') throw new ColdsealError(EXIT.USAGE, '--table and --schema select part of a PostgreSQL restore', 'Use them with --target postgres://…');
  if (options.retrievalTier !== undefined && !RETRIEVAL_TIERS.includes(options.retrievalTier as RetrievalTier)) {
    throw new ColdsealError(EXIT.USAGE, `--retrieval-tier "${options.retrievalTier}" is not a retrieval tier`, `Use one of: ${RETRIEVAL_TIERS.join(', ')}`);
  }
  const number = (value: string, flag: string, min: number) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new ColdsealError(EXIT.USAGE, `${flag} "${value}" must be a number ≥ ${min}`);
    return n;
  };
  return {
    target,
    tier: options.retrievalTier as RetrievalTier | undefined,
    days: number(options.retrievalDays, '--retrieval-days', 1),
    waitTimeoutMs: number(options.waitTimeout, '--wait-timeout', 0) * 60_000,
    pollIntervalMs: number(options.pollInterval, '--poll-interval', 1) * 1000,
  };
}

export async function runRestoreCommand(options: RestoreCommandOptions, log: Log, deps: { archiveClient?: ArchiveClient; confirm?: (q: string) => Promise<boolean> } = {}): Promise<RestoreResult> {
  const valid = validateRestoreOptions(options);
  const { config, clients: configured } = await loadAgentConfig(options);
  const location = await readLocation(options, config, configured);
  const clients = readClients(configured, location);
  const trusted = await loadTrustedKeys(config, clients, options.signingPublicKey);
  const key = await loadPrivateKey(options.key!, options.passphraseFile);
  if (location.replica) log.info(`reading from the offsite replica s3://${location.bucket} (${location.replica.region})`, { replica: location.replica });
  return runRestore({
    clients,
    bucket: location.bucket,
    log,
    selector: { group: options.group ?? config.group, host: options.host, source: options.source, at: options.at },
    artifact: options.artifact,
    key,
    trusted,
    target: valid.target,
    yes: Boolean(options.yes),
    confirm: deps.confirm ?? terminalConfirm(),
    safety: await safetyPolicy(options, config, clients),
    archive: { tier: valid.tier, days: valid.days, wait: Boolean(options.wait), waitTimeoutMs: valid.waitTimeoutMs, pollIntervalMs: valid.pollIntervalMs, rerun: rerunCommand() },
    archiveClient: deps.archiveClient,
  });
}

/** Where safety dumps go and whom they are encrypted to. */
async function safetyPolicy(options: RestoreCommandOptions, config: { recipients: Parameters<typeof resolvePublicKeys>[1] }, clients: { ssm: Parameters<typeof resolvePublicKeys>[0] }): Promise<SafetyDumpPolicy> {
  return {
    dir: options.safetyDir ?? join(homedir(), '.coldseal', 'safety-dumps'),
    // The recipients that backups are encrypted to: the key that restores them decrypts the safety dump too.
    recipients: options.encryptSafetyDump === false ? undefined : await readPublicKeys(await resolvePublicKeys(clients.ssm, config.recipients, 'recipients'), 'recipients').catch((error: unknown) => {
      if (error instanceof KeyError) throw new ColdsealError(EXIT.KEYS, `the safety dump would be encrypted to the recipients, but ${error.message}`, 'Fix the recipients, or pass --no-encrypt-safety-dump to keep it in plaintext');
      throw error;
    }),
  };
}

function printSafetyDump(dump: SafetyDump | undefined): void {
  if (!dump) return;
  console.log(`safety dump of the previous content: ${dump.path}`);
  console.log(`  ${formatBytes(dump.bytes)}, mode 0600, ${dump.encrypted ? `encrypted to the recipients (read it with: gpg --decrypt ${dump.path} > ${dump.path.replace(/\.pgp$/, '')})` : 'PLAINTEXT'}; coldseal never deletes it: remove it once you no longer need it`);
}

async function printRestore(options: RestoreCommandOptions, log: Log): Promise<number> {
  const result = await runRestoreCommand(options, log);
  if (result.listing !== undefined) {
    process.stdout.write(result.listing);
    return EXIT.OK;
  }
  printSafetyDump(result.safetyDump);
  console.log(`restored ${result.manifest.host}/${result.manifest.source}/${result.artifact.name} from backup ${result.manifest.stamp} (${result.manifest.tier}) into ${result.destination}: ${formatBytes(result.plaintextBytes)}, every check passed`);
  return EXIT.OK;
}

// ── Point-in-time recovery (PostgreSQL) ─────────────────────────────────────────────────────────

export interface PitrOptions {
  readonly source: string;
  readonly target: RecoveryTarget;
  readonly timeline: TargetTimeline;
  readonly dataDir: string;
  readonly port?: number;
  readonly retrieval: ReturnType<typeof validateRestoreOptions>['tier'];
  readonly days: number;
  readonly waitTimeoutMs: number;
  readonly pollIntervalMs: number;
}

/** A PITR restore: one target, a source, a --data-dir, none of the dump restore's destinations. */
export function validatePitrOptions(options: RestoreCommandOptions): PitrOptions {
  validateReplicaOptions(options);
  const { target, timeline } = parseRecoveryTarget(options);
  const other = [options.target && '--target', options.directory && '--directory', options.output && '--output', options.list && '--list', options.table?.length && '--table', options.schema?.length && '--schema', options.artifact && '--artifact'].filter(Boolean);
  if (other.length) throw new ColdsealError(EXIT.USAGE, `${other.join(', ')} restore a dump; a point-in-time restore lays a whole cluster into --data-dir`, 'Leave them out, or leave out the --to-… options to restore a dump');
  if (options.at !== 'latest') throw new ColdsealError(EXIT.USAGE, '--at picks a dump; a point-in-time restore picks its base backup from the target', 'Leave --at out');
  if (!options.source) throw new ColdsealError(EXIT.USAGE, 'which source? --source is required', 'Add --source NAME (a PostgreSQL source with pitr enabled)');
  if (!options.dataDir) throw new ColdsealError(EXIT.USAGE, 'a point-in-time restore needs --data-dir (PostgreSQL: the new data directory, absent or empty) or --target mysql://…/db (MySQL/MariaDB)', 'Add --data-dir DIR, or --target mysql://user@host/new_name');
  if (!options.key) throw new ColdsealError(EXIT.USAGE, 'the recipient private key is required to decrypt', 'Add --key FILE (or --key - to read it from stdin)');
  let port: number | undefined;
  if (options.port !== undefined) {
    port = Number(options.port);
    if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new ColdsealError(EXIT.USAGE, `--port "${options.port}" is not a TCP port from 1024 to 65535`, 'Leave it out to take a free one');
  }
  const rest = validateRestoreOptions({ ...options, target: undefined, directory: undefined, output: '(pitr)', list: false });
  return { source: options.source, target, timeline, dataDir: options.dataDir, port, retrieval: rest.tier, days: rest.days, waitTimeoutMs: rest.waitTimeoutMs, pollIntervalMs: rest.pollIntervalMs };
}

export async function runPitrRestoreCommand(options: RestoreCommandOptions, log: Log): Promise<PitrRestoreResult> {
  const valid = validatePitrOptions(options);
  const { config, clients: configured } = await loadAgentConfig(options);
  const location = await readLocation(options, config, configured);
  const clients = readClients(configured, location);
  const trusted = await loadTrustedKeys(config, clients, options.signingPublicKey);
  // restore_command decrypts too: it gets the key exactly as given (still passphrase-protected if it was).
  const armoredKey = await readKeyText(options.key!);
  const key = await loadPrivateKey('-', options.passphraseFile, Readable.from([armoredKey]));
  const sourceConfig = config.sources.find((s) => s.name === valid.source);
  if (sourceConfig && sourceConfig.type !== 'postgres') throw new ColdsealError(EXIT.USAGE, `source "${valid.source}" is a ${sourceConfig.type} source: its point-in-time restore goes into a database, not a data directory`, sourceConfig.type === 'mysql' ? 'Give --target mysql://user@host/new_name instead of --data-dir' : 'Leave out the --to-… options to restore its backups');
  const pg = sourceConfig?.type === 'postgres' ? sourceConfig : undefined;
  if (location.replica) log.info(`reading from the offsite replica s3://${location.bucket} (${location.replica.region})`, { replica: location.replica });
  const group = options.group ?? config.group;
  return runPitrRestore({
    clients,
    bucket: location.bucket,
    log,
    group,
    host: options.host,
    source: valid.source,
    key,
    trusted,
    target: valid.target,
    timeline: valid.timeline,
    dataDir: valid.dataDir,
    prepareOnly: Boolean(options.prepareOnly),
    port: valid.port,
    keepArchiving: Boolean(options.keepArchiving),
    sourceConfig: pg,
    // Only to ask the running server where its data directory is: a secret that cannot be read leaves that check out.
    sourceConnection: pg ? await pitrConnection(pg, clients, 'coldseal-restore').catch(() => undefined) : undefined,
    archive: { tier: valid.retrieval, days: valid.days, wait: Boolean(options.wait), waitTimeoutMs: valid.waitTimeoutMs, pollIntervalMs: valid.pollIntervalMs, rerun: rerunCommand() },
    wal: (host) =>
      walArchiveAccess(
        {
          s3: clients.s3,
          storage: { bucket: location.bucket, region: location.replica?.region ?? config.region, endpoint: config.endpoint },
          group,
          source: valid.source,
          trusted,
          key,
          armoredKey,
          passphraseFile: options.passphraseFile,
          prefetch: pg?.pitr?.prefetch ?? 16,
          concurrency: pg?.pitr?.concurrency ?? 8,
        },
        host,
      ),
  });
}

async function readKeyText(keyArg: string): Promise<string> {
  try {
    if (keyArg !== '-') return await readFile(keyArg, 'utf8');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    throw new ColdsealError(EXIT.KEYS, `cannot read ${keyArg === '-' ? 'the private key on stdin' : `private key ${keyArg}`}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'Give the recipient private key file with --key FILE, or --key - to read it from stdin');
  }
}

async function printPitrRestore(options: RestoreCommandOptions, log: Log): Promise<number> {
  const result = await runPitrRestoreCommand(options, log);
  const base = result.plan.base;
  console.log(`base backup ${base.stamp} of ${result.host}/${options.source} (ended ${base.baseBackup.stoppedAt}) laid into ${result.dataDir}, every check passed`);
  if (result.wroteConfig.length) console.log(`wrote a minimal ${result.wroteConfig.join(', ')} (the backup had none: its server keeps them outside the data directory, as Debian does): local connections only`);
  if (!result.reached) {
    console.log('recovery prepared, not started. Start it with:');
    console.log(`  ${result.startCommand}`);
    console.log(`it replays WAL through coldseal pitr wal-fetch to the target, then promotes; follow it in ${result.server.logFile}`);
    console.log(`${result.spoolDir} holds a copy of the private key for restore_command (0600, ${result.server.runAs ?? 'this user'}): once the server is promoted, remove it: rm ${result.spoolDir}/recipient.key.*`);
    console.log(`connect: ${result.connection}`);
    console.log(`stop:    ${result.stopCommand}`);
    return EXIT.OK;
  }
  const reached = result.reached;
  console.log(`recovered to ${describeReached(reached)} in ${reached.seconds.toFixed(1)} s (${reached.walFilesRestored} WAL files from the archive)`);
  if (reached.stoppedBy) console.log(`  ${reached.stoppedBy}`);
  console.log(`PostgreSQL is running on port ${result.port} (127.0.0.1 and the socket in ${result.spoolDir}), promoted, data directory ${result.dataDir}`);
  console.log(`connect: ${result.connection}`);
  console.log(`stop:    ${result.stopCommand}`);
  console.log(`remove:  rm -rf ${result.dataDir} ${result.spoolDir}   (once stopped and no longer needed)`);
  return EXIT.OK;
}

function describeReached(reached: NonNullable<PitrRestoreResult['reached']>): string {
  return `LSN ${reached.lsn}${reached.redoDoneAt ? ` (replay ended at ${reached.redoDoneAt})` : ''}, timeline ${reached.timeline}${reached.lastTransactionTime ? `, last transaction committed at ${reached.lastTransactionTime}` : ''}`;
}

// ── Point-in-time recovery (MySQL/MariaDB) ──────────────────────────────────────────────────────

/** A MySQL/MariaDB point-in-time restore: a binlog target, or a PITR target with a mysql:// target. */
export function wantsBinlogPitr(options: RestoreCommandOptions): boolean {
  if (options.toPosition !== undefined || options.toGtid !== undefined) return true;
  return (options.toTime !== undefined || Boolean(options.toLatest)) && options.target !== undefined && /^(mysql|mariadb):/.test(options.target);
}

export async function runBinlogRestoreCommand(options: RestoreCommandOptions, log: Log, deps: { confirm?: (q: string) => Promise<boolean> } = {}): Promise<BinlogRestoreResult> {
  validateReplicaOptions(options);
  const other = [options.directory && '--directory', options.output && '--output', options.list && '--list', options.table?.length && '--table', options.schema?.length && '--schema', options.toLsn && '--to-lsn', options.targetTimeline && '--target-timeline', options.dataDir && '--data-dir', options.prepareOnly && '--prepare-only', options.port && '--port', options.keepArchiving && '--keep-archiving'].filter(Boolean);
  if (other.length) throw new ColdsealError(EXIT.USAGE, `${other.join(', ')} ${other.length === 1 ? 'does' : 'do'} not go with a MySQL/MariaDB point-in-time restore`, 'It restores a dump and replays the binary logs into --target mysql://…/db: leave them out');
  if (options.at !== 'latest') throw new ColdsealError(EXIT.USAGE, '--at picks a dump; a point-in-time restore picks its dump from the target', 'Leave --at out');
  if (!options.source) throw new ColdsealError(EXIT.USAGE, 'which source? --source is required', 'Add --source NAME (a MySQL/MariaDB source with pitr enabled)');
  if (!options.target || !/^(mysql|mariadb):/.test(options.target)) throw new ColdsealError(EXIT.USAGE, 'a MySQL/MariaDB point-in-time restore needs --target mysql://user@host:port/database', 'Add --target; a new database name keeps the current one untouched');
  if (!options.key) throw new ColdsealError(EXIT.USAGE, 'the recipient private key is required to decrypt', 'Add --key FILE (or --key - to read it from stdin)');
  const target = parseBinlogTarget(options, options.toGtid !== undefined && /^[0-9a-f]{8}-/i.test(options.toGtid) ? 'mysql' : 'mariadb');
  const valid = validateRestoreOptions({ ...options, directory: undefined, output: undefined, list: false });
  if (valid.target.kind !== 'mysql') throw new ColdsealError(EXIT.USAGE, '--target must be a mysql:// URL');
  const { config, clients: configured } = await loadAgentConfig(options);
  const location = await readLocation(options, config, configured);
  const clients = readClients(configured, location);
  const trusted = await loadTrustedKeys(config, clients, options.signingPublicKey);
  const key = await loadPrivateKey(options.key, options.passphraseFile);
  const sourceConfig = config.sources.find((s) => s.name === options.source);
  if (sourceConfig && sourceConfig.type !== 'mysql') throw new ColdsealError(EXIT.USAGE, `source "${options.source}" is a ${sourceConfig.type} source: --to-position, --to-gtid and --target mysql:// are for MySQL/MariaDB`, sourceConfig.type === 'postgres' ? 'For PostgreSQL use --to-time/--to-lsn/--to-latest with --data-dir' : 'Leave out the --to-… options');
  if (location.replica) log.info(`reading from the offsite replica s3://${location.bucket} (${location.replica.region})`, { replica: location.replica });
  log.info(`restoring to ${describeBinlogTarget(target)}`);
  return runBinlogRestore({
    clients,
    bucket: location.bucket,
    log,
    group: options.group ?? config.group,
    host: options.host,
    source: options.source,
    key,
    trusted,
    target,
    database: options.artifact,
    destination: valid.target.target,
    yes: Boolean(options.yes),
    confirm: deps.confirm ?? terminalConfirm(),
    safety: await safetyPolicy(options, config, clients),
    archive: { tier: valid.tier, days: valid.days, wait: Boolean(options.wait), waitTimeoutMs: valid.waitTimeoutMs, pollIntervalMs: valid.pollIntervalMs, rerun: rerunCommand() },
    concurrency: sourceConfig?.type === 'mysql' ? (sourceConfig.pitr?.concurrency ?? 4) : 4,
  });
}

async function printBinlogRestore(options: RestoreCommandOptions, log: Log): Promise<number> {
  const result = await runBinlogRestoreCommand(options, log);
  const { plan, reached } = result;
  printSafetyDump(result.restore.safetyDump);
  console.log(`restored ${result.host}/${options.source}/${plan.database} to ${describeBinlogTarget(plan.target)} into ${result.restore.destination}, every check passed`);
  console.log(`  from dump ${plan.dump.stamp} (position ${plan.dump.position.file}:${plan.dump.position.position}${plan.dump.position.gtid ? `, GTID ${plan.dump.position.gtid}` : ''}), then ${reached.files} binary log file(s), ${reached.transactions} transaction(s) replayed in ${reached.seconds.toFixed(1)} s`);
  console.log(`  reached: ${reached.position ? `position ${reached.position}` : `position ${plan.dump.position.file}:${plan.dump.position.position} (nothing replayed)`}${reached.gtid ? `, GTID ${reached.gtid}` : ''}${reached.lastCommitAt ? `, last commit at ${reached.lastCommitAt}` : ''}`);
  return EXIT.OK;
}
