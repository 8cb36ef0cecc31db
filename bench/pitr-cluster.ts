import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from '../local-system/services';

/**
 * The PITR bench's scratch PostgreSQL clusters: initdb and pg_ctl as the postgres user, like
 * test/harness/pg-cluster.ts, but under the bench's own directory, with the WAL archive settings
 * the bench needs, started with the environment the archive_command must see (PostgreSQL passes
 * the postmaster's environment to archive_command and restore_command), and kept until the bench
 * is done with them. Never the shared server on 5432.
 */
export const PG_BIN = (() => {
  const version = readdirSync('/usr/lib/postgresql').sort().pop();
  if (!version) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (apt install postgresql)');
  return `/usr/lib/postgresql/${version}/bin`;
})();

const ids = () => ({ uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) });

/** A directory the postgres user owns (archive_command, pgBackRest's repository and spool run as postgres). */
export function postgresDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const { uid, gid } = ids();
  chownSync(path, uid, gid);
  return path;
}

export function chownToPostgres(path: string): void {
  const { uid, gid } = ids();
  chownSync(path, uid, gid);
}

/** Runs a command as the postgres user; its output, or an error carrying its stderr. */
export function asPostgres(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  try {
    return execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();
  } catch (error) {
    const e = error as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.stderr?.toString().trim() || e.stdout?.toString().trim() || e.message}`, { cause: error });
  }
}

/**
 * The same, without blocking the event loop: while a restore runs, the bench's /proc sampler must
 * keep ticking to see the restore_command processes PostgreSQL starts.
 */
export function asPostgresAsync(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return runAsync('runuser', ['-u', 'postgres', '--', command, ...args], env);
}

/** A command's standard output, or an error carrying the end of its standard error. */
export function runAsync(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${args.join(' ')} failed (exit ${code}): ${stderr.trim().slice(-3000) || stdout.trim().slice(-3000)}`))));
  });
}

export interface BenchCluster {
  readonly name: string;
  /** Socket directory and log file live here; the data directory is `data` below it. */
  readonly dir: string;
  readonly data: string;
  readonly port: number;
  readonly log: string;
  psql(sql: string, database?: string): string;
  client(database?: string): Promise<Client>;
  /** Number of .ready files in pg_wal/archive_status: what PostgreSQL has not yet handed over. */
  readyCount(): number;
  start(): void;
  startAsync(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): void;
  logTail(lines?: number): string;
}

function clusterAt(name: string, dir: string, port: number, env: NodeJS.ProcessEnv, startOptions: readonly string[], socketDir = dir): BenchCluster {
  const data = join(dir, 'data');
  const log = join(dir, 'log');
  const statusDir = join(data, 'pg_wal', 'archive_status');
  const options = [`-p ${port}`, `-k ${socketDir}`, "-c listen_addresses=''", ...startOptions].join(' ');
  return {
    name,
    dir,
    data,
    port,
    log,
    psql: (sql, database = 'postgres') => execFileSync('psql', ['-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', database, '-X', '-v', 'ON_ERROR_STOP=1', '-Atqc', sql]).toString().trim(),
    async client(database = 'postgres') {
      const c = new Client({ host: socketDir, port, user: 'postgres', database });
      await c.connect();
      return c;
    },
    readyCount() {
      try {
        return readdirSync(statusDir).filter((f) => f.endsWith('.ready')).length;
      } catch {
        return 0;
      }
    },
    start() {
      asPostgres(`${PG_BIN}/pg_ctl`, ['-D', data, '-w', '-t', '3600', '-l', log, '-o', options, 'start'], env);
    },
    async startAsync() {
      await asPostgresAsync(`${PG_BIN}/pg_ctl`, ['-D', data, '-w', '-t', '3600', '-l', log, '-o', options, 'start'], env);
    },
    stop(mode = 'fast') {
      if (existsSync(join(data, 'postmaster.pid'))) asPostgres(`${PG_BIN}/pg_ctl`, ['-D', data, '-w', '-t', '600', '-m', mode, 'stop'], env);
    },
    logTail(lines = 30) {
      try {
        return readFileSync(log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
  };
}

/**
 * A new cluster in `dir` (created, owned by postgres): archive_mode on with an empty
 * archive_command, which PostgreSQL documents as "archiving temporarily disabled, WAL kept"
 * (docs, runtime config "Archiving", archive_command), so the bench can let a backlog pile up
 * and then hand the command over. Not started.
 */
export async function initBenchCluster(name: string, dir: string, env: NodeJS.ProcessEnv): Promise<BenchCluster> {
  postgresDir(dir);
  const port = await freePort();
  const cluster = clusterAt(name, dir, port, env, []);
  asPostgres(`${PG_BIN}/initdb`, ['-D', cluster.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions']);
  appendFileSync(
    join(cluster.data, 'postgresql.conf'),
    [
      '# coldseal PITR bench',
      'wal_level = replica',
      'archive_mode = on',
      "archive_command = ''",
      'archive_timeout = 60',
      // A burst of 1-2 GB of WAL, archived as it comes, must not be throttled by checkpoints.
      "max_wal_size = '4GB'",
      "checkpoint_timeout = '30min'",
      "shared_buffers = '256MB'",
      'logging_collector = off',
      '',
    ].join('\n'),
  );
  return cluster;
}

/**
 * A data directory someone else laid out (a restore), started on a port of its own with
 * `startOptions` (e.g. archive_mode off: a restored copy must not archive into the source's
 * archive). The caller owns the files; pg_ctl runs as postgres.
 */
export async function restoredCluster(name: string, dir: string, env: NodeJS.ProcessEnv, startOptions: readonly string[]): Promise<BenchCluster> {
  return clusterAt(name, dir, await freePort(), env, startOptions);
}

/** A server someone else started on `dir`/data (a restore that leaves its server running), reached at `port` and `socketDir`. */
export function runningCluster(name: string, dir: string, port: number, socketDir: string, env: NodeJS.ProcessEnv): BenchCluster {
  return clusterAt(name, dir, port, env, [], socketDir);
}
