import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asPostgres, asPostgresAsync, chownToPostgres, postgresDir, restoredCluster, type BenchCluster } from './pitr-cluster';
import { commandLabel, type PitrContender } from './pitr-contender';

/**
 * pgBackRest (Debian package `pgbackrest`, 2.45 here) as its users run it for the comparison
 * the issue asks for: asynchronous archive-push and archive-get (`archive-async=y`, a spool
 * directory, `process-max` workers), zstd compression, AES-256-CBC encryption, a repository on
 * local disk. User guide, "Asynchronous Archiving" and "Encryption"; command reference of
 * archive-push, archive-get, backup and restore.
 */
export function pgBackRest(work: string, processMax: number, env: NodeJS.ProcessEnv): PitrContender {
  const root = postgresDir(join(work, 'pgbackrest'));
  const config = join(root, 'pgbackrest.conf');
  const stanza = 'bench';
  const run = (args: string[]) => asPostgres('pgbackrest', [`--config=${config}`, `--stanza=${stanza}`, ...args], env);
  const writeConfig = (cluster: BenchCluster) => {
    writeFileSync(
      config,
      [
        '[global]',
        `repo1-path=${postgresDir(join(root, 'repo'))}`,
        'repo1-cipher-type=aes-256-cbc',
        `repo1-cipher-pass=${randomBytes(32).toString('base64')}`,
        'repo1-retention-full=2',
        'compress-type=zst',
        'archive-async=y',
        `spool-path=${postgresDir(join(root, 'spool'))}`,
        `process-max=${processMax}`,
        `log-path=${postgresDir(join(root, 'log'))}`,
        `lock-path=${postgresDir(join(root, 'lock'))}`,
        'log-level-console=warn',
        'start-fast=y',
        '',
        `[${stanza}]`,
        `pg1-path=${cluster.data}`,
        `pg1-port=${cluster.port}`,
        `pg1-socket-path=${cluster.dir}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    chownToPostgres(config);
  };
  return {
    name: 'pgBackRest',
    // Only this bench's pgBackRest processes: every one names a path under its directory (--config, --pg1-path…).
    label: (argv) => ((argv[0] === 'pgbackrest' || argv[0].endsWith('/pgbackrest')) && argv.some((a) => a.includes(root)) ? commandLabel('pgbackrest', argv, 1) : undefined),
    async prepare(cluster) {
      writeConfig(cluster);
      run(['stanza-create']);
      return `pgbackrest --config=${config} --stanza=${stanza} archive-push %p`;
    },
    async baseBackup() {
      // backup waits until the backup's last WAL segment is in the repository (archive-check).
      run(['--type=full', 'backup']);
    },
    async restore(targetTime, workDir) {
      const dataDir = join(workDir, 'data');
      const started = Date.now();
      // restore writes restore_command (archive-get, async per the configuration) and the
      // recovery target into postgresql.auto.conf, and recovery.signal.
      await asPostgresAsync('pgbackrest', [`--config=${config}`, `--stanza=${stanza}`, `--pg1-path=${dataDir}`, '--type=time', `--target=${targetTime}`, '--target-action=promote', 'restore'], env);
      const commandSeconds = (Date.now() - started) / 1000;
      // The restored copy must not archive into the source's repository once promoted.
      const server = await restoredCluster('pgBackRest restore', workDir, env, ['-c archive_mode=off']);
      await server.startAsync();
      return { server, commandSeconds };
    },
  };
}
