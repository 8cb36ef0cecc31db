import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { freeLocalPort } from '../agent/src/local-host';

/**
 * The services the system needs on one machine: PostgreSQL, MariaDB (started when down) and a
 * moto_server on loopback. test/run.ts starts one moto_server for the whole test run (a missing
 * service fails the run: a skipped integration test is not a pass); `npm run demo` and the
 * benchmarks start their own.
 */

function commandWorks(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

const postgresUp = () => commandWorks('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-Atc', 'select 1']);
const mariadbUp = () => commandWorks('mysql', ['-h', '127.0.0.1', '-P', '3306', '-u', 'root', '-e', 'select 1']);

async function waitFor(check: () => boolean, seconds: number): Promise<boolean> {
  for (let i = 0; i < seconds * 2; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

export async function ensureDatabases(): Promise<void> {
  if (!postgresUp()) {
    console.error('[harness] PostgreSQL is down; starting it');
    try {
      const version = execFileSync('ls', ['/etc/postgresql']).toString().trim().split('\n')[0];
      execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
    } catch (error) {
      throw new Error(`PostgreSQL is not answering on 127.0.0.1:5432 and could not be started: ${(error as Error).message}`, { cause: error });
    }
    if (!(await waitFor(postgresUp, 30))) throw new Error('PostgreSQL did not come up on 127.0.0.1:5432 within 30 s');
  }
  if (!mariadbUp()) {
    console.error('[harness] MariaDB is down; starting it');
    try {
      execFileSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd'], { stdio: 'inherit' });
    } catch (error) {
      throw new Error(`MariaDB is not answering on 127.0.0.1:3306 and could not be started: ${(error as Error).message}`, { cause: error });
    }
    if (!(await waitFor(mariadbUp, 60))) throw new Error('MariaDB did not come up on 127.0.0.1:3306 within 60 s');
  }
}

/** A free port on 127.0.0.1 for a service the harness starts (the agent's own look-up). */
export const freePort = freeLocalPort;

export interface MotoServer {
  readonly port: number;
  readonly endpoint: string;
  stop(): Promise<void>;
}

export async function startMoto(port?: number): Promise<MotoServer> {
  if (!commandWorks('sh', ['-c', 'command -v moto_server'])) {
    throw new Error('moto_server is not on PATH: install Python moto 5 with its server extra (pip install "moto[server]")');
  }
  const chosen = port ?? (await freePort());
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(chosen)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${chosen}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited at start (code ${child.exitCode}): ${stderr}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/data.json`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server did not answer on ${endpoint} within 30 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    port: chosen,
    endpoint,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
