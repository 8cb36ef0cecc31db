import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';
import { runDrill, type DrillOutcome } from '../restore/drill';
import { scratchServers } from '../restore/scratch';
import { walArchiveAccess, walSourcesOf } from '../restore/pitr/wal-access';
import { configuredRecipientKeyIds, loadPrivateKey, loadTrustedKeys } from '../restore/select';
import { readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { collect, loadAgentConfig, PASSPHRASE_FILE_FLAG, scratchUrls, SIGNING_PUBLIC_KEY_FLAG, wantsJson, withConfigOptions, withFlags, withReplicaOptions, withScratchOptions, type ConfigOrigin, type GetLog, type KeyOptions, type RunAction, type ScratchOptions } from './options';

export interface DrillCommandOptions extends ConfigOrigin, ReplicaOptions, KeyOptions, ScratchOptions {
  readonly receiptFile?: string;
  readonly host?: string[];
  readonly source?: string[];
  readonly pitr?: boolean;
  readonly pitrTimeout: string;
}

/**
 * Where a scheduled drill (SSM runs `drill --config-parameter …`, nothing more) finds its key: the
 * drill host keeps a recipient private key locally, 0600, never in AWS. A dedicated drill recipient
 * (one more public key in the group's recipients) keeps the escrow key offline.
 */
export const DEFAULT_DRILL_KEY = '/etc/coldseal/drill.key.asc';

export function defineDrillCommand(program: Command, run: RunAction, log: GetLog): void {
  const command = withFlags(
    withReplicaOptions(withConfigOptions(program.command('drill').description('restore drill: test-restore the latest backup of every source into scratch, check it, and write a signed receipt to S3'))),
    { flags: '--key <file>', description: `recipient private key (or - for stdin); default: COLDSEAL_DRILL_KEY or ${DEFAULT_DRILL_KEY}` },
    PASSPHRASE_FILE_FLAG,
    SIGNING_PUBLIC_KEY_FLAG,
    { flags: '--host <names>', description: 'only backups of these hosts (comma-separated or repeated)', parse: collect },
    { flags: '--source <names>', description: 'only these sources (comma-separated or repeated)', parse: collect },
  );
  withFlags(
    withScratchOptions(command),
    { flags: '--receipt-file <file>', description: 'write the signed receipt to this new local file instead of drills/ in the data bucket (with --replica when the data bucket is gone)' },
    { flags: '--json', description: 'print the receipt as JSON' },
    { flags: '--pitr', description: 'instead of the latest backups: restore each PITR source to a random point of its recovery window (PostgreSQL: a scratch cluster on this host; MySQL/MariaDB: a scratch database on the scratch server), check recovery reached it, remove it' },
    { flags: '--pitr-timeout <minutes>', description: 'with --pitr: give up on a recovery after this long', default: '60' },
  ).action((options: DrillCommandOptions, command: Command) =>
    run(async () => {
      const { receipt, receiptKey } = await runDrillCommand(options, log());
      if (wantsJson(command)) console.log(JSON.stringify({ receiptKey, receipt }, null, 2));
      else {
        for (const r of receipt.results) {
          console.log(`${r.ok ? 'ok    ' : 'FAILED'}  ${r.source}/${r.artifact}  ${(r.durationMs / 1000).toFixed(1)} s  ${r.manifestKey}`);
          for (const c of r.checks.filter((c) => !c.ok)) console.log(`        ${c.name}: ${c.detail}`);
        }
        console.log(`receipt: ${receiptKey}`);
      }
      return receipt.ok ? EXIT.OK : EXIT.INTEGRITY;
    }),
  );
}

export function validateDrillOptions(options: DrillCommandOptions): { pitrTimeoutMs: number } {
  validateReplicaOptions(options);
  const minutes = Number(options.pitrTimeout);
  if (!Number.isFinite(minutes) || minutes <= 0) throw new ColdsealError(EXIT.USAGE, `--pitr-timeout "${options.pitrTimeout}" must be a number of minutes above 0`);
  return { pitrTimeoutMs: minutes * 60_000 };
}

/** Binary logs fetched ahead in a MySQL/MariaDB drill: the first mysql PITR source's setting here. */
function mysqlPitrConcurrency(config: { sources: ReadonlyArray<{ type: string; pitr?: unknown }> }): number | undefined {
  for (const s of config.sources) if (s.type === 'mysql' && s.pitr && typeof s.pitr === 'object' && 'concurrency' in s.pitr) return (s.pitr as { concurrency: number }).concurrency;
  return undefined;
}

async function drillKeyPath(option: string | undefined): Promise<string> {
  if (option) return option;
  const path = process.env.COLDSEAL_DRILL_KEY || DEFAULT_DRILL_KEY;
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch {
    throw new ColdsealError(EXIT.KEYS, `a drill decrypts, and there is no recipient private key at ${path}`, `Put the drill recipient's private key there (chmod 600), or give --key FILE or COLDSEAL_DRILL_KEY`);
  }
  if (mode & 0o077) throw new ColdsealError(EXIT.KEYS, `the drill key ${path} is readable by other users (mode ${(mode & 0o777).toString(8)})`, `Run: chmod 600 ${path}`);
  return path;
}

export async function runDrillCommand(options: DrillCommandOptions, log: Log): Promise<DrillOutcome> {
  const { pitrTimeoutMs } = validateDrillOptions(options);
  const keyPath = await drillKeyPath(options.key);
  const { config, clients } = await loadAgentConfig(options);
  const read = await readLocation(options, config, clients);
  const trusted = await loadTrustedKeys(config, clients, options.signingPublicKey);
  const key = await loadPrivateKey(keyPath, options.passphraseFile);
  const scratch = await scratchServers(config, clients, scratchUrls(options));
  try {
    // restore_command reads the key from a file of its own (a copy in the spool directory).
    if (options.pitr && keyPath === '-') throw new ColdsealError(EXIT.USAGE, 'drill --pitr needs the key in a file (restore_command reads it again)', 'Give --key FILE or COLDSEAL_DRILL_KEY');
    const armoredKey = options.pitr ? await readFile(keyPath, 'utf8') : '';
    const pitr = options.pitr
      ? {
          timeoutMs: pitrTimeoutMs,
          sources: walSourcesOf,
          binlogConcurrency: mysqlPitrConcurrency(config),
          wal: (host: string, source: string) =>
            walArchiveAccess(
              {
                s3: read.s3,
                storage: { bucket: read.bucket, region: read.replica?.region ?? config.region, endpoint: config.endpoint },
                group: config.group,
                source,
                trusted,
                key,
                armoredKey,
                passphraseFile: options.passphraseFile,
                prefetch: 16,
                concurrency: 8,
              },
              host,
            ),
        }
      : undefined;
    return await runDrill({ config, clients, log, key, trusted, scratch: scratch.servers, expectedRecipientKeyIds: await configuredRecipientKeyIds(config, clients), hosts: options.host, sources: options.source, read, receiptFile: options.receiptFile, pitr });
  } finally {
    await scratch.cleanup();
  }
}
