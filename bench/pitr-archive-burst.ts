import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMoto } from '../local-system/services';
import { buildAgent } from '../scripts/build-agent';
import { createAgentSandbox } from '../test/harness/agent';
import { startPgCluster } from '../test/harness/pg-cluster';

/**
 * Archiving throughput of `coldseal pitr archive-push` (the bundle hosts run, through the wrapper
 * `pitr setup` installs) on a scratch PostgreSQL into moto:
 *  A. drain: a backlog of N ready segments (archiving paused while they were written), then
 *     archiving on: segments/s, MB/s, Node starts per segment; with push-ahead and without
 *     (pushAhead 1: one Node start per segment, the cap this design removes);
 *  B. burst: rows + pg_switch_wal() as fast as one session can, archiving on: the .ready backlog
 *     over time and how long after the last switch the archive is complete.
 * Usage: npx tsx bench/pitr-archive-burst.ts [segments]
 */
async function main(): Promise<void> {
  const segmentsWanted = Number(process.argv[2] ?? 40);
  const moto = await startMoto();
  process.env.COLDSEAL_TEST_MOTO_ENDPOINT = moto.endpoint;
  const bundle = await buildAgent();
  const sandbox = await createAgentSandbox();
  chmodSync(sandbox.dir, 0o711);
  chownSync(sandbox.signing.privateFile, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const cluster = await startPgCluster({ env: { ...sandbox.account.env }, settings: { checkpoint_timeout: '1h', max_wal_size: '8GB' } });
  const sql = (q: string) => cluster.psql('postgres', q);
  const runBundle = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [bundle, ...args], { env: { ...process.env, ...sandbox.account.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')}: ${code}\n${out}`))));
    });
  const configFor = (pushAhead: number) =>
    sandbox.writeConfig(
      sandbox.config({ sources: [{ name: 'pg', type: 'postgres', host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, pushAhead, concurrency: 8 } }] }),
    );
  const nodeStarts = () => (readFileSync(cluster.logFile, 'utf8').match(/"message":"archive-push done"/g) ?? []).length;
  const readyCount = () => readdirSync(join(cluster.dataDir, 'pg_wal', 'archive_status')).filter((n) => n.endsWith('.ready')).length;
  const lastArchived = () => sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
  const writeAndSwitch = () => {
    sql("insert into t select g, repeat('x', 200) from generate_series(1, 50000) g");
    return sql('select pg_walfile_name(pg_switch_wal())');
  };
  const waitFor = async (segment: string) => {
    while (lastArchived() < segment) await new Promise((r) => setTimeout(r, 50));
  };
  try {
    const main = configFor(64);
    await runBundle(['pitr', 'setup', '--source', 'pg', '--config', main, '--apply', '--install-dir', join(sandbox.dir, 'bin'), '--state-dir', join(sandbox.dir, 'state')]);
    cluster.restart();
    const command = sql('show archive_command');
    sql('create table t (id int, v text)');
    await waitFor(writeAndSwitch());

    const drain = async (label: string, pushAhead: number, count: number) => {
      // The wrapper's configuration decides pushAhead: point it at another file for this run.
      const config = configFor(pushAhead);
      sql("alter system set archive_command = ''");
      sql('select pg_reload_conf()');
      await new Promise((r) => setTimeout(r, 500));
      let last = '';
      for (let i = 0; i < count; i++) last = writeAndSwitch();
      const backlog = readyCount();
      execFileSync('sed', ['-i', `s#--config [^ ]*#--config ${config}#`, join(sandbox.dir, 'bin', 'archive-pg.sh')]);
      const starts = nodeStarts();
      const t0 = Date.now();
      sql(`alter system set archive_command = '${command.replace(/'/g, "''")}'`);
      sql('select pg_reload_conf()');
      await waitFor(last);
      const seconds = (Date.now() - t0) / 1000;
      const n = nodeStarts() - starts;
      const calls = readFileSync(cluster.logFile, 'utf8').split('\n').filter((l) => l.includes('"message":"archive-push done"')).slice(-n);
      const peak = Math.max(...calls.map((l) => (JSON.parse(l) as { maxRssMiB: number }).maxRssMiB));
      console.log(`${label}: ${backlog} ready segments archived in ${seconds.toFixed(1)} s = ${(backlog / seconds).toFixed(1)} segments/s, ${((backlog * 16) / seconds).toFixed(0)} MB/s of WAL; ${n} Node starts (${(n / backlog).toFixed(2)} per segment); agent peak RSS ${peak} MiB`);
    };
    await drain('drain, pushAhead 64', 64, segmentsWanted);
    await drain('drain, pushAhead 1 (no push-ahead)', 1, Math.min(15, segmentsWanted));
    execFileSync('sed', ['-i', `s#--config [^ ]*#--config ${main}#`, join(sandbox.dir, 'bin', 'archive-pg.sh')]);

    // B: burst with archiving on.
    const starts = nodeStarts();
    // psql runs synchronously here: the backlog is sampled after each switch and while waiting.
    const samples: number[] = [];
    const t0 = Date.now();
    let last = '';
    for (let i = 0; i < segmentsWanted; i++) {
      last = writeAndSwitch();
      samples.push(readyCount());
    }
    const generated = (Date.now() - t0) / 1000;
    while (lastArchived() < last) {
      samples.push(readyCount());
      await new Promise((r) => setTimeout(r, 250));
    }
    const total = (Date.now() - t0) / 1000;
    const n = nodeStarts() - starts;
    console.log(`burst: ${segmentsWanted} segments generated in ${generated.toFixed(1)} s (${(segmentsWanted / generated).toFixed(1)} segments/s), all archived ${(total - generated).toFixed(1)} s after the last switch; ${n} Node starts (${(n / segmentsWanted).toFixed(2)} per segment); .ready backlog after each switch, then every 0.25 s: ${samples.join(' ')}`);
  } finally {
    cluster.stop();
    await moto.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
