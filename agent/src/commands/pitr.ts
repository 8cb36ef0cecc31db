import type { Command } from 'commander';
import type { MysqlSourceConfig, PostgresSourceConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';
import { runArchivePush } from '../pitr/archive-push';
import { runPitrSetup } from '../pitr/setup';
import { runMysqlPitrSetup } from '../pitr/mysql/setup';
import { systemScheduler } from '../pitr/mysql/setup-timer';
import { defineBinlogPushCommand } from './pitr-binlog-push';
import { loadAgentConfig, withConfigOptions, withFlags, type ConfigOrigin, type GetLog, type RunAction } from './options';

/**
 * `coldseal pitr …`: the commands PostgreSQL's continuous archiving runs (archive-push as
 * archive_command, wal-fetch as restore_command) and the one that sets it up.
 */
export function definePitrCommand(program: Command, run: RunAction, log: GetLog): Command {
  const pitr = program.command('pitr').description('PostgreSQL point-in-time recovery: continuous WAL archive (archive_command, restore_command) and its setup');

  withFlags(
    withConfigOptions(pitr.command('archive-push').description('archive_command: archive one WAL file (and the oldest other .ready files ahead of PostgreSQL\'s asking); exit 0 only once it is in S3 with its signed record')),
    { flags: '--source <name>', description: 'the PostgreSQL source (with "pitr") whose cluster runs this' },
    { flags: '--state-dir <dir>', description: 'where markers of files pushed ahead are kept (default /var/lib/coldseal/pitr/<source>)' },
    { flags: '--pgdata <dir>', description: 'the cluster\'s data directory (default: the working directory, where PostgreSQL runs archive_command)' },
  )
    .argument('<path>', 'the WAL file\'s path (%p)')
    .argument('<file>', 'the WAL file\'s name (%f)')
    .action((path: string, file: string, options: ArchivePushCommandOptions) => run(async () => runArchivePushCommand({ ...options, path, file }, log())));

  withFlags(
    withConfigOptions(
      pitr
        .command('setup')
        .description(
          'PostgreSQL: check, and with --apply set, wal_level, archive_mode, archive_command and archive_timeout (ALTER SYSTEM), and install the archive_command wrapper. MySQL/MariaDB: check log_bin, binlog_format, server_id, expiry, GTIDs and privileges, print the configuration lines a restart needs, and with --apply set what can change at run time and install the binlog-push timer',
        ),
    ),
    { flags: '--source <name>', description: 'the PostgreSQL or MySQL/MariaDB source (with "pitr": { "enabled": true })' },
    { flags: '--apply', description: 'make the changes (without it: only say what would be done)' },
    { flags: '--replace', description: 'replace an archive_command (or wrapper file) that is not coldseal\'s' },
    { flags: '--install-dir <dir>', description: 'where the archive_command wrapper script goes', default: '/usr/local/lib/coldseal' },
    { flags: '--state-dir <dir>', description: 'state directory the wrapper and archive-push (or binlog-push) share (default /var/lib/coldseal/pitr/<source>)' },
    { flags: '--unit-dir <dir>', description: 'MySQL/MariaDB: where the systemd units of the binlog-push timer go', default: '/etc/systemd/system' },
  ).action((options: PitrSetupCommandOptions) => run(async () => runPitrSetupCommand(options, log())));

  defineBinlogPushCommand(pitr, run, log);
  return pitr;
}

export interface ArchivePushCommandOptions extends ConfigOrigin {
  readonly source?: string;
  readonly stateDir?: string;
  readonly pgdata?: string;
  readonly path: string;
  readonly file: string;
}

export interface PitrSetupCommandOptions extends ConfigOrigin {
  readonly source?: string;
  readonly apply?: boolean;
  readonly replace?: boolean;
  readonly installDir: string;
  readonly stateDir?: string;
  readonly unitDir?: string;
}

function requireSource(name: string | undefined): string {
  if (!name) throw new ColdsealError(EXIT.USAGE, '--source is required', 'Name the PostgreSQL source of the configuration whose WAL this is');
  return name;
}

/** The named source, which must be a PostgreSQL one. */
export function postgresSource(sources: readonly { name: string; type: string }[], name: string): PostgresSourceConfig {
  const source = sources.find((s) => s.name === name);
  if (!source) throw new ColdsealError(EXIT.USAGE, `unknown source "${name}"`, `Configured sources: ${sources.map((s) => s.name).join(', ')}`);
  if (source.type !== 'postgres') throw new ColdsealError(EXIT.USAGE, `source "${name}" is a ${source.type} source; point-in-time recovery is for PostgreSQL sources`, 'Name a source of type "postgres"');
  return source as PostgresSourceConfig;
}

export async function runArchivePushCommand(options: ArchivePushCommandOptions, log: Log): Promise<number> {
  const name = requireSource(options.source);
  const { config, clients } = await loadAgentConfig(options);
  const source = postgresSource(config.sources, name);
  const result = await runArchivePush({ config, clients, log, source, walPath: options.path, walFile: options.file, stateDir: options.stateDir, dataDir: options.pgdata });
  return result.exitCode;
}

export async function runPitrSetupCommand(options: PitrSetupCommandOptions, log: Log): Promise<number> {
  const name = requireSource(options.source);
  const { config, clients } = await loadAgentConfig(options);
  const configured = config.sources.find((s) => s.name === name);
  if (configured?.type === 'mysql') {
    const result = await runMysqlPitrSetup({
      config,
      clients,
      log,
      source: configured as MysqlSourceConfig,
      apply: Boolean(options.apply),
      stateDir: options.stateDir,
      configOrigin: { config: options.config, configParameter: options.configParameter, region: options.region },
      print: (line) => console.log(line),
      scheduler: { ...systemScheduler, unitDir: options.unitDir ?? systemScheduler.unitDir },
    });
    return result.exitCode;
  }
  const source = postgresSource(config.sources, name);
  const result = await runPitrSetup({
    config,
    clients,
    log,
    source,
    apply: Boolean(options.apply),
    replace: Boolean(options.replace),
    installDir: options.installDir,
    stateDir: options.stateDir,
    configOrigin: { config: options.config, configParameter: options.configParameter, region: options.region },
    print: (line) => console.log(line),
  });
  return result.exitCode;
}
