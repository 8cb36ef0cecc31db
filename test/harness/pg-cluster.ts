import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local-system/services';

/**
 * A throwaway PostgreSQL cluster of our own (initdb + pg_ctl as the postgres user): for tests that
 * need the whole cluster to themselves, such as "back up all databases", which the shared server
 * cannot give while other test files create and drop databases in parallel, or PITR, which changes
 * server settings and restarts the server.
 */
export interface PgCluster {
  readonly port: number;
  readonly socketDir: string;
  readonly dataDir: string;
  /** The server's binaries (initdb, pg_ctl, …). */
  readonly bin: string;
  /** The server's log file. */
  readonly logFile: string;
  psql(database: string, sql: string): string;
  /** Restarts the server (fast shutdown), with the same options and environment, plus `env` when given (e.g. credentials made after the start). */
  restart(env?: Readonly<Record<string, string>>): void;
  stop(): void;
}

export interface PgClusterOptions {
  /** Extra server settings, passed as -c name=value on the server's command line. */
  readonly settings?: Readonly<Record<string, string>>;
  /** Extra environment of the server process (and so of archive_command / restore_command, which inherit it). */
  readonly env?: Readonly<Record<string, string>>;
  /** initdb --wal-segsize, in MB (a power of two, 1..1024). */
  readonly walSegmentSizeMiB?: number;
  /** Debian's layout: postgresql.conf, pg_hba.conf and pg_ident.conf outside the data directory (in <dir>/etc). */
  readonly configOutsideDataDir?: boolean;
}

export async function startPgCluster(options: PgClusterOptions = {}): Promise<PgCluster> {
  const version = readdirSync('/usr/lib/postgresql').sort().pop();
  if (!version) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const bin = `/usr/lib/postgresql/${version}/bin`;
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-pgcluster-'));
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const logFile = join(dir, 'log');
  const port = await freePort();
  const env = { ...process.env, ...options.env };
  const asPostgres = (command: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: dir }).toString();
  const walSegsize = options.walSegmentSizeMiB ? [`--wal-segsize=${options.walSegmentSizeMiB}`] : [];
  asPostgres(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', ...walSegsize]);
  const outside: Record<string, string> = {};
  if (options.configOutsideDataDir) {
    const etc = join(dir, 'etc');
    mkdirSync(etc);
    chownSync(etc, uid, gid);
    for (const [file, setting] of [['postgresql.conf', 'config_file'], ['pg_hba.conf', 'hba_file'], ['pg_ident.conf', 'ident_file']] as const) {
      renameSync(join(data, file), join(etc, file));
      outside[setting] = join(etc, file);
    }
  }
  const settings = Object.entries({ ...outside, ...options.settings }).map(([name, value]) => ` -c ${name}='${value.replace(/'/g, "''")}'`).join('');
  const start = () => asPostgres(`${bin}/pg_ctl`, ['-D', data, '-w', '-l', logFile, '-o', `-p ${port} -k ${dir} -c listen_addresses='' -c fsync=off${settings}`, 'start']);
  start();
  return {
    port,
    socketDir: dir,
    dataDir: data,
    bin,
    logFile,
    psql: (database, sql) => execFileSync('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, '-X', '-Atqc', sql]).toString().trim(),
    restart(more) {
      asPostgres(`${bin}/pg_ctl`, ['-D', data, '-w', '-m', 'fast', 'stop']);
      Object.assign(env, more);
      start();
    },
    stop() {
      try {
        asPostgres(`${bin}/pg_ctl`, ['-D', data, '-w', '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
