import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAgent } from '../scripts/build-agent';
import { startMoto, type MotoServer } from '../local-system/services';
import { BENCH_AWS_ENV, benchWork, createBenchBucket, requireTools } from './common';
import { initBenchCluster, postgresDir, type BenchCluster } from './pitr-cluster';
import { coldseal } from './pitr-coldseal';
import type { PitrContender } from './pitr-contender';
import { BENCH_DATABASE, createBenchTables, segmentsBetween, walBurst, watchArchiver, WAL_SEGMENT_BYTES, type BacklogSample, type Burst } from './pitr-load';
import { pgBackRest } from './pitr-pgbackrest';
import { machineBusySeconds, processCpuSeconds, ProcSampler, type ProcessUsage } from './proc-sampler';

/**
 * npm run bench -- --pitr [--pitr-wal-mb 1024] [--pitr-drain-mb 512] [--pitr-process-max 2]
 *                         [--pitr-only coldseal|pgbackrest] [--pitr-no-restore] [--pitr-keep]
 *
 * coldseal's WAL archive against pgBackRest's (async archive-push, zstd, AES-256-CBC, local
 * repository), one after the other in one run (never at once: 2 cores), each on a scratch
 * PostgreSQL cluster of its own with the same load:
 * 1. drain: `--pitr-drain-mb` of WAL written while archive_command is empty (PostgreSQL keeps it,
 *    .ready), then the archiver's command set and the server reloaded: segments/s and MB/s from
 *    the reload to the last segment archived (pg_stat_archiver), archiving alone on the machine.
 * 2. base backup, untimed.
 * 3. burst: `--pitr-wal-mb` of WAL written as fast as this server writes it, archiving as it
 *    comes: MB/s from the first insert to the last segment archived, the lag behind the load at
 *    its end, and the .ready backlog every 0.5 s.
 * 4. restore: the base backup restored into a new data directory and the burst's WAL replayed to
 *    a time between the burst and one later commit; wall time until the server reached it (promoted
 *    or paused), rows checked.
 * Peak RSS and CPU of the archiver's and the restore's processes are sampled from /proc
 * (proc-sampler.ts). coldseal writes to a moto_server the bench starts, whose CPU is reported:
 * on 2 cores, moto's Python takes CPU that a real S3 endpoint would not.
 */
interface PitrArgs {
  walMb: number;
  drainMb: number;
  processMax: number;
  only?: 'coldseal' | 'pgbackrest';
  restore: boolean;
  /** Keep the work directory (logs, repository) for a look after the run. */
  keep: boolean;
}

function parsePitrArgs(argv: readonly string[]): PitrArgs {
  const args: PitrArgs = { walMb: 1024, drainMb: 512, processMax: 2, restore: true, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--pitr-wal-mb') args.walMb = Number(argv[++i]);
    else if (a === '--pitr-drain-mb') args.drainMb = Number(argv[++i]);
    else if (a === '--pitr-process-max') args.processMax = Number(argv[++i]);
    else if (a === '--pitr-only' && (argv[i + 1] === 'coldseal' || argv[i + 1] === 'pgbackrest')) args.only = argv[++i] as 'coldseal' | 'pgbackrest';
    else if (a === '--pitr-no-restore') args.restore = false;
    else if (a === '--pitr-keep') args.keep = true;
    else throw new Error(`unknown argument ${a} (use --pitr --pitr-wal-mb N --pitr-drain-mb N --pitr-process-max N --pitr-only coldseal|pgbackrest --pitr-no-restore --pitr-keep)`);
  }
  if (!(args.walMb >= 64) || !(args.drainMb >= 0) || !(args.processMax >= 1)) throw new Error('--pitr-wal-mb must be at least 64, --pitr-drain-mb at least 0, --pitr-process-max at least 1');
  return args;
}

interface ArchiveRun {
  files: number;
  mb: number;
  seconds: number;
  segmentsPerSecond: number;
  mbPerSecond: number;
  peakReady: number;
  samples: BacklogSample[];
  failures: number;
  usage: Record<string, ProcessUsage>;
  motoCpuSeconds?: number;
  machineBusySeconds: number;
}

interface BurstRun extends ArchiveRun {
  burst: Burst;
  /** MB/s PostgreSQL wrote the burst's WAL at, archiving alongside. */
  generationMbPerSecond: number;
  /** From the burst's last insert to its last segment archived. */
  lagSeconds: number;
}

interface RestoreRun {
  replayMb: number;
  commandSeconds: number;
  totalSeconds: number;
  rowsExpected: number;
  rowsFound: number;
  afterTargetFound: number;
  usage: Record<string, ProcessUsage>;
}

interface ContenderRun {
  name: string;
  /** /proc/loadavg's 1-minute figure when this contender started and ended: what else ran. */
  load?: [number, number];
  unavailable?: string;
  drain?: ArchiveRun;
  baseBackupSeconds?: number;
  burst?: BurstRun;
  restore?: RestoreRun;
  restoreUnavailable?: string;
  error?: string;
}

const loadAverage = () => Number(readFileSync('/proc/loadavg', 'latin1').split(' ')[0]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number) => bytes / 1024 / 1024;

function setArchiveCommand(cluster: BenchCluster, command: string): void {
  cluster.psql(`alter system set archive_command = '${command.replace(/'/g, "''")}'`);
  cluster.psql('select pg_reload_conf()');
}

function motoPid(moto: MotoServer | undefined): number | undefined {
  if (!moto) return undefined;
  const out = execFileSync('pgrep', ['-f', `moto_server.*-p ${moto.port}`]).toString().trim().split('\n')[0];
  return out ? Number(out) : undefined;
}

/**
 * Archiving from what `work` does (hand the command over, or write a burst) until the segment it
 * names is archived, with the backlog, CPU and memory around it; `files()` counts what was archived.
 */
async function measureArchiving(cluster: BenchCluster, contender: PitrContender, moto: number | undefined, files: () => number, work: () => Promise<{ lastSegment: string; startedAt: number }>, timeoutSeconds: number): Promise<ArchiveRun & { endedAt: number }> {
  const sampler = new ProcSampler((argv) => contender.label(argv)).start();
  const motoBefore = moto ? processCpuSeconds(moto) : 0;
  const busyBefore = machineBusySeconds();
  const watch = await watchArchiver(cluster);
  try {
    const { lastSegment, startedAt } = await work();
    const endedAt = await watch.until(lastSegment, timeoutSeconds);
    const seconds = (endedAt - startedAt) / 1000;
    const n = files();
    const usage = Object.fromEntries(sampler.stop());
    return {
      files: n,
      mb: mib(n * WAL_SEGMENT_BYTES),
      seconds,
      segmentsPerSecond: n / seconds,
      mbPerSecond: mib(n * WAL_SEGMENT_BYTES) / seconds,
      peakReady: Math.max(0, ...watch.samples.filter((s) => s.t * 1000 + watch.t0 <= endedAt).map((s) => s.ready)),
      samples: watch.samples.filter((s) => s.t * 1000 + watch.t0 <= endedAt + 500),
      failures: watch.failedSinceStart(),
      usage,
      motoCpuSeconds: moto ? processCpuSeconds(moto) - motoBefore : undefined,
      machineBusySeconds: machineBusySeconds() - busyBefore,
      endedAt,
    };
  } finally {
    sampler.stop();
    await watch.stop();
  }
}

async function runContender(contender: PitrContender, args: PitrArgs, dir: string, env: NodeJS.ProcessEnv, moto: number | undefined): Promise<ContenderRun> {
  const run: ContenderRun = { name: contender.name };
  if (contender.unavailable) {
    console.log(`\n${contender.name}: ${contender.unavailable}`);
    return { ...run, unavailable: contender.unavailable };
  }
  console.log(`\n── ${contender.name} ──`);
  const cluster = await initBenchCluster(contender.name, join(dir, 'source'), env);
  cluster.start();
  try {
    const command = await contender.prepare(cluster);
    setArchiveCommand(cluster, '');
    createBenchTables(cluster, ['drain', 'burst', 'after_target']);
    // Segments written before now (initdb's, the tables') are archived first, outside any figure.
    const settled = cluster.psql('select pg_walfile_name(pg_switch_wal())');
    setArchiveCommand(cluster, command);
    const settle = await watchArchiver(cluster);
    await settle.until(settled, 120).finally(() => settle.stop());
    setArchiveCommand(cluster, '');

    if (args.drainMb > 0) {
      const drainBurst = await walBurst(cluster, 'drain', args.drainMb);
      const backlog = cluster.readyCount();
      console.log(`drain: ${backlog} .ready files (${drainBurst.segments} segments of WAL written in ${drainBurst.seconds.toFixed(1)} s while archiving was off), archiving on…`);
      run.drain = await measureArchiving(cluster, contender, moto, () => backlog, async () => {
        const startedAt = Date.now();
        setArchiveCommand(cluster, command);
        return { lastSegment: drainBurst.lastSegment, startedAt };
      }, 600);
      console.log(`drain: ${run.drain.files} files in ${run.drain.seconds.toFixed(1)} s: ${run.drain.segmentsPerSecond.toFixed(1)} segments/s, ${run.drain.mbPerSecond.toFixed(0)} MB/s of WAL`);
    } else setArchiveCommand(cluster, command);

    if (args.restore && !contender.restoreUnavailable) {
      const started = Date.now();
      await contender.baseBackup(cluster);
      run.baseBackupSeconds = (Date.now() - started) / 1000;
      console.log(`base backup: ${run.baseBackupSeconds.toFixed(1)} s (not compared)`);
    }

    let burst: Burst | undefined;
    const archived = await measureArchiving(cluster, contender, moto, () => (burst ? segmentsBetween(burst.firstSegment, burst.lastSegment) : 0), async () => {
      const startedAt = Date.now();
      burst = await walBurst(cluster, 'burst', args.walMb);
      console.log(`burst: ${burst.segments} segments (${mib(burst.walBytes).toFixed(0)} MB of WAL) written in ${burst.seconds.toFixed(1)} s, ${cluster.readyCount()} .ready at its end`);
      return { lastSegment: burst.lastSegment, startedAt };
    }, 900);
    const b = burst!;
    run.burst = { ...archived, burst: b, generationMbPerSecond: mib(b.walBytes) / b.seconds, lagSeconds: (archived.endedAt - b.endedAt) / 1000 };
    console.log(`burst: archived ${run.burst.files} segments in ${run.burst.seconds.toFixed(1)} s from the first insert: ${run.burst.segmentsPerSecond.toFixed(1)} segments/s, ${run.burst.mbPerSecond.toFixed(0)} MB/s; ${run.burst.lagSeconds.toFixed(1)} s behind the load at its end; peak backlog ${run.burst.peakReady} .ready`);

    if (!args.restore) return run;
    if (contender.restoreUnavailable) {
      console.log(`restore: ${contender.restoreUnavailable}`);
      return { ...run, restoreUnavailable: contender.restoreUnavailable };
    }
    // A target between the burst's last commit and one later commit: recovery must replay the
    // whole burst and stop before that commit (recovery_target_inclusive applies to the target's
    // own transaction only; a time target stops at the first commit after it).
    await sleep(1100);
    const targetTime = cluster.psql("select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await sleep(1100);
    cluster.psql("insert into after_target values (1, now(), 'after', 'the target')", BENCH_DATABASE);
    const last = cluster.psql('select pg_walfile_name(pg_switch_wal())');
    const tail = await watchArchiver(cluster);
    await tail.until(last, 300).finally(() => tail.stop());
    const rowsExpected = Number(cluster.psql('select count(*) from burst', BENCH_DATABASE));
    cluster.stop();

    const restoreDir = postgresDir(join(dir, 'restore'));
    postgresDir(join(restoreDir, 'data'));
    console.log(`restore: base backup + ${mib(b.walBytes).toFixed(0)} MB of WAL to ${targetTime}…`);
    const sampler = new ProcSampler((argv) => contender.label(argv)).start();
    const started = Date.now();
    let server: BenchCluster | undefined;
    try {
      const restored = await contender.restore(targetTime, restoreDir);
      server = restored.server;
      await reachedTarget(server, 1800);
      const totalSeconds = (Date.now() - started) / 1000;
      const usage = Object.fromEntries(sampler.stop());
      run.restore = {
        replayMb: mib(b.walBytes),
        commandSeconds: restored.commandSeconds,
        totalSeconds,
        rowsExpected,
        rowsFound: Number(server.psql('select count(*) from burst', BENCH_DATABASE)),
        afterTargetFound: Number(server.psql('select count(*) from after_target', BENCH_DATABASE)),
        usage,
      };
      console.log(`restore: ${totalSeconds.toFixed(1)} s (its command ${restored.commandSeconds.toFixed(1)} s), ${run.restore.rowsFound}/${rowsExpected} rows, ${run.restore.afterTargetFound} after the target`);
    } finally {
      sampler.stop();
      server?.stop('immediate');
    }
    return run;
  } catch (error) {
    console.log(`${contender.name} failed: ${(error as Error).message}`);
    return { ...run, error: (error as Error).message };
  } finally {
    try {
      cluster.stop('immediate');
    } catch {
      // already stopped
    }
  }
}

/** Until the restored server has stopped at the target: promoted, or paused there (recovery_target_action). */
async function reachedTarget(server: BenchCluster, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    try {
      const state = server.psql("select case when not pg_is_in_recovery() then 'promoted' else pg_get_wal_replay_pause_state() end");
      if (state === 'promoted' || state === 'paused') return;
    } catch {
      // not accepting connections yet (before consistency)
    }
    if (Date.now() > deadline) throw new Error(`the restored server did not reach the target within ${timeoutSeconds} s; its log:\n${server.logTail()}`);
    await sleep(100);
  }
}

export async function pitrBench(argv: readonly string[]): Promise<void> {
  const args = parsePitrArgs(argv);
  // The bench's own S3 client (the bucket) would print the SDK's Node 20 notice in the middle of the figures.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  requireTools(['pgbackrest', 'psql', 'zstd', 'gpg', 'runuser', 'pgrep'], 'the PITR benchmark');
  const work = await benchWork('coldseal-pitrbench-', { gpgSecretKey: false });
  // The postgres user must reach the contenders' directories below the work directory.
  chmodSync(work.dir, 0o755);
  const bundle = await buildAgent();
  const moto = args.only === 'pgbackrest' ? undefined : await startMoto();
  const env = { ...process.env, ...BENCH_AWS_ENV };
  const runs: ContenderRun[] = [];
  const started = Date.now();
  try {
    if (moto) await createBenchBucket(moto.endpoint);
    const contenders: PitrContender[] = [];
    if (args.only !== 'pgbackrest') contenders.push(coldseal({ bundle, work, endpoint: moto!.endpoint, bucket: 'bench', env }));
    if (args.only !== 'coldseal') contenders.push(pgBackRest(work.dir, args.processMax, env));
    for (const contender of contenders) {
      const dir = postgresDir(join(work.dir, contender.name));
      const loadBefore = loadAverage();
      const run = await runContender(contender, args, dir, env, contender.name === 'coldseal' ? motoPid(moto) : undefined);
      runs.push({ ...run, load: [loadBefore, loadAverage()] });
      if (!args.keep) rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await moto?.stop();
    if (args.keep) console.log(`work directory kept: ${work.dir}`);
    else rmSync(work.dir, { recursive: true, force: true });
  }
  report(runs, args, (Date.now() - started) / 1000);
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

function usageOf(run: ArchiveRun | RestoreRun | undefined, match: (label: string) => boolean): { rss: number; total: number; cpu: number; n: number } | undefined {
  if (!run) return undefined;
  const rows = Object.entries(run.usage).filter(([label]) => match(label));
  if (rows.length === 0) return undefined;
  return { rss: Math.max(...rows.map(([, u]) => u.peakRssMb)), total: Math.max(...rows.map(([, u]) => u.peakTotalRssMb)), cpu: rows.reduce((a, [, u]) => a + u.cpuSeconds, 0), n: rows.reduce((a, [, u]) => a + u.processes, 0) };
}

/** A backlog over time in one line: the .ready count every 2 s. */
function backlogLine(samples: readonly BacklogSample[]): string {
  const out: string[] = [];
  for (let t = 0; ; t += 2) {
    const s = samples.find((x) => x.t >= t);
    if (!s) break;
    out.push(String(s.ready));
  }
  return out.join(' ');
}

function report(runs: readonly ContenderRun[], args: PitrArgs, seconds: number): void {
  const c = runs.find((r) => r.name === 'coldseal');
  const p = runs.find((r) => r.name === 'pgBackRest');
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : '—');
  const w = 44;
  const row = (label: string, cs: string, pg: string, r = '') => console.log(`  ${label.padEnd(w)} ${cs.padStart(18)} ${pg.padStart(18)} ${r.padStart(8)}`);
  console.log(`\nPITR bench, ${new Date().toISOString()}, ${seconds.toFixed(0)} s in all: burst ${args.walMb} MB of WAL, drain backlog ${args.drainMb} MB, pgBackRest process-max ${args.processMax}`);
  for (const r of runs) if (r.unavailable || r.error) console.log(`  ${r.name}: ${r.unavailable ?? `FAILED: ${r.error}`}`);
  console.log(`  load average (1 min) at start → end: ${runs.map((r) => `${r.name} ${r.load?.[0].toFixed(1)} → ${r.load?.[1].toFixed(1)}`).join(', ')} (2 vCPUs: above 2, something else ran)`);
  row('', 'coldseal', 'pgBackRest', 'ratio');
  if (args.drainMb > 0) {
    row('drain of a backlog: segments/s', fmt(c?.drain?.segmentsPerSecond, 1), fmt(p?.drain?.segmentsPerSecond, 1), ratio(c?.drain?.segmentsPerSecond, p?.drain?.segmentsPerSecond));
    row('drain: MB/s of WAL', fmt(c?.drain?.mbPerSecond), fmt(p?.drain?.mbPerSecond), ratio(c?.drain?.mbPerSecond, p?.drain?.mbPerSecond));
    row('drain: files, seconds', c?.drain ? `${c.drain.files}, ${fmt(c.drain.seconds, 1)} s` : '—', p?.drain ? `${p.drain.files}, ${fmt(p.drain.seconds, 1)} s` : '—');
  }
  row('burst: WAL written, MB/s (archiving along)', fmt(c?.burst?.generationMbPerSecond), fmt(p?.burst?.generationMbPerSecond), ratio(c?.burst?.generationMbPerSecond, p?.burst?.generationMbPerSecond));
  row('burst: archived, segments/s', fmt(c?.burst?.segmentsPerSecond, 1), fmt(p?.burst?.segmentsPerSecond, 1), ratio(c?.burst?.segmentsPerSecond, p?.burst?.segmentsPerSecond));
  row('burst: archived, MB/s of WAL', fmt(c?.burst?.mbPerSecond), fmt(p?.burst?.mbPerSecond), ratio(c?.burst?.mbPerSecond, p?.burst?.mbPerSecond));
  row('burst: archive behind the load at its end', c?.burst ? `${fmt(c.burst.lagSeconds, 1)} s` : '—', p?.burst ? `${fmt(p.burst.lagSeconds, 1)} s` : '—');
  row('burst: peak .ready backlog', fmt(c?.burst?.peakReady), fmt(p?.burst?.peakReady));
  row('archive failures (pg_stat_archiver)', fmt(c?.burst && (c.drain?.failures ?? 0) + c.burst.failures), fmt(p?.burst && (p.drain?.failures ?? 0) + p.burst.failures));
  const archiving = (r: ContenderRun | undefined) => {
    const all = [r?.drain, r?.burst].map((x) => usageOf(x, () => true)).filter((x): x is NonNullable<typeof x> => Boolean(x));
    return all.length ? { rss: Math.max(...all.map((u) => u.rss)), total: Math.max(...all.map((u) => u.total)), cpu: all.reduce((a, u) => a + u.cpu, 0), n: all.reduce((a, u) => a + u.n, 0) } : undefined;
  };
  const ca = archiving(c);
  const pa = archiving(p);
  row('archiving: peak RSS of one process', ca ? `${fmt(ca.rss)} MB` : '—', pa ? `${fmt(pa.rss)} MB` : '—');
  row('archiving: peak RSS of all at once', ca ? `${fmt(ca.total)} MB` : '—', pa ? `${fmt(pa.total)} MB` : '—');
  row('archiving: CPU s (drain + burst, sampled)', ca ? `${fmt(ca.cpu, 1)} (${ca.n} procs)` : '—', pa ? `${fmt(pa.cpu, 1)} (${pa.n} procs)` : '—');
  row('machine CPU s busy (drain + burst, all)', fmt(c?.burst && (c.drain?.machineBusySeconds ?? 0) + c.burst.machineBusySeconds, 1), fmt(p?.burst && (p.drain?.machineBusySeconds ?? 0) + p.burst.machineBusySeconds, 1));
  row('moto_server CPU s (drain + burst)', fmt(c?.burst && (c.drain?.motoCpuSeconds ?? 0) + (c.burst.motoCpuSeconds ?? 0), 1), 'local disk');
  if (args.restore) {
    const restoreCell = (r: ContenderRun | undefined) => (r?.restore ? `${fmt(r.restore.totalSeconds, 1)} s` : r?.restoreUnavailable ? 'n/a' : '—');
    row(`restore base + replay ${args.walMb} MB to a time`, restoreCell(c), restoreCell(p), c?.restore && p?.restore ? `${(p.restore.totalSeconds / c.restore.totalSeconds).toFixed(2)}×` : '');
    row('restore: MB/s of WAL replayed', fmt(c?.restore && c.restore.replayMb / c.restore.totalSeconds), fmt(p?.restore && p.restore.replayMb / p.restore.totalSeconds));
    row('restore: its command alone', c?.restore ? `${fmt(c.restore.commandSeconds, 1)} s` : '—', p?.restore ? `${fmt(p.restore.commandSeconds, 1)} s` : '—');
    row('restore: rows (expected), after target', c?.restore ? `${c.restore.rowsFound} (${c.restore.rowsExpected}), ${c.restore.afterTargetFound}` : '—', p?.restore ? `${p.restore.rowsFound} (${p.restore.rowsExpected}), ${p.restore.afterTargetFound}` : '—');
    const fetch = (r: ContenderRun | undefined, name: string) => usageOf(r?.restore, (l) => (name === 'coldseal' ? !/^coldseal restore$/.test(l) : /archive-get/.test(l)));
    const restoreCmd = (r: ContenderRun | undefined, name: string) => usageOf(r?.restore, (l) => (name === 'coldseal' ? /^coldseal restore$/.test(l) : /restore$/.test(l)));
    const cf = fetch(c, 'coldseal');
    const pf = fetch(p, 'pgBackRest');
    row('restore_command: peak RSS of one process', cf ? `${fmt(cf.rss)} MB` : '—', pf ? `${fmt(pf.rss)} MB` : '—');
    row('restore_command: CPU s (sampled)', cf ? `${fmt(cf.cpu, 1)} (${cf.n} procs)` : '—', pf ? `${fmt(pf.cpu, 1)} (${pf.n} procs)` : '—');
    const cr = restoreCmd(c, 'coldseal');
    const pr = restoreCmd(p, 'pgBackRest');
    row('restore command: peak RSS', cr ? `${fmt(cr.rss)} MB` : '—', pr ? `${fmt(pr.rss)} MB` : '—');
    if (c?.restoreUnavailable) console.log(`  coldseal restore: ${c.restoreUnavailable}`);
  }
  for (const r of runs) {
    if (r.drain) console.log(`  ${r.name} drain backlog (.ready every 2 s): ${backlogLine(r.drain.samples)}`);
    if (r.burst) console.log(`  ${r.name} burst backlog (.ready every 2 s): ${backlogLine(r.burst.samples)}`);
  }
  for (const r of runs) {
    for (const [phase, x] of [['drain', r.drain], ['burst', r.burst], ['restore', r.restore]] as const) {
      if (!x) continue;
      for (const [label, u] of Object.entries(x.usage)) console.log(`  ${r.name} ${phase}: ${label.padEnd(34)} ${String(u.processes).padStart(5)} procs  peak RSS ${u.peakRssMb.toFixed(0)} MB (${u.peakProgram}; all at once ${u.peakTotalRssMb.toFixed(0)} MB)  CPU ${u.cpuSeconds.toFixed(1)} s (${Object.entries(u.cpuByProgram).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')})`);
    }
  }
  // The same figures as a Markdown table, for README's Performance section and docs/benchmarks.md.
  const cell = (r: ContenderRun | undefined, f: (r: ContenderRun) => string | undefined) => (r ? (r.unavailable ? 'n/a' : (f(r) ?? (r.error ? 'failed' : '—'))) : '—');
  const md = (label: string, f: (r: ContenderRun) => string | undefined, r = '') => console.log(`| ${label} | ${cell(c, f)} | ${cell(p, f)} | ${r} |`);
  console.log(`\n| PITR, ${new Date().toISOString().slice(0, 10)}, load ${runs.map((r) => r.load?.[0].toFixed(1)).join('/')} | coldseal | pgBackRest | coldseal / pgBackRest |\n| --- | --- | --- | --- |`);
  if (args.drainMb > 0) md(`drain a ${args.drainMb} MB backlog: MB/s of WAL (segments/s)`, (r) => r.drain && `${fmt(r.drain.mbPerSecond)} (${fmt(r.drain.segmentsPerSecond, 1)})`, `**${ratio(c?.drain?.mbPerSecond, p?.drain?.mbPerSecond)}**`);
  md(`burst of ${args.walMb} MB: archived MB/s (WAL written MB/s)`, (r) => r.burst && `${fmt(r.burst.mbPerSecond)} (${fmt(r.burst.generationMbPerSecond)})`, `**${ratio(c?.burst?.mbPerSecond, p?.burst?.mbPerSecond)}**`);
  md('burst: behind the load at its end, peak .ready', (r) => r.burst && `${fmt(r.burst.lagSeconds, 1)} s, ${r.burst.peakReady}`);
  if (args.restore) md(`restore + replay ${args.walMb} MB to a time`, (r) => (r.restore ? `${fmt(r.restore.totalSeconds, 1)} s` : r.restoreUnavailable ? 'n/a in this build' : undefined), c?.restore && p?.restore ? `**${(p.restore.totalSeconds / c.restore.totalSeconds).toFixed(2)}×** (speed)` : '');
  md('peak RSS: archive_command / restore_command (one process)', (r) => {
    const a = r === c ? ca : pa;
    const f = usageOf(r.restore, (l) => (r === c ? !/^coldseal restore$/.test(l) : /archive-get/.test(l)));
    return `${a ? `${fmt(a.rss)} MB` : '—'} / ${f ? `${fmt(f.rss)} MB` : '—'}`;
  });

  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `pitr-${args.walMb}mb-${new Date().toISOString().replace(/[:.]/g, '')}.json`);
  writeFileSync(file, JSON.stringify({ args, seconds, runs }, null, 2));
  console.log(`\nraw figures: ${file}`);
}
