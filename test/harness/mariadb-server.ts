import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local-system/services';

/**
 * A throwaway MariaDB server of our own (mariadb-install-db + mariadbd as the mysql user, in a
 * scratch data directory, TCP on 127.0.0.1 and its own socket): for point-in-time recovery tests,
 * which turn binary logging on, flush, purge and restart, all of which the machine's shared server
 * (127.0.0.1:3306, binary log off) must not see. root has no password over the socket and TCP.
 */
export interface MariadbServer {
  readonly port: number;
  readonly socket: string;
  readonly dataDir: string;
  /** Where the binary logs are (the data directory unless `binlogDir` was given). */
  readonly binlogDir: string;
  /** The binary log basename (log_bin=<binlogDir>/<basename>). */
  readonly basename: string;
  readonly serverId: number;
  readonly logFile: string;
  /** Runs SQL as root through the socket; returns the batch output (tab-separated, no column names), trimmed. */
  sql(sql: string, database?: string): string;
  /** Restarts the server with the same options (plus `settings` when given). */
  restart(settings?: Readonly<Record<string, string>>): Promise<void>;
  /** Kills the server without a clean shutdown (SIGKILL). */
  crash(): void;
  stop(): Promise<void>;
}

export interface MariadbServerOptions {
  /** Binary logging on (log_bin, binlog_format=ROW, server_id): on by default. */
  readonly binlog?: boolean;
  readonly serverId?: number;
  /** Extra server options, passed as --name=value. */
  readonly settings?: Readonly<Record<string, string>>;
  /** A separate directory for the binary logs (as a Debian server keeps them in /var/log/mysql). */
  readonly separateBinlogDir?: boolean;
}

const MARIADBD = '/usr/sbin/mariadbd';

export async function startMariadbServer(options: MariadbServerOptions = {}): Promise<MariadbServer> {
  if (!existsSync(MARIADBD)) throw new Error(`${MARIADBD} is missing: install the Debian package mariadb-server`);
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-mariadb-'));
  const uid = Number(execFileSync('id', ['-u', 'mysql']).toString());
  const gid = Number(execFileSync('id', ['-g', 'mysql']).toString());
  chownSync(dir, uid, gid);
  const dataDir = join(dir, 'data');
  const binlogDir = options.separateBinlogDir ? join(dir, 'binlog') : dataDir;
  const socket = join(dir, 'mysqld.sock');
  const logFile = join(dir, 'error.log');
  const port = await freePort();
  const serverId = options.serverId ?? 1;
  const basename = 'mariadb-bin';
  // A temporary directory of its own: with the shared /tmp, two servers' bootstrap temporary
  // tables (#sql-temptable-<pid>-…) collided and one install aborted.
  const tmp = join(dir, 'tmp');
  execFileSync('install', ['-d', '-o', 'mysql', '-g', 'mysql', '-m', '0750', tmp]);
  execFileSync('mariadb-install-db', ['--no-defaults', `--datadir=${dataDir}`, '--user=mysql', '--auth-root-authentication-method=normal', '--skip-test-db', `--tmpdir=${tmp}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (options.separateBinlogDir) {
    execFileSync('install', ['-d', '-o', 'mysql', '-g', 'mysql', '-m', '0750', binlogDir]);
  }
  const current: Record<string, string> = {
    ...(options.binlog === false ? {} : { 'log-bin': join(binlogDir, basename), 'binlog-format': 'ROW', 'server-id': String(serverId) }),
    ...options.settings,
  };
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--user=mysql',
      `--socket=${socket}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--log-error=${logFile}`,
      `--pid-file=${join(dir, 'mysqld.pid')}`,
      '--innodb-buffer-pool-size=64M',
      '--innodb-log-file-size=48M',
      '--innodb-flush-log-at-trx-commit=2',
      '--skip-name-resolve',
      `--tmpdir=${tmp}`,
      ...Object.entries(current).map(([k, v]) => `--${k}=${v}`),
    ];
    child = spawn(MARIADBD, args, { stdio: 'ignore', detached: true });
    child.unref();
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`mariadbd exited at start (code ${child.exitCode}): ${tail(logFile)}`);
      try {
        execFileSync('mariadb', ['--no-defaults', '-uroot', `--socket=${socket}`, '-e', 'select 1'], { stdio: 'ignore' });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`mariadbd did not accept connections within 60 s: ${tail(logFile)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const shutdown = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    // The timer is cleared: left pending, it kept every test file's process alive 60 s after stop().
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 60_000)))]);
    clearTimeout(timer);
  };
  await start();
  const sql = (text: string, database?: string) =>
    execFileSync('mariadb', ['--no-defaults', '-uroot', `--socket=${socket}`, '--batch', '--skip-column-names', ...(database ? [database] : [])], { input: text, stdio: ['pipe', 'pipe', 'pipe'] })
      .toString()
      .trim();
  return {
    port,
    socket,
    dataDir,
    binlogDir,
    basename,
    serverId,
    logFile,
    sql,
    async restart(settings) {
      await shutdown('SIGTERM');
      Object.assign(current, settings);
      await start();
    },
    crash() {
      child?.kill('SIGKILL');
    },
    async stop() {
      try {
        await shutdown('SIGTERM');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no error log)';
  }
}
