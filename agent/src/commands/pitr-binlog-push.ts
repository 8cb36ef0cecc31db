import type { Command } from 'commander';
import type { MysqlSourceConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import { installSignalHandlers } from '../interrupt';
import type { Log } from '../log';
import { runBinlogPush } from '../pitr/mysql/binlog-push';
import { loadAgentConfig, withConfigOptions, withFlags, type ConfigOrigin, type GetLog, type RunAction } from './options';

export interface BinlogPushCommandOptions extends ConfigOrigin {
  readonly source?: string;
  readonly stateDir?: string;
}

/**
 * `coldseal pitr binlog-push --source <name>`: what the systemd timer of a MySQL/MariaDB PITR
 * source runs every pitr.intervalMinutes (pitr/mysql/binlog-push.ts). Exit 0 once every closed
 * binary log is in S3 with its signed record.
 */
export function defineBinlogPushCommand(pitrCommand: Command, run: RunAction, getLog: GetLog): void {
  withFlags(
    withConfigOptions(pitrCommand.command('binlog-push').description('MySQL/MariaDB: FLUSH BINARY LOGS, then archive every closed binary log not yet in S3 (signed, write-once); exit 0 only when all are')),
    { flags: '--source <name>', description: 'the mysql source (with "pitr": { "enabled": true })' },
    { flags: '--state-dir <dir>', description: 'where the last archived file, the lock and the spool are kept (default /var/lib/coldseal/pitr/<source>)' },
  ).action((options: BinlogPushCommandOptions) => run(async () => runBinlogPushCommand(options, getLog())));
}

/** The named source, which must be a MySQL/MariaDB one. */
export function mysqlSource(sources: readonly { name: string; type: string }[], name: string): MysqlSourceConfig {
  const source = sources.find((s) => s.name === name);
  if (!source) throw new ColdsealError(EXIT.USAGE, `unknown source "${name}"`, `Configured sources: ${sources.map((s) => s.name).join(', ')}`);
  if (source.type !== 'mysql') throw new ColdsealError(EXIT.USAGE, `source "${name}" is a ${source.type} source; binlog-push archives MySQL/MariaDB binary logs`, 'Name a source of type "mysql"');
  return source as MysqlSourceConfig;
}

export async function runBinlogPushCommand(options: BinlogPushCommandOptions, log: Log): Promise<number> {
  if (!options.source) throw new ColdsealError(EXIT.USAGE, '--source is required', 'Name the mysql source of the configuration whose binary logs to archive');
  const { config, clients } = await loadAgentConfig(options);
  const source = mysqlSource(config.sources, options.source);
  // SIGTERM (systemd stopping the timer's unit) stops the uploads, keeps what finished in the state, releases the lock.
  installSignalHandlers();
  const result = await runBinlogPush({ config, clients, log, source, stateDir: options.stateDir });
  return result.exitCode;
}
