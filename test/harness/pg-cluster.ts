import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local-system/services';

/**
 * A throwaway PostgreSQL cluster of our own (initdb + pg_ctl as the postgres user): for tests that
 * need the whole cluster to themselves, such as "back up all databases", which the shared server
 * cannot give while other test files create and drop databases in parallel.
 */
export interface PgCluster {
  readonly port: number;
  readonly socketDir: string;
  psql(database: string, sql: string): string;
  stop(): void;
}

export async function startPgCluster(): Promise<PgCluster> {
  const version = readdirSync('/usr/lib/postgresql').sort().pop();
  if (!version) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const bin = `/usr/lib/postgresql/${version}/bin`;
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-pgcluster-'));
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const port = await freePort();
  const asPostgres = (command: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  asPostgres(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  asPostgres(`${bin}/pg_ctl`, ['-D', data, '-w', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses='' -c fsync=off`, 'start']);
  return {
    port,
    socketDir: dir,
    psql: (database, sql) => execFileSync('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, '-X', '-Atqc', sql]).toString().trim(),
    stop() {
      try {
        asPostgres(`${bin}/pg_ctl`, ['-D', data, '-w', '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
