import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';
import { runDrill, type DrillOutcome } from '../restore/drill';
import { scratchServers } from '../restore/scratch';
import { loadPrivateKey, loadTrustedKeys } from '../restore/select';
import { readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { loadAgentConfig, type ConfigOrigin } from './common';
import { collect, configuredRecipientKeyIds, wantsJson, withConfigOptions, withReplicaOptions } from './restore-common';

export interface DrillCommandOptions extends ConfigOrigin, ReplicaOptions {
  readonly receiptFile?: string;
  readonly key?: string;
  readonly passphraseFile?: string;
  readonly signingPublicKey?: string;
  readonly host?: string[];
  readonly source?: string[];
  readonly scratchPostgres?: string;
  readonly scratchMysql?: string;
}

/**
 * Where a scheduled drill (SSM runs `drill --config-parameter …`, nothing more) finds its key: the
 * drill host keeps a recipient private key locally, 0600, never in AWS. A dedicated drill recipient
 * (one more public key in the group's recipients) keeps the escrow key offline.
 */
export const DEFAULT_DRILL_KEY = '/etc/coldseal/drill.key.asc';

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
  validateReplicaOptions(options);
  const keyPath = await drillKeyPath(options.key);
  const { config, clients } = await loadAgentConfig(options);
  const read = await readLocation(options, config, clients);
  const trusted = await loadTrustedKeys(config, clients, options.signingPublicKey);
  const key = await loadPrivateKey(keyPath, options.passphraseFile);
  const scratch = await scratchServers(config, clients, { postgres: options.scratchPostgres, mysql: options.scratchMysql });
  try {
    return await runDrill({ config, clients, log, key, trusted, scratch: scratch.servers, expectedRecipientKeyIds: await configuredRecipientKeyIds(config, clients), hosts: options.host, sources: options.source, read, receiptFile: options.receiptFile });
  } finally {
    await scratch.cleanup();
  }
}

export function defineDrillCommand(program: Command, run: (action: () => Promise<number>) => Promise<void>, log: () => Log): void {
  withReplicaOptions(withConfigOptions(program.command('drill').description('restore drill: test-restore the latest backup of every source into scratch, check it, and write a signed receipt to S3')))
    .option('--key <file>', `recipient private key (or - for stdin); default: COLDSEAL_DRILL_KEY or ${DEFAULT_DRILL_KEY}`)
    .option('--passphrase-file <file>', 'file holding the private key\'s passphrase')
    .option('--signing-public-key <file>', 'trusted signing public key(s) of the group')
    .option('--host <names>', 'only backups of these hosts (comma-separated or repeated)', collect)
    .option('--source <names>', 'only these sources (comma-separated or repeated)', collect)
    .option('--scratch-postgres <url>', 'PostgreSQL server for scratch restores (default: the first postgres source\'s)')
    .option('--scratch-mysql <url>', 'MySQL/MariaDB server for scratch restores (default: the first mysql source\'s)')
    .option('--receipt-file <file>', 'write the signed receipt to this new local file instead of drills/ in the data bucket (with --replica when the data bucket is gone)')
    .option('--json', 'print the receipt as JSON')
    .action((options: DrillCommandOptions, command: Command) =>
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
