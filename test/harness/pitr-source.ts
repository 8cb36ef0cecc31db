import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import type { AgentConfigInput } from '../../format/agent-config';
import type { BaseBackup } from '../../format/manifest';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { buildAgent } from '../../scripts/build-agent';
import { createAgentSandbox, readableLog, type AgentSandbox, type CliResult } from './agent';
import { startPgCluster, type PgCluster } from './pg-cluster';

/**
 * A PITR source for restore tests: a scratch PostgreSQL 15 cluster whose archive_command is the
 * agent's own (set by `pitr setup --apply`), one base backup taken by `backup`, and the agent run
 * as hosts run it, the bundle: PostgreSQL starts it for every WAL file it archives or restores,
 * and from source (tsx) each start costs seconds on this machine.
 */
export interface PitrSource {
  readonly sandbox: AgentSandbox;
  readonly cluster: PgCluster;
  readonly configPath: string;
  /** A 0711 directory for restored data directories (the postgres user must reach inside). */
  readonly scratch: string;
  cli(args: string[]): Promise<CliResult>;
  /** Inserts one row into t in its own transaction, then switches WAL; returns the LSN after the commit. */
  writeRow(id: number, on?: PgEndpoint): string;
  /** Waits until every switched segment of `on` is archived. */
  waitArchived(on?: PgEndpoint): Promise<void>;
  /** "YYYY-MM-DD HH:MM:SS.ffffff+00" from the server, between two waits. */
  timeNow(on?: PgEndpoint): Promise<string>;
  baseBackup(): Promise<BaseBackup>;
  /** `restore --source pg --key … --data-dir <scratch>/<name> …`; stops what it started at close(). */
  restore(name: string, ...args: string[]): Promise<RestoreRun>;
  close(): void;
}

/** A server to run SQL on: the source cluster, or a restored copy. */
export interface PgEndpoint {
  psql(sql: string): string;
}

export interface RestoreRun {
  readonly result: CliResult;
  readonly dataDir: string;
  readonly port?: string;
  readonly stop?: string;
  readonly server: PgEndpoint;
  rows(): number[];
}


export async function startPitrSource(options: { readonly configOutsideDataDir?: boolean } = {}): Promise<PitrSource> {
  const sandbox = await createAgentSandbox();
  const bundle = join(sandbox.dir, 'coldseal-agent.js');
  copyFileSync(await buildAgent(), bundle);
  // archive_command and restore_command run as the server's user: they reach the configuration and the keys.
  chmodSync(sandbox.dir, 0o711);
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  chownSync(sandbox.signing.privateFile, uid, gid);
  const cluster = await startPgCluster({ env: { ...sandbox.account.env, NODE_NO_WARNINGS: '1' }, settings: { checkpoint_timeout: '1h' }, configOutsideDataDir: options.configOutsideDataDir });
  const config: AgentConfigInput = sandbox.config({
    sources: [{ name: 'pg', type: 'postgres', databases: ['postgres'], host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, archiveTimeoutSeconds: 60, waitForArchiveMinutes: 2 } }],
  });
  const configPath = sandbox.writeConfig(config);
  const scratch = mkdtempSync(join(tmpdir(), 'coldseal-pitr-restore-'));
  chmodSync(scratch, 0o711);
  const stops: string[] = [];
  const source: PgEndpoint = { psql: (sql) => cluster.psql('postgres', sql) };

  const cli = (args: string[]): Promise<CliResult> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [bundle, ...args], { cwd: tmpdir(), env: { ...process.env, ...sandbox.account.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr, log: readableLog(stderr) }));
    });

  const setup = await cli(['pitr', 'setup', '--source', 'pg', '--config', configPath, '--install-dir', join(sandbox.dir, 'bin'), '--state-dir', join(sandbox.dir, 'state'), '--apply']);
  assert.equal(setup.code, EXIT.OK, setup.log);
  cluster.restart();
  cluster.psql('postgres', 'create table t (id int primary key, at timestamptz not null default clock_timestamp())');
  const backup = await cli(['backup', '--config', configPath, '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);

  const it: PitrSource = {
    sandbox,
    cluster,
    configPath,
    scratch,
    cli,
    writeRow(id, on = source) {
      on.psql(`insert into t (id) values (${id})`);
      const lsn = on.psql('select pg_current_wal_lsn()');
      on.psql('select pg_switch_wal()');
      return lsn;
    },
    async waitArchived(on = source) {
      // The segment in use follows every switched one: wait until the one before it is archived.
      const current = on.psql('select pg_walfile_name(pg_current_wal_lsn())');
      const previous = (BigInt(`0x${current.slice(8)}`) - 1n).toString(16).toUpperCase().padStart(16, '0');
      for (let i = 0; i < 300; i++) {
        const last = on.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
        if (last.slice(8) >= previous && last.slice(0, 8) === current.slice(0, 8)) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`not archived: ${on.psql('select * from pg_stat_archiver')}\n${readFileSync(cluster.logFile, 'utf8').slice(-3000)}`);
    },
    async timeNow(on = source) {
      await new Promise((r) => setTimeout(r, 50));
      const now = on.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
      await new Promise((r) => setTimeout(r, 50));
      return now;
    },
    async baseBackup() {
      const key = (await sandbox.listKeys('backups/daily/testgroup/testhost/pg/')).find((k) => k.endsWith('.manifest.json'))!;
      const { document } = await openManifest((await sandbox.getObject(key)).toString(), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
      return document.artifacts.find((a) => a.kind === 'cluster')!.baseBackup!;
    },
    async restore(name, ...args) {
      const dataDir = join(scratch, name);
      const result = await cli(['restore', '--config', configPath, '--source', 'pg', '--key', sandbox.recipient.privateFile, '--data-dir', dataDir, ...args]);
      const stop = /^stop: +(.*)$/m.exec(result.stdout)?.[1];
      if (stop && result.code === EXIT.OK) stops.push(stop);
      const port = /running on port (\d+)/.exec(result.stdout)?.[1];
      const server: PgEndpoint = { psql: (sql) => execFileSync('psql', ['-h', `${dataDir}.coldseal-spool`, '-p', port!, '-U', 'postgres', '-d', 'postgres', '-X', '-Atqc', sql]).toString().trim() };
      return { result, dataDir, port, stop, server, rows: () => server.psql('select id from t order by id').split('\n').filter(Boolean).map(Number) };
    },
    close() {
      for (const stop of stops) {
        try {
          execFileSync('/bin/sh', ['-c', stop], { stdio: 'ignore' });
        } catch {
          // already stopped
        }
      }
      cluster.stop();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
  return it;
}
