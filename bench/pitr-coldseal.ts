import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchWork } from './common';
import { chownToPostgres, postgresDir, runAsync, runningCluster } from './pitr-cluster';
import { commandLabel, type PitrContender } from './pitr-contender';

/**
 * coldseal as a user sets it up: `pitr setup --apply` installs its archive_command wrapper and
 * sets archive_command through ALTER SYSTEM; `backup` takes the base backup; `restore --to-time`
 * lays it out, replays and waits for the target. The configuration and keys live in a directory
 * the postgres user owns (archive_command and restore_command run as the server's user), the
 * bucket is moto's. What this build lacks is said, never measured with a stand-in.
 */
export const RESTORE_UNAVAILABLE = 'coldseal PITR restore not available in this build';
export const ARCHIVE_UNAVAILABLE = 'coldseal PITR archiving (pitr setup / pitr archive-push) not available in this build';

function helpText(bundle: string, args: string[]): string | undefined {
  const r = spawnSync(process.execPath, [bundle, ...args, '--help'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : undefined;
}

export interface ColdsealOptions {
  bundle: string;
  work: BenchWork;
  endpoint: string;
  bucket: string;
  env: NodeJS.ProcessEnv;
}

export function coldseal(options: ColdsealOptions): PitrContender {
  const { bundle, env } = options;
  const root = postgresDir(join(options.work.dir, 'coldseal'));
  const keyCopy = (from: string, name: string) => {
    const to = join(root, name);
    copyFileSync(from, to);
    chownToPostgres(to);
    return to;
  };
  const signingKey = keyCopy(options.work.signingPrivateFile, 'signing.key.asc');
  const recipientKey = keyCopy(options.work.recipientPrivateFile, 'recipient.key.asc');
  const recipients = keyCopy(options.work.recipientPublicFile, 'recipient.pub.asc');
  const config = join(root, 'config.json');
  const stateDir = join(root, 'state');
  const installDir = join(root, 'bin');
  const agent = (args: string[]) => execFileSync(process.execPath, [bundle, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();
  const runAgent = (what: string, args: string[]) => {
    try {
      return agent(args);
    } catch (error) {
      const e = error as { stderr?: Buffer; stdout?: Buffer; status?: number };
      throw new Error(`coldseal ${what} failed (exit ${e.status}): ${(e.stderr?.toString() ?? '').trim().slice(-3000) || e.stdout?.toString().trim().slice(-3000)}`, { cause: error });
    }
  };

  const pitrHelp = helpText(bundle, ['pitr', 'setup']) !== undefined && helpText(bundle, ['pitr', 'archive-push']) !== undefined;
  const restoreHelp = helpText(bundle, ['restore']) ?? '';
  const restorable = /--to-time/.test(restoreHelp) && /--data-dir/.test(restoreHelp);

  return {
    name: 'coldseal',
    unavailable: pitrHelp ? undefined : ARCHIVE_UNAVAILABLE,
    restoreUnavailable: restorable ? undefined : RESTORE_UNAVAILABLE,
    label(argv) {
      // The bundle the bench built, or a copy of it in the bench's directory (pitr setup installs
      // one for archive_command); never another session's agent on the same machine.
      const at = argv.findIndex((a) => a === bundle || (a.startsWith(`${options.work.dir}/`) && a.endsWith('.js')));
      if (at >= 0) return commandLabel('coldseal', argv, at + 1);
      if (argv.length > 1 && argv[1].startsWith(installDir)) return 'coldseal archive wrapper';
      return undefined;
    },
    async prepare(cluster) {
      writeFileSync(
        config,
        JSON.stringify({
          group: 'bench',
          host: 'bench',
          bucket: options.bucket,
          endpoint: options.endpoint,
          recipients: { file: recipients },
          signingKey: { file: signingKey },
          // The logical dump that `backup` takes beside the base backup: the empty postgres database only.
          sources: [{ name: 'pg', type: 'postgres', databases: ['postgres'], host: cluster.dir, port: cluster.port, user: 'postgres', inventory: false, pitr: { enabled: true } }],
        }),
        { mode: 0o600 },
      );
      chownToPostgres(config);
      runAgent('pitr setup', ['pitr', 'setup', '--config', config, '--source', 'pg', '--apply', '--install-dir', installDir, '--state-dir', stateDir]);
      // setup reloaded the server with its archive_command; the bench hands it over itself (as for
      // pgBackRest), so it takes it back until the bench says when.
      const command = cluster.psql("select setting from pg_settings where name = 'archive_command'");
      if (!command.includes(installDir)) throw new Error(`coldseal pitr setup did not set archive_command to its wrapper (archive_command is '${command}')`);
      return command;
    },
    async baseBackup() {
      runAgent('backup (base backup)', ['backup', '--config', config, '--source', 'pg', '--tier', 'daily']);
    },
    async restore(targetTime, workDir) {
      const data = join(workDir, 'data');
      const started = Date.now();
      await runAsync(process.execPath, [bundle, 'restore', '--config', config, '--source', 'pg', '--host', 'bench', '--key', recipientKey, '--to-time', targetTime, '--data-dir', data, '--yes'], env);
      const commandSeconds = (Date.now() - started) / 1000;
      // The server the restore started and left running: postmaster.pid's 4th to 6th lines are its
      // port, socket directory and listen address (PostgreSQL docs, "Database File Layout").
      const pid = readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n');
      return { server: runningCluster('coldseal restore', workDir, Number(pid[3]), pid[4] || pid[5] || '127.0.0.1', env), commandSeconds };
    },
  };
}
