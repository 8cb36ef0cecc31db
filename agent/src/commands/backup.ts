import type { Command } from 'commander';
import { isTier, TIERS, type Tier } from '../../../format/layout';
import { runBackup, type BackupResult } from '../backup/run';
import { ColdsealError, EXIT } from '../errors';
import { installSignalHandlers } from '../interrupt';
import type { Log } from '../log';
import { loadAgentConfig, type ConfigOrigin } from './common';

export interface BackupCommandOptions extends ConfigOrigin {
  readonly tier?: string;
  readonly source?: string;
}

export function validateBackupOptions(options: BackupCommandOptions): { tier?: Tier; sources?: string[] } {
  if (options.tier !== undefined && options.tier !== 'auto' && !isTier(options.tier)) {
    throw new ColdsealError(EXIT.USAGE, `--tier "${options.tier}" is not a tier`, `Use one of: auto, ${TIERS.join(', ')}`);
  }
  const sources = options.source?.split(',').map((s) => s.trim()).filter(Boolean);
  return { tier: options.tier === 'auto' ? undefined : (options.tier as Tier | undefined), sources: sources?.length ? sources : undefined };
}

export async function runBackupCommand(options: BackupCommandOptions, log: Log): Promise<BackupResult> {
  const { tier, sources } = validateBackupOptions(options);
  const { config, clients } = await loadAgentConfig(options);
  installSignalHandlers();
  const result = await runBackup({ config, clients, log, tier, sources });
  for (const r of result.results) {
    if (r.ok) console.log(`ok      ${r.source}  s3://${config.bucket}/${r.manifestKey}`);
    else console.log(`FAILED  ${r.source}  ${r.error}`);
  }
  return result;
}

export function defineBackupCommand(program: Command, run: (action: () => Promise<number>) => Promise<void>, log: () => Log): void {
  program
    .command('backup')
    .description('dump, compress, encrypt, sign and upload each configured source (one stream, no temporary files)')
    .option('--config <file>', 'agent configuration file (JSON)')
    .option('--config-parameter <name>', 'SSM parameter holding the configuration (what the SSM document uses)')
    .option('--region <region>', 'AWS region of the configuration parameter (default: AWS_REGION)')
    .option('--tier <tier>', `force a tier: auto (calendar) or ${TIERS.join(', ')}`, 'auto')
    .option('--source <names>', 'only these sources, comma-separated (default: all)')
    .action((options: BackupCommandOptions) => run(async () => (await runBackupCommand(options, log())).exitCode));
}
