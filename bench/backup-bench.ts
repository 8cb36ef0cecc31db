import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAgent } from '../scripts/build-agent';
import { startMoto } from '../local-system/services';
import { BENCH_AWS_ENV, benchWork, createBenchBucket, ensureDatabase, interleavedRounds, medianWallSeconds, requireTools, startBenchServer, timed, writeAgentConfig, type Contender, type Measurement } from './common';
import { binlogBench } from './binlog-bench';
import { executableBench } from './executable-bench';
import { pitrBench } from './pitr-bench';
import { restoreBench } from './restore-bench';

/**
 * npm run bench [-- --size-gb 1 --rounds 2 --no-moto --segments]   (restore: npm run bench -- --restore, see restore-bench.ts;
 * PITR against pgBackRest: npm run bench -- --pitr, see pitr-bench.ts; MySQL/MariaDB binary logs:
 * npm run bench -- --binlog, see binlog-bench.ts; the self-contained executable against the bundle:
 * npm run bench -- --executable, see executable-bench.ts)
 *
 * Side by side, interleaved round by round so drift hits every contender alike, on the same
 * PostgreSQL database (created once, reused): the agent bundle (to a discard-everything S3 sink and
 * to moto_server) and the shell pipelines people run today. For each: MB/s of dump bytes (the size
 * of `pg_dump -Fc -Z0`), wall and CPU seconds (the whole process tree, from GNU time), and the peak
 * RSS of the largest process of the tree (for the agent, Node itself). Besides the pipelines that
 * write to /dev/null, the complete shell pipeline a user would write (with a checksum and the
 * upload, `aws s3 cp -` to the same sink) is a second yardstick. --segments adds the agent with
 * forced segments (5 MiB parts, 4 a segment), to show memory stays flat when a dump is split.
 */
interface Args {
  sizeGb: number;
  rounds: number;
  moto: boolean;
  segments: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizeGb: 1, rounds: 2, moto: true, segments: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--size-gb') args.sizeGb = Number(argv[++i]);
    else if (argv[i] === '--rounds') args.rounds = Number(argv[++i]);
    else if (argv[i] === '--no-moto') args.moto = false;
    else if (argv[i] === '--segments') args.segments = true;
    else throw new Error(`unknown argument ${argv[i]} (use --size-gb N, --rounds N, --no-moto, --segments)`);
  }
  if (!(args.sizeGb > 0) || !(args.rounds >= 1)) throw new Error('--size-gb and --rounds must be positive');
  return args;
}

async function main(): Promise<void> {
  if (process.argv.includes('--restore')) {
    // npm run bench -- --restore [...]: the restore side (bench/restore-bench.ts).
    await restoreBench(process.argv.slice(2).filter((a) => a !== '--restore'));
    return;
  }
  if (process.argv.includes('--pitr')) {
    // npm run bench -- --pitr [...]: WAL archiving and PITR restore against pgBackRest (bench/pitr-bench.ts).
    await pitrBench(process.argv.slice(2).filter((a) => a !== '--pitr'));
    return;
  }
  if (process.argv.includes('--binlog')) {
    // npm run bench -- --binlog [...]: MySQL/MariaDB binary log replay and archiving lag (bench/binlog-bench.ts).
    await binlogBench(process.argv.slice(2).filter((a) => a !== '--binlog'));
    return;
  }
  if (process.argv.includes('--executable')) {
    // npm run bench -- --executable [...]: start-up, sizes, backup/restore and zstd of the self-contained agent (bench/executable-bench.ts).
    await executableBench(process.argv.slice(2).filter((a) => a !== '--executable'));
    return;
  }
  const args = parseArgs(process.argv.slice(2));
  requireTools(['pg_dump', 'gzip', 'zstd', 'gpg', 'aws', 'sha256sum', '/usr/bin/time'], 'the benchmark');
  const database = ensureDatabase(args.sizeGb);
  const work = await benchWork('coldseal-bench-', { gpgSecretKey: false });

  console.log('measuring the plain dump size…');
  const dumpBytes = Number(execFileSync('sh', ['-c', `pg_dump -h 127.0.0.1 -U postgres -Fc -Z0 ${database} | wc -c`]).toString().trim());
  console.log(`plain dump: ${(dumpBytes / 1e9).toFixed(2)} GB`);

  const bundle = await buildAgent();
  const sink = await startBenchServer('s3-sink.ts');
  const moto = args.moto ? await startMoto() : undefined;
  if (moto) await createBenchBucket(moto.endpoint);
  const agentConfig = (endpoint: string, inventory = true, segmented = false) =>
    writeAgentConfig(work, join(work.dir, `config-${endpoint.replace(/\W/g, '')}-${inventory}-${segmented}.json`), endpoint, database, { inventory, upload: segmented ? { partSizeMiB: 5, segmentParts: 4 } : undefined });
  const gpg = `gpg --homedir ${work.gpgHome} --batch --quiet --trust-model always --compress-algo none -r ${work.recipient.fingerprint} --encrypt`;
  const pgDump = `pg_dump -h 127.0.0.1 -U postgres -Fc -Z0 ${database}`;
  const contenders: Contender[] = [
    { name: 'shell: pg_dump | gzip -6 | gpg', run: (r) => timed('shell: pg_dump | gzip -6 | gpg', r, 'bash', ['-o', 'pipefail', '-c', `${pgDump} | gzip -6 | ${gpg} > /dev/null`]) },
    { name: 'shell: pg_dump | zstd -3 -T0 | gpg', run: (r) => timed('shell: pg_dump | zstd -3 -T0 | gpg', r, 'bash', ['-o', 'pipefail', '-c', `${pgDump} | zstd -3 -T0 -q | ${gpg} > /dev/null`]) },
    // What a careful user writes by hand: the same, plus a checksum and the upload (the AWS CLI, to the same sink).
    {
      name: 'shell: … | gpg | tee >(sha256sum) | aws s3 cp -',
      run: (r) =>
        timed('shell: … | gpg | tee >(sha256sum) | aws s3 cp -', r, 'bash', ['-o', 'pipefail', '-c', `${pgDump} | zstd -3 -T0 -q | ${gpg} | tee >(sha256sum > /dev/null) | aws --endpoint-url ${sink.endpoint} s3 cp - s3://bench/shell-${r}.pgp`], { ...process.env, ...BENCH_AWS_ENV }),
    },
    { name: 'agent → S3 sink', run: (r) => timed('agent → S3 sink', r, process.execPath, [bundle, 'backup', '--config', agentConfig(`${sink.endpoint}`), '--tier', 'daily'], { ...process.env, ...BENCH_AWS_ENV }) },
    // The default counts every table's rows in pg_dump's snapshot (for drills): a full scan the shell pipelines don't do.
    { name: 'agent → S3 sink, no inventory', run: (r) => timed('agent → S3 sink, no inventory', r, process.execPath, [bundle, 'backup', '--config', agentConfig(`${sink.endpoint}`, false), '--tier', 'daily'], { ...process.env, ...BENCH_AWS_ENV }) },
  ];
  if (args.segments) {
    contenders.push({ name: 'agent → S3 sink, segments (5 MiB × 4)', run: (r) => timed('agent → S3 sink, segments (5 MiB × 4)', r, process.execPath, [bundle, 'backup', '--config', agentConfig(`${sink.endpoint}`, true, true), '--tier', 'daily'], { ...process.env, ...BENCH_AWS_ENV }) });
  }
  if (moto) contenders.push({ name: 'agent → moto', run: (r) => timed('agent → moto', r, process.execPath, [bundle, 'backup', '--config', agentConfig(moto.endpoint), '--tier', 'daily'], { ...process.env, ...BENCH_AWS_ENV }) });

  let results: Measurement[];
  try {
    results = await interleavedRounds(contenders, args.rounds, dumpBytes, 48);
  } finally {
    sink.process.kill();
    await moto?.stop();
    rmSync(work.dir, { recursive: true, force: true });
  }

  const summary = contenders.map((c) => {
    const runs = results.filter((r) => r.name === c.name);
    const best = Math.min(...runs.map((r) => r.wallSeconds));
    const median = medianWallSeconds(results, c.name);
    return {
      name: c.name,
      bestMBps: dumpBytes / 1e6 / best,
      medianMBps: dumpBytes / 1e6 / median,
      cpuSeconds: Math.min(...runs.map((r) => r.cpuSeconds)),
      peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)),
    };
  });
  const best = (name: string) => summary.find((s) => s.name === name)!.medianMBps;
  const agent = best('agent → S3 sink');
  console.log(`\nplain dump ${(dumpBytes / 1e9).toFixed(2)} GB, ${args.rounds} rounds, medians:`);
  for (const s of summary) {
    console.log(`  ${s.name.padEnd(48)} ${s.medianMBps.toFixed(0).padStart(5)} MB/s (best ${s.bestMBps.toFixed(0)})  cpu ${s.cpuSeconds.toFixed(1)} s  peak RSS ${s.peakRssMb.toFixed(0)} MB`);
  }
  console.log(`  agent / best shell pipeline (zstd):  ${(agent / best('shell: pg_dump | zstd -3 -T0 | gpg')).toFixed(2)}×`);
  console.log(`  agent / classic pipeline (gzip):     ${(agent / best('shell: pg_dump | gzip -6 | gpg')).toFixed(2)}×`);
  console.log(`  agent / complete shell with upload:  ${(agent / best('shell: … | gpg | tee >(sha256sum) | aws s3 cp -')).toFixed(2)}×`);
  console.log(`  agent without inventory / best shell: ${(best('agent → S3 sink, no inventory') / best('shell: pg_dump | zstd -3 -T0 | gpg')).toFixed(2)}×`);
  const out = join(__dirname, '..', '.bench');
  mkdirSync(out, { recursive: true });
  const file = join(out, `backup-${args.sizeGb}gb-${new Date().toISOString().replace(/[:.]/g, '')}.json`);
  writeFileSync(file, JSON.stringify({ database, dumpBytes, rounds: args.rounds, results, summary }, null, 2));
  console.log(`\nraw figures: ${file}`);
}

main().catch((error) => {
  console.error((error as Error).message);
  process.exit(1);
});
