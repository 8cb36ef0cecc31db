import type { Command } from 'commander';
import type { Tier } from '../../../format/layout';
import { runBackup, type BackupResult } from '../backup/run';
import { installSignalHandlers } from '../interrupt';
import type { Log } from '../log';
import { forcedTierFlag, loadAgentConfig, SOURCES_FLAG, validateRunScope, withConfigOptions, withFlags, type ConfigOrigin, type GetLog, type RunAction, type RunScopeOptions } from './options';

export interface BackupCommandOptions extends ConfigOrigin, RunScopeOptions {}

export function defineBackupCommand(program: Command, run: RunAction, log: GetLog): void {
  withFlags(
    withConfigOptions(program.command('backup').description('dump, compress, encrypt, sign and upload each configured source (one stream, no temporary files)'), {
      config: 'agent configuration file (JSON)',
      configParameter: 'SSM parameter holding the configuration (what the SSM document uses)',
    }),
    forcedTierFlag('auto'),
    SOURCES_FLAG,
  ).action((options: BackupCommandOptions) => run(async () => (await runBackupCommand(options, log())).exitCode));
}

export function validateBackupOptions(options: BackupCommandOptions): { tier?: Tier; sources?: string[] } {
  return validateRunScope(options);
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
