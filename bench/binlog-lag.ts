import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { binlogFileName, parseBinlogFileName } from '../format/binlog';
import type { MariadbServer } from '../test/harness/mariadb-server';
import { runWorkload, type Probe } from './binlog-load';
import { ProcSampler, type ProcessUsage } from './proc-sampler';

/**
 * Archiving lag under a write burst: the workload at full speed for a while, an archiver run on a
 * simulated timer, and for every probe commit (one each 100 ms from a connection of its own) the
 * time from its commit to the moment the file holding it was listed in the bucket.
 *
 * Which file holds a commit is exact, not guessed from clocks: each probe notes its GTID, and the
 * Gtid_list event at the head of every binary log file is the GTID state at the end of the file
 * before it (https://mariadb.com/kb/en/gtid_list_event/): a commit with sequence s is in the first
 * file whose successor's Gtid_list reaches s.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TimerRun {
  startedAt: number;
  seconds: number;
  error?: string;
}

/**
 * Runs `run` every `intervalSeconds` from its start, as a systemd timer with OnUnitActiveSec does:
 * never two at once; a run that outlasts the interval is followed by the next at once.
 */
export function startTimer(run: () => Promise<unknown>, intervalSeconds: number) {
  const runs: TimerRun[] = [];
  let stopping = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    let next = Date.now();
    while (!stopping) {
      const wait = next - Date.now();
      if (wait > 0) await new Promise<void>((resolve) => ((wake = resolve), setTimeout(resolve, wait)));
      if (stopping) break;
      const startedAt = Date.now();
      try {
        await run();
        runs.push({ startedAt, seconds: (Date.now() - startedAt) / 1000 });
      } catch (error) {
        runs.push({ startedAt, seconds: (Date.now() - startedAt) / 1000, error: (error as Error).message.slice(-500) });
      }
      next = startedAt + intervalSeconds * 1000;
    }
  })();
  return {
    runs,
    async stop(): Promise<void> {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}

/** When each binary log file's object was first listed under `prefix` (polled every `intervalMs`). */
export function watchVault(s3: S3Client, bucket: string, prefix: string, fileOfKey: (key: string) => string | undefined, intervalMs = 250) {
  const seen = new Map<string, number>();
  let stopping = false;
  let failure: string | undefined;
  const loop = (async () => {
    while (!stopping) {
      try {
        let token: string | undefined;
        do {
          const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
          const now = Date.now();
          for (const o of page.Contents ?? []) {
            const file = fileOfKey(o.Key!);
            if (file && !seen.has(file)) seen.set(file, now);
          }
          token = page.NextContinuationToken;
        } while (token);
      } catch (error) {
        failure = (error as Error).message;
      }
      await sleep(intervalMs);
    }
  })();
  return {
    seen,
    failure: () => failure,
    async stop(): Promise<void> {
      stopping = true;
      await loop;
    },
  };
}

/** The GTID sequence number (domain 0, the server's id) of the Gtid_list event at the head of `file`. */
export function headSequence(server: MariadbServer, file: string): bigint {
  const events = server.sql(`SHOW BINLOG EVENTS IN '${file}' LIMIT 6`).split('\n').map((l) => l.split('\t'));
  const list = events.find((e) => e[2] === 'Gtid_list');
  if (!list) throw new Error(`${file} has no Gtid_list event in its first events`);
  const entry = /(?:^|[[,\s])0-\d+-(\d+)/.exec(list[5] ?? '');
  return entry ? BigInt(entry[1]) : 0n;
}

export function currentFile(server: MariadbServer): string {
  return server.sql('SHOW MASTER STATUS').split('\t')[0];
}

export function binlogSizes(server: MariadbServer): Map<string, number> {
  return new Map(server.sql('SHOW BINARY LOGS').split('\n').map((l) => [l.split('\t')[0], Number(l.split('\t')[1])] as [string, number]));
}

export function filesBetween(first: string, last: string): string[] {
  const a = parseBinlogFileName(first);
  const b = parseBinlogFileName(last);
  return Array.from({ length: b.sequence - a.sequence + 1 }, (_, i) => binlogFileName(a.basename, a.sequence + i));
}

const quantile = (sorted: readonly number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

export interface BurstResult {
  contender: string;
  intervalSeconds: number;
  burstSeconds: number;
  transactions: number;
  files: number;
  /** Binary log bytes of the files that hold the burst. */
  bytes: number;
  writeMBps: number;
  /** Bytes of the burst's files over the time from the burst's start to the last one in the bucket. */
  archivedMBps: number;
  /** From the burst's end to its last file in the bucket. */
  catchUpSeconds: number;
  probes: number;
  lagP50: number;
  lagP90: number;
  lagMax: number;
  runs: TimerRun[];
  failedRuns: number;
  runSecondsMedian: number;
  runSecondsMax: number;
  usage?: ProcessUsage;
}

export interface BurstOptions {
  contender: string;
  server: MariadbServer;
  run: () => Promise<unknown>;
  label: (argv: readonly string[]) => string | undefined;
  s3: S3Client;
  bucket: string;
  prefix: string;
  fileOfKey: (key: string) => string | undefined;
  intervalSeconds: number;
  burstSeconds: number;
  connections: number;
  timeoutSeconds: number;
}

export async function archiveBurst(o: BurstOptions): Promise<BurstResult> {
  const vault = watchVault(o.s3, o.bucket, o.prefix, o.fileOfKey);
  const sampler = new ProcSampler(o.label).start();
  const probes: Probe[] = [];
  const firstFile = currentFile(o.server);
  const timer = startTimer(o.run, o.intervalSeconds);
  let lastFile: string;
  let catchUpAt: number;
  let load;
  try {
    const deadline = Date.now() + o.burstSeconds * 1000;
    load = await runWorkload(o.server, { connections: o.connections, stop: () => Date.now() >= deadline, probes, probeMs: 100 });
    lastFile = currentFile(o.server);
    const files = filesBetween(firstFile, lastFile);
    const give = Date.now() + o.timeoutSeconds * 1000;
    while (!files.every((f) => vault.seen.has(f))) {
      if (Date.now() > give) {
        const missing = files.filter((f) => !vault.seen.has(f));
        const lastError = [...timer.runs].reverse().find((r) => r.error)?.error;
        throw new Error(`${o.contender}: ${missing.length} of the burst's ${files.length} binary log files not in the bucket ${o.timeoutSeconds} s after the burst (${missing.slice(0, 3).join(', ')}…)${lastError ? `; last failed run: ${lastError}` : ''}${vault.failure() ? `; listing failed: ${vault.failure()}` : ''}`);
      }
      await sleep(100);
    }
    catchUpAt = Math.max(...files.map((f) => vault.seen.get(f)!));
  } finally {
    await timer.stop();
    await vault.stop();
  }
  const usage = sampler.stop();
  const files = filesBetween(firstFile, lastFile);
  // The Gtid_list at the head of the file after the last one closes the last file's range.
  const heads = [...files, binlogFileName(parseBinlogFileName(lastFile).basename, parseBinlogFileName(lastFile).sequence + 1)].map((f) => headSequence(o.server, f));
  const lags: number[] = [];
  for (const p of probes) {
    const i = heads.findIndex((h, k) => k > 0 && p.seq <= h) - 1;
    if (i < 0) throw new Error(`probe GTID 0-x-${p.seq} is not in ${firstFile}…${lastFile} (heads ${heads.join(', ')})`);
    lags.push((vault.seen.get(files[i])! - p.t) / 1000);
  }
  lags.sort((a, b) => a - b);
  const sizes = binlogSizes(o.server);
  const bytes = files.reduce((sum, f) => sum + (sizes.get(f) ?? 0), 0);
  const runSeconds = timer.runs.map((r) => r.seconds).sort((a, b) => a - b);
  const labelUsage = [...usage.values()];
  return {
    contender: o.contender,
    intervalSeconds: o.intervalSeconds,
    burstSeconds: load.seconds,
    transactions: load.transactions,
    files: files.length,
    bytes,
    writeMBps: bytes / 1e6 / load.seconds,
    archivedMBps: bytes / 1e6 / ((catchUpAt - load.startedAt) / 1000),
    catchUpSeconds: (catchUpAt - load.endedAt) / 1000,
    probes: lags.length,
    lagP50: quantile(lags, 0.5),
    lagP90: quantile(lags, 0.9),
    lagMax: lags[lags.length - 1],
    runs: timer.runs,
    failedRuns: timer.runs.filter((r) => r.error).length,
    runSecondsMedian: quantile(runSeconds, 0.5),
    runSecondsMax: runSeconds[runSeconds.length - 1],
    // One label per contender here: its command (or script) with every child it starts.
    usage: labelUsage.length === 0 ? undefined : labelUsage.reduce((a, b) => ({
      peakRssMb: Math.max(a.peakRssMb, b.peakRssMb),
      peakTotalRssMb: Math.max(a.peakTotalRssMb, b.peakTotalRssMb),
      cpuSeconds: a.cpuSeconds + b.cpuSeconds,
      processes: a.processes + b.processes,
      peakProgram: a.peakRssMb >= b.peakRssMb ? a.peakProgram : b.peakProgram,
      cpuByProgram: Object.fromEntries([...new Set([...Object.keys(a.cpuByProgram), ...Object.keys(b.cpuByProgram)])].map((k) => [k, (a.cpuByProgram[k] ?? 0) + (b.cpuByProgram[k] ?? 0)])),
    })),
  };
}
