import { execFileSync } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMoto } from '../local-system/services';
import { buildAgent } from '../scripts/build-agent';
import { startMariadbServer, type MariadbServer } from '../test/harness/mariadb-server';
import { binlogFileName, parseBinlogFileName } from '../format/binlog';
import { binlogObjectKey, parseKey } from '../format/layout';
import { coldsealBinlog, type AgentRun, type ColdsealBinlog, type LogLine } from './binlog-coldseal';
import { archiveBurst, binlogSizes, currentFile, filesBetween, type BurstResult } from './binlog-lag';
import { createShop, runWorkload, SHOP, SHOP_TABLES } from './binlog-load';
import { dumpPosition, PEER_ARCHIVER, PEER_REPLAY, peerReplayCommand, writePeerArchiver, type PeerArchiver } from './binlog-peer';
import { BENCH_AWS_ENV, benchS3, benchWork, createBenchBucket, requireTools, type BenchWork } from './common';
import { runAsync } from './pitr-cluster';
import { ProcSampler, type ProcessUsage } from './proc-sampler';

/**
 * npm run bench -- --binlog [--binlog-gb 0.25] [--binlog-rounds 2] [--binlog-burst-seconds 60]
 *                           [--binlog-lag-rounds 2] [--binlog-interval 10] [--binlog-connections 4]
 *                           [--binlog-only replay|lag] [--binlog-keep]
 *
 * MySQL/MariaDB point-in-time recovery, coldseal against what people run without it, in one run,
 * on two scratch MariaDB servers (test/harness/mariadb-server.ts): the source (binary log ROW,
 * max_binlog_size 64M so no object passes 100 MB in moto, which holds objects in memory) and the
 * restore target (binary log off). Never the machine's shared server.
 *
 * 1. Replay: a shop schema seeded (~60 MB of dump), coldseal's `backup` and a plain `mariadb-dump
 *    --master-data=2 --gtid` taken with no write between, then `--binlog-gb` of binary logs from
 *    the workload (binlog-load.ts), closed with FLUSH BINARY LOGS and archived by one `coldseal
 *    pitr binlog-push` (and, for comparison, by the peer's cron script to its own prefix). Then,
 *    round by round, contenders alternating: the peer (the plain dump loaded with `mariadb`, then
 *    `mariadb-binlog … | mariadb` of the local files) and coldseal (`restore` of the dump alone,
 *    then `restore --to-latest`, which downloads, verifies, decrypts, decompresses and replays):
 *    each into a new database on the target, every table's CHECKSUM TABLE compared with the
 *    source's. coldseal's restore is split into dump and replay at its log line "dump … is in
 *    <staging>; replaying N binary log file(s)" (without it, by a dump-only restore). Peak RSS of coldseal's processes from /proc (proc-sampler.ts); the restore's
 *    temporary disk is the peak size of the TMPDIR it is given, sampled every 0.25 s.
 * 2. Lag: per contender and round (alternating), a burst of `--binlog-burst-seconds` at full speed with the archiver run
 *    every `--binlog-interval` s (binlog-lag.ts): for probe commits every 100 ms, the time until
 *    the file holding them is in the bucket (p50/p90/max), the MB/s archived, the peak RSS of one run.
 *
 * Speed is a ratio side by side, never a timed test: on 2 shared vCPUs absolute figures move with
 * the load (printed with each figure).
 */
interface Args {
  gb: number;
  rounds: number;
  burstSeconds: number;
  interval: number;
  connections: number;
  lagRounds: number;
  only?: 'replay' | 'lag';
  keep: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { gb: 0.25, rounds: 2, burstSeconds: 60, interval: 10, connections: 4, lagRounds: 2, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--binlog-gb') args.gb = Number(argv[++i]);
    else if (a === '--binlog-rounds') args.rounds = Number(argv[++i]);
    else if (a === '--binlog-burst-seconds') args.burstSeconds = Number(argv[++i]);
    else if (a === '--binlog-lag-rounds') args.lagRounds = Number(argv[++i]);
    else if (a === '--binlog-interval') args.interval = Number(argv[++i]);
    else if (a === '--binlog-connections') args.connections = Number(argv[++i]);
    else if (a === '--binlog-only' && (argv[i + 1] === 'replay' || argv[i + 1] === 'lag')) args.only = argv[++i] as 'replay' | 'lag';
    else if (a === '--binlog-keep') args.keep = true;
    else throw new Error(`unknown argument ${a} (use --binlog --binlog-gb N --binlog-rounds N --binlog-burst-seconds N --binlog-lag-rounds N --binlog-interval N --binlog-connections N --binlog-only replay|lag --binlog-keep)`);
  }
  if (!(args.gb > 0) || !(args.rounds >= 1) || !(args.burstSeconds >= 5) || !(args.interval >= 1) || !(args.connections >= 1) || !(args.lagRounds >= 1)) {
    throw new Error('--binlog-gb must be positive, --binlog-rounds, --binlog-lag-rounds and --binlog-connections at least 1, --binlog-burst-seconds at least 5, --binlog-interval at least 1');
  }
  return args;
}

const loadAverage = () => Number(readFileSync('/proc/loadavg', 'latin1').split(' ')[0]);
const mb = (bytes: number) => bytes / 1e6;
const fmt = (n: number | undefined, digits = 1) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits));

/** Bytes of the files under `dir` now (a file removed while walking counts as gone). */
function dirBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    try {
      const s = lstatSync(join(dir, name));
      total += s.isDirectory() ? dirBytes(join(dir, name)) : s.size;
    } catch {
      // removed meanwhile
    }
  }
  return total;
}

/** The peak size of `dir` while it is watched. */
function watchDiskUse(dir: string, intervalMs = 250) {
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, dirBytes(dir))), intervalMs);
  return {
    stop(): number {
      clearInterval(timer);
      return Math.max(peak, dirBytes(dir));
    },
  };
}

function checksums(server: MariadbServer, database: string): Record<string, string> {
  const rows = server.sql(`CHECKSUM TABLE ${SHOP_TABLES.map((t) => `\`${database}\`.${t}`).join(', ')}`).split('\n');
  return Object.fromEntries(rows.map((r) => [r.split('\t')[0].split('.')[1], r.split('\t')[1]]));
}

function sameChecksums(expected: Record<string, string>, found: Record<string, string>): string | undefined {
  const wrong = SHOP_TABLES.filter((t) => expected[t] !== found[t]);
  return wrong.length ? `checksums differ from the source's: ${wrong.map((t) => `${t} ${found[t]} ≠ ${expected[t]}`).join(', ')}` : undefined;
}

interface Timed {
  seconds: number;
  error?: string;
}

async function timedRun(what: () => Promise<unknown>): Promise<Timed> {
  const started = Date.now();
  try {
    await what();
    return { seconds: (Date.now() - started) / 1000 };
  } catch (error) {
    return { seconds: (Date.now() - started) / 1000, error: (error as Error).message.slice(-1500) };
  }
}

interface ReplayRound {
  round: number;
  load: [number, number];
  peer: { dumpSeconds: number; replaySeconds: number; usage?: ProcessUsage; error?: string };
  coldseal?: { dumpSeconds: number; totalSeconds: number; replaySeconds: number; split: 'log' | 'dump-only restore'; log: LogLine[]; peakRssMb: number; peakTreeRssMb: number; peakProgram: string; cpuByProgram: Record<string, number>; tmpBytes: number; error?: string };
}

interface ReplaySetup {
  binlogBytes: number;
  transactions: number;
  files: string[];
  startPosition: number;
  workloadSeconds: number;
  dumpBytes: number;
  backlog: { coldseal?: Timed & { usage?: ProcessUsage }; peer: Timed & { usage?: ProcessUsage } };
}

function usageOf(sampler: ProcSampler): ProcessUsage | undefined {
  const all = [...sampler.stop().values()];
  if (all.length === 0) return undefined;
  return all.reduce((a, b) => ({
    peakRssMb: Math.max(a.peakRssMb, b.peakRssMb),
    peakTotalRssMb: Math.max(a.peakTotalRssMb, b.peakTotalRssMb),
    cpuSeconds: a.cpuSeconds + b.cpuSeconds,
    processes: a.processes + b.processes,
    peakProgram: a.peakRssMb >= b.peakRssMb ? a.peakProgram : b.peakProgram,
    cpuByProgram: Object.fromEntries([...new Set([...Object.keys(a.cpuByProgram), ...Object.keys(b.cpuByProgram)])].map((k) => [k, (a.cpuByProgram[k] ?? 0) + (b.cpuByProgram[k] ?? 0)])),
  }));
}

/** restore's log line between loading the dump and replaying the binary logs (restore/binlog/run.ts). */
const REPLAY_STARTS = /; replaying \d+ binary log file/;

const peerLabel = (peer: PeerArchiver) => (argv: readonly string[]) => (argv.includes(peer.script) ? 'peer archiver' : undefined);

async function replayPhase(args: Args, work: BenchWork, source: MariadbServer, target: MariadbServer, cs: ColdsealBinlog, peer: PeerArchiver, notMeasured: string[]): Promise<{ setup: ReplaySetup; rounds: ReplayRound[] }> {
  let csReady = !cs.pushUnavailable && !cs.restoreUnavailable;
  if (!csReady) notMeasured.push(`replay through coldseal: ${cs.pushUnavailable ?? cs.restoreUnavailable}`);
  const csFailed = (what: string, error: string) => {
    console.log(`${what} failed: ${error}`);
    notMeasured.push(`replay through coldseal: ${what} failed: ${error}`);
    csReady = false;
  };
  if (csReady) {
    console.log('coldseal backup (the dump that records its binlog coordinates)…');
    const t = await timedRun(() => cs.backup());
    if (t.error) csFailed('coldseal backup', t.error);
  }
  const dumpFile = join(work.dir, 'peer-dump.sql');
  execFileSync('sh', ['-c', `mariadb-dump --no-defaults -uroot --socket=${source.socket} --single-transaction --master-data=2 --gtid ${SHOP} > ${dumpFile}`]);
  const head = Buffer.alloc(8192);
  const fd = openSync(dumpFile, 'r');
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const start = dumpPosition(head.toString('latin1'));
  const seqStart = BigInt(source.sql('SELECT @@gtid_binlog_pos').split('-')[2] ?? '0');
  const sizeSince = () => {
    const sizes = binlogSizes(source);
    return filesBetween(start.file, currentFile(source)).reduce((sum, f) => sum + (sizes.get(f) ?? 0), 0) - start.position;
  };
  console.log(`workload: ${args.gb} GB of binary log from ${start.file}:${start.position}, ${args.connections} connections…`);
  let checked = Date.now();
  let written = 0;
  const load = await runWorkload(source, {
    connections: args.connections,
    stop: () => {
      if (Date.now() - checked > 500) {
        checked = Date.now();
        written = sizeSince();
      }
      return written >= args.gb * 1e9;
    },
  });
  source.sql('FLUSH BINARY LOGS');
  const files = filesBetween(start.file, currentFile(source)).slice(0, -1);
  const sizes = binlogSizes(source);
  const binlogBytes = files.reduce((sum, f) => sum + sizes.get(f)!, 0) - start.position;
  const transactions = Number(BigInt(source.sql('SELECT @@gtid_binlog_pos').split('-')[2]) - seqStart);
  console.log(`workload: ${fmt(mb(binlogBytes), 0)} MB of binary log in ${files.length} files, ${transactions} transactions in ${fmt(load.seconds)} s (${fmt(mb(binlogBytes) / load.seconds)} MB/s, ${fmt(transactions / load.seconds, 0)} tx/s)`);
  const reference = checksums(source, SHOP);

  // The backlog archived in one go: coldseal's push (needed for its restore), then the peer's script to its own prefix.
  const backlog: ReplaySetup['backlog'] = { peer: { seconds: 0 } };
  if (csReady) {
    const sampler = new ProcSampler(cs.label).start();
    const t = await timedRun(() => cs.push());
    backlog.coldseal = { ...t, usage: usageOf(sampler) };
    console.log(`backlog: coldseal pitr binlog-push ${fmt(mb(binlogBytes), 0)} MB in ${fmt(t.seconds)} s (${fmt(mb(binlogBytes) / t.seconds)} MB/s), peak RSS ${fmt(backlog.coldseal.usage?.peakRssMb, 0)} MB${t.error ? `; FAILED: ${t.error}` : ''}`);
    if (t.error) csFailed('coldseal pitr binlog-push', t.error);
  }
  // The peer starts after the file before the dump's (its state file), as if it had run since then.
  const first = parseBinlogFileName(files[0]);
  writeFileSync(peer.stateFile, first.sequence > 1 ? `${binlogFileName(first.basename, first.sequence - 1)}\n` : '');
  {
    const sampler = new ProcSampler(peerLabel(peer)).start();
    const t = await timedRun(() => runAsync('bash', [peer.script], { ...process.env, ...BENCH_AWS_ENV }));
    backlog.peer = { ...t, usage: usageOf(sampler) };
    console.log(`backlog: peer cron script ${fmt(mb(binlogBytes), 0)} MB in ${fmt(t.seconds)} s (${fmt(mb(binlogBytes) / t.seconds)} MB/s), peak RSS ${fmt(backlog.peer.usage?.peakRssMb, 0)} MB${t.error ? `; FAILED: ${t.error}` : ''}`);
  }

  const rounds: ReplayRound[] = [];
  const paths = files.map((f) => join(source.binlogDir, f));
  for (let round = 1; round <= args.rounds; round++) {
    const loadBefore = loadAverage();
    const entry: ReplayRound = { round, load: [loadBefore, 0], peer: { dumpSeconds: 0, replaySeconds: 0 } };
    const runPeer = async () => {
      const db = `peer_r${round}`;
      target.sql(`CREATE DATABASE ${db}`);
      const dump = await timedRun(() => runAsync('bash', ['-c', `mariadb --no-defaults -uroot -h127.0.0.1 -P${target.port} ${db} < ${dumpFile}`]));
      const command = peerReplayCommand({ files: paths, startPosition: start.position, from: SHOP, to: db, port: target.port });
      const sampler = new ProcSampler((argv) => (argv.includes(command) ? 'peer replay' : undefined)).start();
      const replay = dump.error ? { seconds: 0 } : await timedRun(() => runAsync('bash', ['-o', 'pipefail', '-c', command]));
      const usage = usageOf(sampler);
      const error = dump.error ?? replay.error ?? sameChecksums(reference, checksums(target, db));
      target.sql(`DROP DATABASE ${db}`);
      entry.peer = { dumpSeconds: dump.seconds, replaySeconds: replay.seconds, usage, error };
      console.log(`round ${round}  peer      dump ${fmt(dump.seconds)} s, replay ${fmt(replay.seconds)} s: ${fmt(mb(binlogBytes) / replay.seconds)} MB/s, ${fmt(transactions / replay.seconds, 0)} tx/s; peak RSS ${fmt(usage?.peakRssMb, 0)} MB (${usage?.peakProgram ?? '—'})${error ? `; FAILED: ${error}` : ''}`);
    };
    const runColdseal = async () => {
      const db = `cs_r${round}`;
      const tmp = join(work.dir, `cs-tmp-${round}`);
      mkdirSync(tmp, { recursive: true });
      const sampler = new ProcSampler(cs.label).start();
      const disk = watchDiskUse(tmp);
      const started = Date.now();
      let run: AgentRun | undefined;
      const total = await timedRun(async () => (run = await cs.restore(db, true, tmp)));
      const tmpBytes = disk.stop();
      const usage = usageOf(sampler);
      let error = total.error ?? sameChecksums(reference, checksums(target, db));
      target.sql(`DROP DATABASE IF EXISTS ${db}`);
      // Where the dump ends and the replay begins: restore's own log line, or else a dump-only restore of the same dump.
      const boundary = run?.log.find((l) => REPLAY_STARTS.test(l.message));
      let dumpSeconds: number;
      let split: 'log' | 'dump-only restore';
      if (boundary) {
        dumpSeconds = (Date.parse(boundary.time) - started) / 1000;
        split = 'log';
      } else {
        const dumpDb = `cs_dump_r${round}`;
        const dump = await timedRun(() => cs.restore(dumpDb, false, tmp));
        target.sql(`DROP DATABASE IF EXISTS ${dumpDb}`);
        error ??= dump.error;
        dumpSeconds = dump.seconds;
        split = 'dump-only restore';
      }
      rmSync(tmp, { recursive: true, force: true });
      entry.coldseal = {
        dumpSeconds,
        totalSeconds: total.seconds,
        replaySeconds: total.seconds - dumpSeconds,
        split,
        peakRssMb: usage?.peakRssMb ?? 0,
        peakTreeRssMb: usage?.peakTotalRssMb ?? 0,
        peakProgram: usage?.peakProgram ?? '',
        cpuByProgram: usage?.cpuByProgram ?? {},
        tmpBytes,
        error,
        // Where the time went, file by file, for the raw figures.
        log: run?.log.filter((l) => l.level !== 'debug') ?? [],
      };
      const c = entry.coldseal;
      if (error) console.log(`round ${round}  coldseal  dump + replay ${fmt(c.totalSeconds)} s; FAILED: ${error}`);
      else console.log(`round ${round}  coldseal  dump + replay ${fmt(c.totalSeconds)} s, of which dump ${fmt(c.dumpSeconds)} s (${split}), replay ${fmt(c.replaySeconds)} s: ${fmt(mb(binlogBytes) / c.replaySeconds)} MB/s, ${fmt(transactions / c.replaySeconds, 0)} tx/s; peak RSS ${fmt(c.peakRssMb, 0)} MB (${c.peakProgram}), tree ${fmt(c.peakTreeRssMb, 0)} MB, temp disk ${fmt(mb(tmpBytes), 0)} MB`);
    };
    const order = csReady ? (round % 2 ? [runPeer, runColdseal] : [runColdseal, runPeer]) : [runPeer];
    for (const run of order) await run();
    entry.load[1] = loadAverage();
    rounds.push(entry);
  }
  if (csReady && rounds.every((r) => r.coldseal?.error)) notMeasured.push(`replay through coldseal: every round failed (${rounds[0].coldseal?.error})`);
  return { setup: { binlogBytes, transactions, files, startPosition: start.position, workloadSeconds: load.seconds, dumpBytes: Number(execFileSync('stat', ['-c', '%s', dumpFile]).toString()), backlog }, rounds };
}

type LagRun = BurstResult & { round: number };

async function lagPhase(args: Args, source: MariadbServer, cs: ColdsealBinlog, peer: PeerArchiver, endpoint: string, notMeasured: string[]): Promise<LagRun[]> {
  const s3 = benchS3(endpoint);
  const results: LagRun[] = [];
  const common = { server: source, s3, bucket: 'bench', intervalSeconds: args.interval, burstSeconds: args.burstSeconds, connections: args.connections, timeoutSeconds: Math.max(300, args.interval * 10) };
  const contenders: { name: string; prepare: () => Promise<void>; burst: () => Promise<BurstResult> }[] = [];
  if (cs.pushUnavailable) notMeasured.push(`archiving lag of coldseal: ${cs.pushUnavailable}`);
  else {
    contenders.push({
      name: 'coldseal',
      // Everything closed before the burst archived first, outside the figures.
      prepare: async () => {
        source.sql('FLUSH BINARY LOGS');
        await cs.push();
      },
      burst: () =>
        archiveBurst({
          ...common,
          contender: 'coldseal pitr binlog-push',
          run: () => cs.push(),
          label: cs.label,
          prefix: binlogObjectKey('bench', 'bench', 'shop', 'x.000001').replace(/x\.000001\.pgp$/, ''),
          fileOfKey: (key) => {
            const parsed = parseKey(key);
            return parsed?.kind === 'binlog' ? parsed.binlogFile : undefined;
          },
        }),
    });
  }
  contenders.push({
    name: 'peer',
    // The peer starts after the last closed file, as if it had run all along.
    prepare: async () => {
      source.sql('FLUSH BINARY LOGS');
      const sizes = [...binlogSizes(source).keys()];
      writeFileSync(peer.stateFile, `${sizes[sizes.length - 2]}\n`);
    },
    burst: () =>
      archiveBurst({
        ...common,
        contender: 'peer cron script',
        run: () => runAsync('bash', [peer.script], { ...process.env, ...BENCH_AWS_ENV }),
        label: peerLabel(peer),
        prefix: peer.prefix,
        fileOfKey: (key) => (key.startsWith(peer.prefix) && key.endsWith('.gz.gpg') ? key.slice(peer.prefix.length, -'.gz.gpg'.length) : undefined),
      }),
  });
  for (let round = 1; round <= args.lagRounds; round++) for (const c of round % 2 ? contenders : [...contenders].reverse()) {
    await c.prepare();
    const loadBefore = loadAverage();
    console.log(`\nround ${round}: burst of ${args.burstSeconds} s, ${c.name} every ${args.interval} s (load ${loadBefore.toFixed(1)})…`);
    try {
      const r = { ...(await c.burst()), round };
      results.push(r);
      console.log(
        `${r.contender}: ${r.files} files, ${fmt(mb(r.bytes), 0)} MB written at ${fmt(r.writeMBps)} MB/s (${fmt(r.transactions / r.burstSeconds, 0)} tx/s); archived ${fmt(r.archivedMBps)} MB/s, caught up ${fmt(r.catchUpSeconds)} s after the burst; lag p50 ${fmt(r.lagP50)} s, p90 ${fmt(r.lagP90)} s, max ${fmt(r.lagMax)} s (${r.probes} probes); ${r.runs.length} runs (${r.failedRuns} failed), median ${fmt(r.runSecondsMedian)} s, max ${fmt(r.runSecondsMax)} s; peak RSS ${fmt(r.usage?.peakRssMb, 0)} MB (${r.usage?.peakProgram ?? '—'}), tree ${fmt(r.usage?.peakTotalRssMb, 0)} MB; load ${loadBefore.toFixed(1)} → ${loadAverage().toFixed(1)}`,
      );
    } catch (error) {
      console.log(`${c.name} burst failed: ${(error as Error).message}`);
      notMeasured.push(`archiving lag of ${c.name}: ${(error as Error).message.slice(0, 300)}`);
    }
  }
  return results;
}

const median = (values: readonly number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
};

export async function binlogBench(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv);
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  requireTools(['mariadb', 'mariadb-binlog', 'mariadb-dump', 'gzip', 'gpg', 'aws', 'stat'], 'the binary log benchmark');
  // The bundle first: a build that fails leaves no work directory or moto behind.
  const bundle = await buildAgent();
  const work = await benchWork('coldseal-binlogbench-', { gpgSecretKey: false });
  const moto = await startMoto();
  const env = { ...process.env, ...BENCH_AWS_ENV };
  const notMeasured: string[] = [];
  const started = Date.now();
  let source: MariadbServer | undefined;
  let target: MariadbServer | undefined;
  let replay: Awaited<ReturnType<typeof replayPhase>> | undefined;
  let lag: LagRun[] = [];
  try {
    await createBenchBucket(moto.endpoint);
    // max_binlog_size 64M: no object over 100 MB in moto. A week of logs kept: nothing purged under the bench.
    source = await startMariadbServer({ settings: { 'max-binlog-size': '64M', 'binlog-expire-logs-seconds': '604800', 'innodb-buffer-pool-size': '512M', 'innodb-log-file-size': '256M' } });
    target = await startMariadbServer({ binlog: false, settings: { 'innodb-buffer-pool-size': '1G', 'innodb-log-file-size': '512M' } });
    createShop(source);
    source.sql('FLUSH BINARY LOGS');
    const cs = coldsealBinlog({ bundle, work, endpoint: moto.endpoint, bucket: 'bench', socket: source.socket, targetPort: target.port, env });
    const peer = writePeerArchiver(work, { socket: source.socket, binlogDir: source.binlogDir, endpoint: moto.endpoint, bucket: 'bench', name: 'peer' });
    if (cs.pushUnavailable) console.log(`coldseal: ${cs.pushUnavailable}`);
    if (cs.restoreUnavailable) console.log(`coldseal: ${cs.restoreUnavailable}`);
    if (args.only !== 'lag') replay = await replayPhase(args, work, source, target, cs, peer, notMeasured);
    if (args.only !== 'replay') lag = await lagPhase(args, source, cs, peer, moto.endpoint, notMeasured);
  } finally {
    await target?.stop();
    await source?.stop();
    await moto.stop();
    if (!args.keep) rmSync(work.dir, { recursive: true, force: true });
    else console.log(`work directory kept: ${work.dir}`);
  }
  report(args, replay, lag, notMeasured, (Date.now() - started) / 1000);
}

function report(args: Args, replay: Awaited<ReturnType<typeof replayPhase>> | undefined, lag: LagRun[], notMeasured: string[], seconds: number): void {
  console.log(`\n── summary (${(seconds / 60).toFixed(1)} min) ──`);
  const lines: string[] = [];
  // A | inside a cell (the peers' pipelines) would end it.
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const row = (name: string, value: string) => lines.push(`| ${cell(name)} | ${cell(value)} |`);
  if (replay) {
    const { setup, rounds } = replay;
    const binMb = mb(setup.binlogBytes);
    const ok = rounds.filter((r) => !r.peer.error);
    const peerReplay = median(ok.map((r) => r.peer.replaySeconds));
    const peerDump = median(ok.map((r) => r.peer.dumpSeconds));
    row('binary logs replayed', `${fmt(binMb, 0)} MB in ${setup.files.length} files, ${setup.transactions} transactions (workload ${fmt(binMb / setup.workloadSeconds)} MB/s, ${fmt(setup.transactions / setup.workloadSeconds, 0)} tx/s); dump ${fmt(mb(setup.dumpBytes), 0)} MB`);
    row(`peer: ${PEER_REPLAY}`, `${fmt(binMb / peerReplay)} MB/s, ${fmt(setup.transactions / peerReplay, 0)} tx/s (replay ${fmt(peerReplay)} s, dump load ${fmt(peerDump)} s; medians of ${ok.length})`);
    const cs = rounds.map((r) => r.coldseal).filter((c): c is NonNullable<ReplayRound['coldseal']> => c !== undefined && !c.error);
    if (cs.length) {
      const csReplay = median(cs.map((c) => c.replaySeconds));
      const csTotal = median(cs.map((c) => c.totalSeconds));
      row('coldseal restore --to-latest', `${fmt(binMb / csReplay)} MB/s, ${fmt(setup.transactions / csReplay, 0)} tx/s (dump + replay ${fmt(csTotal)} s, of which dump ${fmt(median(cs.map((c) => c.dumpSeconds)))} s, split by ${cs[0].split}; medians of ${cs.length})`);
      // The ratio of each round (both contenders under the same load), then their median.
      const both = rounds.filter((r) => !r.peer.error && r.coldseal && !r.coldseal.error);
      const ratios = (f: (r: ReplayRound) => number) => both.map(f);
      const replayRatios = ratios((r) => r.peer.replaySeconds / r.coldseal!.replaySeconds);
      const totalRatios = ratios((r) => (r.peer.dumpSeconds + r.peer.replaySeconds) / r.coldseal!.totalSeconds);
      const span = (v: number[]) => `**${fmt(median(v), 2)}×** (rounds: ${v.map((x) => `${fmt(x, 2)}×`).join(', ')})`;
      row('replay alone, coldseal / peer (goal ≥ 0.9×)', span(replayRatios));
      row('dump + replay, coldseal / peer', span(totalRatios));
      const peerCpu: Record<string, number> = ok[ok.length - 1]?.peer.usage?.cpuByProgram ?? {};
      row('peer replay CPU-s by program (last round)', Object.entries(peerCpu).map(([p, v]) => `${p} ${v.toFixed(1)}`).join(', '));
      row('coldseal restore: peak RSS one process / tree; temp disk', `${fmt(Math.max(...cs.map((c) => c.peakRssMb)), 0)} MB (${cs[0].peakProgram}) / ${fmt(Math.max(...cs.map((c) => c.peakTreeRssMb)), 0)} MB; ${fmt(mb(Math.max(...cs.map((c) => c.tmpBytes))), 0)} MB`);
      row('coldseal restore CPU-s by program (last round)', Object.entries(cs[cs.length - 1].cpuByProgram).map(([p, s]) => `${p} ${s.toFixed(1)}`).join(', '));
    }
    for (const r of rounds) {
      const failed = [r.peer.error && `peer: ${r.peer.error}`, r.coldseal?.error && `coldseal: ${r.coldseal.error}`].filter(Boolean);
      row(`round ${r.round} (load ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)})`, `peer ${fmt(r.peer.dumpSeconds)} + ${fmt(r.peer.replaySeconds)} s${r.coldseal ? `; coldseal ${fmt(r.coldseal.dumpSeconds)} + ${fmt(r.coldseal.replaySeconds)} s` : ''}${failed.length ? `; FAILED ${failed.join('; ')}` : ''}`);
    }
    const b = setup.backlog;
    row('archive the backlog in one run, MB/s (peak RSS)', `${b.coldseal ? `coldseal ${fmt(binMb / b.coldseal.seconds)} (${fmt(b.coldseal.usage?.peakRssMb, 0)} MB)` : 'coldseal —'} / peer ${fmt(binMb / b.peer.seconds)} (${fmt(b.peer.usage?.peakRssMb, 0)} MB)${b.peer.error ? ` peer FAILED: ${b.peer.error}` : ''}`);
  }
  for (const r of lag) {
    row(
      `lag, round ${r.round}, ${r.contender} every ${r.intervalSeconds} s`,
      `p50 ${fmt(r.lagP50)} s, p90 ${fmt(r.lagP90)} s, max ${fmt(r.lagMax)} s; ${fmt(r.archivedMBps)} MB/s archived (written ${fmt(r.writeMBps)}); caught up ${fmt(r.catchUpSeconds)} s after a ${fmt(r.burstSeconds, 0)} s burst; run median ${fmt(r.runSecondsMedian)} s, max ${fmt(r.runSecondsMax)} s; peak RSS ${fmt(r.usage?.peakRssMb, 0)} MB (${r.usage?.peakProgram ?? '—'}), tree ${fmt(r.usage?.peakTotalRssMb, 0)} MB`,
    );
  }
  const lagOf = (contender: string) => lag.filter((r) => r.contender === contender);
  const lagSummary = (runs: LagRun[]) =>
    runs.length ? `p50 ${fmt(median(runs.map((r) => r.lagP50)))} s, max ${fmt(Math.max(...runs.map((r) => r.lagMax)))} s, ${fmt(median(runs.map((r) => r.archivedMBps)))} MB/s archived (written ${fmt(median(runs.map((r) => r.writeMBps)))}), push peak RSS ${fmt(Math.max(...runs.map((r) => r.usage?.peakRssMb ?? 0)), 0)} MB` : '—';
  if (lag.length) {
    row(`lag over ${args.lagRounds} round(s), every ${args.interval} s: coldseal`, lagSummary(lagOf('coldseal pitr binlog-push')));
    row(`lag over ${args.lagRounds} round(s), every ${args.interval} s: peer`, lagSummary(lagOf('peer cron script')));
    row('archiving peer', PEER_ARCHIVER);
  }
  for (const n of notMeasured) row('NOT MEASURED', n);
  console.log(['| figure | value |', '| --- | --- |', ...lines].join('\n'));
  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `binlog-${args.gb}gb-${new Date().toISOString().replace(/[:.]/g, '')}.json`);
  writeFileSync(file, JSON.stringify({ args, seconds, replay, lag, notMeasured }, null, 2));
  console.log(`\nraw figures: ${file}`);
}
