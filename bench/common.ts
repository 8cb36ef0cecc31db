import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { generateKeyPair, type GeneratedKey } from '../runtime/pgp';

/**
 * What both benchmarks share: the tools they need, the bench database, a work directory with
 * throwaway keys, the agent's configuration and bucket, the interleaved rounds and the timing of a
 * whole process tree.
 */
export function requireTools(tools: readonly string[], purpose: string): void {
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is needed for ${purpose} (apt install ${tool === '/usr/bin/time' ? 'time' : tool})`);
    }
  }
}

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


/** The AWS settings the agent and the AWS CLI run with against the sink or moto_server. */
export const BENCH_AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export interface BenchWork {
  readonly dir: string;
  /** A GnuPG home holding the recipient key (its secret part too when asked), for the shell pipelines. */
  readonly gpgHome: string;
  readonly recipient: GeneratedKey;
  readonly recipientPublicFile: string;
  readonly recipientPrivateFile: string;
  readonly signingPrivateFile: string;
  readonly signingPublicFile: string;
}

/** A new work directory with throwaway recipient and signing keys, as files and in a GnuPG home. */
export async function benchWork(prefix: string, options: { gpgSecretKey: boolean }): Promise<BenchWork> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const gpgHome = join(dir, 'gnupg');
  mkdirSync(gpgHome, { mode: 0o700 });
  const recipient = await generateKeyPair({ name: 'bench recipient' });
  const signing = await generateKeyPair({ name: 'bench signing' });
  const work = {
    dir,
    gpgHome,
    recipient,
    recipientPublicFile: join(dir, 'recipient.pub.asc'),
    recipientPrivateFile: join(dir, 'recipient.key.asc'),
    signingPrivateFile: join(dir, 'signing.key.asc'),
    signingPublicFile: join(dir, 'signing.pub.asc'),
  };
  writeFileSync(work.recipientPublicFile, recipient.publicKey);
  writeFileSync(work.recipientPrivateFile, recipient.privateKey, { mode: 0o600 });
  writeFileSync(work.signingPrivateFile, signing.privateKey, { mode: 0o600 });
  writeFileSync(work.signingPublicFile, signing.publicKey);
  execFileSync('gpg', ['--homedir', gpgHome, '--batch', '--quiet', '--import', options.gpgSecretKey ? work.recipientPrivateFile : work.recipientPublicFile]);
  return work;
}

/** The S3 client for the "bench" bucket of a moto_server. */
export function benchS3(endpoint: string): S3Client {
  return new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
}

export async function createBenchBucket(endpoint: string): Promise<void> {
  await benchS3(endpoint).send(new CreateBucketCommand({ Bucket: 'bench' }));
}

/** Writes the agent's configuration: the bench database to the "bench" bucket at `endpoint`. */
export function writeAgentConfig(work: BenchWork, path: string, endpoint: string, database: string, options: { inventory: boolean; upload?: { partSizeMiB: number; segmentParts: number } }): string {
  writeFileSync(
    path,
    JSON.stringify({
      group: 'bench',
      host: 'bench',
      bucket: 'bench',
      endpoint,
      recipients: { file: work.recipientPublicFile },
      signingKey: { file: work.signingPrivateFile },
      sources: [{ name: 'pg', type: 'postgres', databases: [database], host: '127.0.0.1', user: 'postgres', inventory: options.inventory }],
      ...(options.upload ? { upload: options.upload } : {}),
    }),
  );
  return path;
}

export interface Contender {
  readonly name: string;
  run(round: number): Promise<Measurement>;
}

/**
 * Every contender once a round, in reverse order every other round so drift hits them alike; each
 * measurement printed as it comes (MB/s of `dumpBytes`). `afterRun` and `afterRound` tidy up.
 */
export async function interleavedRounds(contenders: readonly Contender[], rounds: number, dumpBytes: number, nameWidth: number, tidy: { afterRun?: () => void; afterRound?: () => void } = {}): Promise<Measurement[]> {
  const results: Measurement[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const contender of round % 2 ? contenders : [...contenders].reverse()) {
      const m = await contender.run(round);
      results.push(m);
      tidy.afterRun?.();
      console.log(`round ${round}  ${m.name.padEnd(nameWidth)} ${(dumpBytes / 1e6 / m.wallSeconds).toFixed(0).padStart(5)} MB/s  wall ${m.wallSeconds.toFixed(1)} s  cpu ${m.cpuSeconds.toFixed(1)} s  peak RSS ${m.peakRssMb.toFixed(0)} MB`);
    }
    tidy.afterRound?.();
  }
  return results;
}

/** The median wall time of a contender's runs (the lower middle one for an even count). */
export function medianWallSeconds(results: readonly Measurement[], name: string): number {
  const walls = results.filter((r) => r.name === name).map((r) => r.wallSeconds).sort((a, b) => a - b);
  return walls[Math.floor((walls.length - 1) / 2)];
}

/**
 * One of the bench's S3 endpoints (`s3-sink.ts`, `s3-files.ts`) as its own process, on a port it
 * picks and prints: the endpoint is known once it listens, with no port race and no fixed wait.
 */
export async function startBenchServer(script: string, args: readonly string[] = []): Promise<{ endpoint: string; process: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, script), '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before listening`)));
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { endpoint: `http://127.0.0.1:${port}`, process: child };
}
