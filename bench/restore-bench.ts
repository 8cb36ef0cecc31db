import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { buildAgent } from '../scripts/build-agent';
import { BENCH_AWS_ENV, benchS3, benchWork, createBenchBucket, ensureDatabase, interleavedRounds, medianWallSeconds, psql, requireTools, startBenchServer, timed, writeAgentConfig, type Contender, type Measurement } from './common';

/**
 * npm run bench -- --restore [--size-gb 1 --rounds 2] [--decrypt openpgp.js]
 *
 * `--decrypt openpgp.js` makes the agent decrypt as it does on a host without gpg
 * (COLDSEAL_DECRYPT); its peak RSS is the figure to watch there (openpgp.js copies every chunk).
 *
 * The same backup object in a file-backed S3 stand-in (`s3-files.ts`: moto holds objects in
 * memory and serves a 1.3 GB object too slowly to measure anything but moto), made once by the
 * agent, restored side by side and
 * interleaved round by round: `coldseal restore --output` against `aws s3 cp - | gpg -d | zstd -d
 * > file`, and a restore into a new PostgreSQL database against the same shell pipeline into
 * `pg_restore -d`. MB/s of plain dump bytes, wall and CPU seconds of the whole process tree, peak
 * RSS of its largest process (for the agent, Node). Raw figures go to .bench/ like the backup bench.
 */
export async function restoreBench(argv: string[]): Promise<void> {
  let sizeGb = 1;
  let rounds = 2;
  let decrypt: 'gpg' | 'openpgp.js' | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--size-gb') sizeGb = Number(argv[++i]);
    else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--decrypt' && ['gpg', 'openpgp.js'].includes(argv[i + 1])) decrypt = argv[++i] as 'gpg' | 'openpgp.js';
    else throw new Error(`unknown argument ${argv[i]} (use --restore --size-gb N --rounds N --decrypt gpg|openpgp.js)`);
  }
  if (!(sizeGb > 0) || !(rounds >= 1)) throw new Error('--size-gb and --rounds must be positive');
  requireTools(['pg_dump', 'pg_restore', 'zstd', 'gpg', 'aws', '/usr/bin/time'], 'the restore benchmark');
  const database = ensureDatabase(sizeGb);
  const work = await benchWork('coldseal-rbench-', { gpgSecretKey: true });
  const gpgHome = work.gpgHome;

  const bundle = await buildAgent();
  const store = await startBenchServer('s3-files.ts', [join(work.dir, 's3')]);
  const env = { ...process.env, ...BENCH_AWS_ENV };
  const agentEnv = decrypt ? { ...env, COLDSEAL_DECRYPT: decrypt } : env;
  const by = decrypt ? ` (${decrypt})` : '';
  const out = join(work.dir, 'out');
  mkdirSync(out);
  const targets: string[] = [];
  try {
    await createBenchBucket(store.endpoint);
    const config = writeAgentConfig(work, join(work.dir, 'config.json'), store.endpoint, database, { inventory: false });
    console.log('backing up the bench database once…');
    execFileSync(process.execPath, [bundle, 'backup', '--config', config, '--tier', 'daily'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const listed = await benchS3(store.endpoint).send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: 'backups/' }));
    const object = listed.Contents!.find((o) => o.Key!.endsWith('.pgp'))!;
    const dumpBytes = Number(execFileSync('sh', ['-c', `aws --endpoint-url ${store.endpoint} s3 cp s3://bench/${object.Key} - | gpg --homedir ${gpgHome} --batch --quiet -d | zstd -d -q | wc -c`], { env }).toString().trim());
    console.log(`object ${(object.Size! / 1e6).toFixed(0)} MB, plain dump ${(dumpBytes / 1e9).toFixed(2)} GB`);

    const shellRead = `aws --endpoint-url ${store.endpoint} s3 cp s3://bench/${object.Key} - | gpg --homedir ${gpgHome} --batch --quiet -d | zstd -d -q`;
    const agent = (args: string[]) => [bundle, 'restore', '--config', config, '--source', 'pg', '--host', 'bench', '--key', work.recipientPrivateFile, '--yes', ...args];
    const newDb = (round: number, who: string) => {
      const name = `coldseal_rbench_${who}_${round}`;
      psql('postgres', `drop database if exists ${name}`);
      targets.push(name);
      return name;
    };
    const contenders: (Contender & { group: string })[] = [
      { group: 'output', name: 'shell: aws s3 cp | gpg -d | zstd -d > file', run: (r) => timed('shell: aws s3 cp | gpg -d | zstd -d > file', r, 'bash', ['-o', 'pipefail', '-c', `${shellRead} > ${join(out, 'shell.pgdump')}`], env) },
      { group: 'output', name: `coldseal restore --output${by}`, run: (r) => timed(`coldseal restore --output${by}`, r, process.execPath, agent(['--output', join(out, 'agent.pgdump')]), agentEnv) },
      {
        group: 'database',
        name: 'shell: … | pg_restore -d new',
        run: (r) => {
          const db = newDb(r, 'shell');
          return timed('shell: … | pg_restore -d new', r, 'bash', ['-o', 'pipefail', '-c', `createdb -h 127.0.0.1 -U postgres ${db} && ${shellRead} | pg_restore -h 127.0.0.1 -U postgres --exit-on-error --single-transaction -d ${db}`], env);
        },
      },
      { group: 'database', name: `coldseal restore --target new${by}`, run: (r) => timed(`coldseal restore --target new${by}`, r, process.execPath, agent(['--target', `postgres://postgres@127.0.0.1:5432/${newDb(r, 'agent')}`]), agentEnv) },
    ];
    const results: Measurement[] = await interleavedRounds(contenders, rounds, dumpBytes, 44, {
      // Each run starts on a settled machine: a restored database dropped at once (autovacuum would
      // analyze it during the next run), PostgreSQL's dirty buffers checkpointed and the page
      // cache's dirty pages written. Without this, whoever ran right after a restore into a
      // database paid for its writeback: with the order reversed every other round, that was always
      // the agent's --output (1.5-2× its CPU in those rounds), never the shell's.
      afterRun: () => {
        rmSync(join(out, 'shell.pgdump'), { force: true });
        rmSync(join(out, 'agent.pgdump'), { force: true });
        for (const t of targets.splice(0)) psql('postgres', `drop database if exists ${t}`);
        psql('postgres', 'checkpoint');
        execFileSync('sync');
      },
    });
    const median = (name: string) => medianWallSeconds(results, name);
    console.log(`\nplain dump ${(dumpBytes / 1e9).toFixed(2)} GB, ${rounds} rounds, medians:`);
    for (const c of contenders) {
      const runs = results.filter((r) => r.name === c.name);
      console.log(`  ${c.name.padEnd(44)} ${(dumpBytes / 1e6 / median(c.name)).toFixed(0).padStart(5)} MB/s  cpu ${Math.min(...runs.map((r) => r.cpuSeconds)).toFixed(1)} s  peak RSS ${Math.max(...runs.map((r) => r.peakRssMb)).toFixed(0)} MB`);
    }
    console.log(`  restore --output / shell:        ${(median(contenders[0].name) / median(contenders[1].name)).toFixed(2)}×`);
    console.log(`  restore into new db / shell:     ${(median(contenders[2].name) / median(contenders[3].name)).toFixed(2)}×`);
    const dir = join(__dirname, '..', '.bench');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `restore-${sizeGb}gb-${new Date().toISOString().replace(/[:.]/g, '')}.json`);
    writeFileSync(file, JSON.stringify({ database, dumpBytes, objectBytes: object.Size, rounds, decrypt: decrypt ?? 'auto', results }, null, 2));
    console.log(`\nraw figures: ${file}`);
  } finally {
    for (const t of targets) psql('postgres', `drop database if exists ${t}`);
    store.process.kill();
    rmSync(work.dir, { recursive: true, force: true });
  }
}
