import { execFileSync, spawn } from 'node:child_process';

/** What both benchmarks share: the bench database and the timing of a whole process tree. */
export const psql = (db: string, sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-Atqc', sql]).toString().trim();

/** A database whose plain custom-format dump is about `gb` GB: mixed text, numbers, JSON, some repetition. */
export function ensureDatabase(gb: number): string {
  const name = `coldseal_bench_${String(gb).replace('.', '_')}gb`;
  const exists = psql('postgres', `select 1 from pg_database where datname = '${name}'`) === '1';
  if (exists && psql(name, `select count(*) from pg_tables where tablename = 'ready'`) === '1') return name;
  if (exists) psql('postgres', `drop database "${name}"`);
  console.log(`creating ${name} (about ${gb} GB of dump; once, then reused)…`);
  psql('postgres', `create database "${name}"`);
  const rows = Math.round(gb * 5_600_000);
  psql(
    name,
    `create table events as
       select g as id, now() - (g || ' seconds')::interval as at, (g % 1000) as account,
              md5(g::text) || ' ' || md5((g * 7)::text) as token,
              'user ' || (g % 5000) || ' did action ' || (g % 37) || ' on item ' || (g % 100000) as message,
              jsonb_build_object('n', g, 'ok', g % 3 = 0, 'tag', 't' || (g % 50)) as doc
       from generate_series(1, ${rows}) g;
     create table ready ();`,
  );
  return name;
}

export interface Measurement {
  name: string;
  round: number;
  wallSeconds: number;
  cpuSeconds: number;
  peakRssMb: number;
  outputBytes?: number;
}

export function timed(name: string, round: number, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', 'TIME %e %U %S %M', command, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      const match = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
      if (code !== 0 || !match) return reject(new Error(`${name} failed (exit ${code}): ${stderr.slice(-2000)}`));
      resolve({ name, round, wallSeconds: wall, cpuSeconds: Number(match[2]) + Number(match[3]), peakRssMb: Number(match[4]) / 1024 });
    });
  });
}

