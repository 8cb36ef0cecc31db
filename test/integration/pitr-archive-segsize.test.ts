import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import { readPublicKeys } from '../../runtime/pgp';
import { openWalRecord } from '../../runtime/wal-record';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { buildAgent } from '../../scripts/build-agent';

/**
 * wal_segment_size other than 16 MB: 64 MB segments are archived whole; above 64 MB is refused.
 * Set up from the bundle (what hosts run): archive_command runs the bundle's copy in the state
 * directory, with its code cache.
 */
let sandbox: AgentSandbox;
let bundle: string;
let cluster: PgCluster;
let configPath: string;
const MiB = 1024 * 1024;

before(async () => {
  sandbox = await createAgentSandbox();
  bundle = await buildAgent();
  chmodSync(sandbox.dir, 0o711);
  chownSync(sandbox.signing.privateFile, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  cluster = await startPgCluster({ env: sandbox.account.env, walSegmentSizeMiB: 64, settings: { checkpoint_timeout: '1h' } });
  configPath = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'big', type: 'postgres', host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true } }] }));
});

after(() => cluster?.stop());

test('64 MB segments: archived through the wrapper, each record names the size and the segment\'s SHA-256', async () => {
  const state = join(sandbox.dir, 'state');
  const setup = spawnSync(process.execPath, [bundle, 'pitr', 'setup', '--source', 'big', '--config', configPath, '--apply', '--install-dir', join(sandbox.dir, 'bin'), '--state-dir', state], {
    cwd: tmpdir(),
    env: { ...process.env, ...sandbox.account.env },
    encoding: 'utf8',
  });
  assert.equal(setup.status, EXIT.OK, setup.stderr);
  const agentCopy = join(state, 'agent', 'coldseal-agent.js');
  assert.match(setup.stdout, new RegExp(`install ${agentCopy}`));
  assert.ok(readFileSync(agentCopy).equals(readFileSync(bundle)));
  assert.match(readFileSync(join(sandbox.dir, 'bin', 'archive-big.sh'), 'utf8'), new RegExp(`${process.execPath} ${agentCopy} pitr archive-push`));
  cluster.restart();
  cluster.psql('postgres', 'create table t (id int, v text)');
  const segments: string[] = [];
  for (let i = 0; i < 2; i++) {
    cluster.psql('postgres', 'insert into t select g, md5(g::text) from generate_series(1, 20000) g');
    segments.push(cluster.psql('postgres', 'select pg_walfile_name(pg_switch_wal())'));
  }
  for (let i = 0; i < 200 && cluster.psql('postgres', "select coalesce(last_archived_wal, '') from pg_stat_archiver") < segments[1]!; i++) await new Promise((r) => setTimeout(r, 200));
  assert.match(readFileSync(cluster.logFile, 'utf8'), /"message":"archive-push done"/);
  // The bundle's loader keeps its code cache for the server's user, beside the copy it owns.
  assert.ok(existsSync(`${agentCopy}.v8cache`), 'code cache written by the archiver\'s runs');
  assert.equal(statSync(`${agentCopy}.v8cache`).uid, Number(execFileSync('id', ['-u', 'postgres']).toString()));
  const trusted = await readPublicKeys(sandbox.signing.publicKey, 'signing');
  for (const segment of segments) {
    const key = walObjectKey('testgroup', 'testhost', 'big', segment);
    const head = await sandbox.s3.send(new HeadObjectCommand({ Bucket: sandbox.bucket, Key: key }));
    const { record } = await openWalRecord(head.Metadata, trusted, key);
    const plaintext = readFileSync(join(cluster.dataDir, 'pg_wal', segment));
    assert.equal(plaintext.length, 64 * MiB);
    assert.equal(record.walSegmentSize, 64 * MiB);
    assert.equal(record.plaintextBytes, 64 * MiB);
    assert.equal(record.plaintextSha256, createHash('sha256').update(plaintext).digest('hex'));
  }
});

test('a cluster with 128 MB segments is refused with what to do, below 126', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-segsize-'));
  try {
    chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
    execFileSync('runuser', ['-u', 'postgres', '--', join(cluster.bin, 'initdb'), '-D', join(dir, 'data'), '--no-sync', '--wal-segsize=128', '-U', 'postgres'], { stdio: 'ignore' });
    const segment = readdirSync(join(dir, 'data', 'pg_wal')).find((n) => /^[0-9A-F]{24}$/.test(n))!;
    const keysBefore = await sandbox.listKeys('wal/');
    const result = await sandbox.runCli(['pitr', 'archive-push', '--source', 'big', '--config', configPath, '--pgdata', join(dir, 'data'), '--state-dir', join(dir, 'state'), `pg_wal/${segment}`, segment]);
    assert.equal(result.code, EXIT.CONFIG, result.log);
    assert.match(result.log, /wal_segment_size is 128 MB: coldseal archives segments of at most 64 MB.*--wal-segsize=64/);
    assert.deepEqual(await sandbox.listKeys('wal/'), keysBefore);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
