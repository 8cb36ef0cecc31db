import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { CloudWatchClient, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import { EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import { AGENT_METRICS_NAMESPACE, METRIC } from '../../format/metric-names';
import type { AgentConfigInput } from '../../format/agent-config';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { openWalRecord } from '../../runtime/wal-record';
import { freePort } from '../../local-system/services';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';

/**
 * The archive side of PITR on a scratch PostgreSQL whose archive_command is the real wrapper
 * `pitr setup` installs, running the real agent as the postgres user against moto. The
 * write-once contract (duplicates, .history) is in pitr-archive-duplicates.test.ts.
 */
let sandbox: AgentSandbox;
let cluster: PgCluster;
let signingKeys: PublicKey[];
let configPath: string;
let config: AgentConfigInput;
const WAL = 'wal/testgroup/testhost/pg/';

before(async () => {
  sandbox = await createAgentSandbox();
  // archive_command runs as the server's user: it must reach the configuration and the signing key.
  chmodSync(sandbox.dir, 0o711);
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  chownSync(sandbox.signing.privateFile, uid, gid);
  signingKeys = await readPublicKeys(sandbox.signing.publicKey, 'signing');
  cluster = await startPgCluster({ env: { ...sandbox.account.env, NODE_NO_WARNINGS: '1' }, settings: { checkpoint_timeout: '1h' } });
  config = sandbox.config({
    sources: [{ name: 'pg', type: 'postgres', host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, archiveTimeoutSeconds: 60, pushAhead: 16, concurrency: 4 } }],
  });
  configPath = sandbox.writeConfig(config);
});

after(() => cluster?.stop());

const setupArgs = (...extra: string[]) => ['pitr', 'setup', '--source', 'pg', '--config', configPath, '--install-dir', join(sandbox.dir, 'bin'), '--state-dir', join(sandbox.dir, 'state'), ...extra];

/** Rows, then a WAL switch: returns the segment that became ready. */
function writeAndSwitch(rows = 1000): string {
  cluster.psql('postgres', `insert into t select g, md5(g::text) from generate_series(1, ${rows}) g`);
  return cluster.psql('postgres', 'select pg_walfile_name(pg_switch_wal())');
}

async function waitArchived(segment: string, seconds = 40): Promise<void> {
  for (let i = 0; i < seconds * 5; i++) {
    const last = cluster.psql('postgres', 'select coalesce(last_archived_wal, \'\') from pg_stat_archiver');
    if (last >= segment) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${segment} not archived in ${seconds} s: ${cluster.psql('postgres', 'select * from pg_stat_archiver')}\n${readFileSync(cluster.logFile, 'utf8').slice(-3000)}`);
}

async function recordOf(walFile: string) {
  const key = walObjectKey('testgroup', 'testhost', 'pg', walFile);
  const head = await sandbox.s3.send(new HeadObjectCommand({ Bucket: sandbox.bucket, Key: key }));
  return { key, etag: head.ETag, record: (await openWalRecord(head.Metadata, signingKeys, key)).record };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const nodeStarts = () => (readFileSync(cluster.logFile, 'utf8').match(/"message":"archive-push done"/g) ?? []).length;
const segmentPath = (name: string) => join(cluster.dataDir, 'pg_wal', name);

test('setup: refuses another archive_command without --replace, then sets everything and says a restart is needed', async () => {
  cluster.psql('postgres', 'create role app login');
  const asApp = sandbox.writeConfig({ ...config, sources: [{ ...config.sources[0]!, user: 'app' } as (typeof config.sources)[number]] });
  const notSuper = await sandbox.runCli(['pitr', 'setup', '--source', 'pg', '--config', asApp, '--install-dir', join(sandbox.dir, 'bin')]);
  assert.equal(notSuper.code, EXIT.SOURCE, notSuper.log);
  assert.match(notSuper.log, /not a superuser, and ALTER SYSTEM needs one/);

  cluster.psql('postgres', "alter system set archive_command = 'cp %p /somewhere/%f'");
  cluster.psql('postgres', 'select pg_reload_conf()');
  const dry = await sandbox.runCli(setupArgs());
  assert.equal(dry.code, EXIT.REFUSED, dry.log);
  assert.match(dry.log, /archive_command is already set to 'cp %p \/somewhere\/%f'.*--replace/);

  const planned = await sandbox.runCli(setupArgs('--replace'));
  assert.equal(planned.code, EXIT.OK, planned.log);
  assert.match(planned.stdout, /would set\s+archive_mode: off → on \(restart\)/);
  assert.match(planned.stdout, /nothing was changed: run again with --apply/);
  assert.equal(existsSync(join(sandbox.dir, 'bin', 'archive-pg.sh')), false);

  const applied = await sandbox.runCli(setupArgs('--apply', '--replace'));
  assert.equal(applied.code, EXIT.OK, applied.log);
  assert.match(applied.stdout, /RESTART NEEDED/);
  cluster.restart();
  assert.equal(cluster.psql('postgres', 'show archive_mode'), 'on');
  assert.equal(cluster.psql('postgres', 'show archive_command'), `${join(sandbox.dir, 'bin', 'archive-pg.sh')} %p %f`);
  assert.equal(cluster.psql('postgres', 'show archive_timeout'), '1min');

  const again = await sandbox.runCli(setupArgs());
  assert.equal(again.code, EXIT.OK, again.log);
  assert.match(again.stdout, /nothing to do/);
  cluster.psql('postgres', 'create table t (id int, v text)');
});

test('every segment reaches S3 with a signed record whose plaintext SHA-256 is the segment\'s', async () => {
  const segments: string[] = [];
  for (let i = 0; i < 4; i++) segments.push(writeAndSwitch());
  await waitArchived(segments.at(-1)!);
  const keys = await sandbox.listKeys(WAL);
  for (const segment of segments) {
    const { key, record } = await recordOf(segment);
    assert.ok(keys.includes(key), `${key} in ${keys.join(', ')}`);
    const plaintext = readFileSync(segmentPath(segment));
    assert.equal(record.plaintextSha256, sha256(plaintext));
    assert.equal(record.plaintextBytes, 16 * 1024 * 1024);
    assert.equal(record.walSegmentSize, 16 * 1024 * 1024);
    assert.equal(record.systemIdentifier, cluster.psql('postgres', 'select system_identifier from pg_control_system()'));
  }
  // And the object decrypts (recipient key) and decompresses to the segment itself.
  const object = await sandbox.getObject(walObjectKey('testgroup', 'testhost', 'pg', segments[0]!));
  assert.ok(decompress(gpgDecrypt(object, sandbox.recipient.privateFile), 'zstd').equals(readFileSync(segmentPath(segments[0]!))));
});

test('push-ahead: one agent start archives a backlog of .ready files; the wrapper answers the rest without Node', async () => {
  const command = cluster.psql('postgres', 'show archive_command');
  // Archiving paused: PostgreSQL keeps marking segments ready.
  cluster.psql('postgres', "alter system set archive_command = ''");
  cluster.psql('postgres', 'select pg_reload_conf()');
  await new Promise((r) => setTimeout(r, 300));
  const segments: string[] = [];
  for (let i = 0; i < 6; i++) segments.push(writeAndSwitch(200));
  const ready = readdirSync(join(cluster.dataDir, 'pg_wal', 'archive_status')).filter((n) => n.endsWith('.ready'));
  assert.ok(ready.length >= 6, `backlog of ${ready.length} .ready files`);
  const startsBefore = nodeStarts();
  cluster.psql('postgres', `alter system set archive_command = '${command.replace(/'/g, "''")}'`);
  cluster.psql('postgres', 'select pg_reload_conf()');
  await waitArchived(segments.at(-1)!);
  const starts = nodeStarts() - startsBefore;
  assert.equal(starts, 1, `node started ${starts} times for ${segments.length} segments`);
  assert.match(readFileSync(cluster.logFile, 'utf8'), /"message":"archive-push done".*"pushedAhead":5/);
  for (const segment of segments) assert.equal((await recordOf(segment)).record.plaintextSha256, sha256(readFileSync(segmentPath(segment))));
  // Every marker was taken by the wrapper.
  const sysid = cluster.psql('postgres', 'select system_identifier from pg_control_system()');
  assert.deepEqual(readdirSync(join(sandbox.dir, 'state', sysid, 'pushed')), []);
});

test('S3 unreachable: the command fails below 126, PostgreSQL retries, and nothing is lost once S3 is back', async () => {
  const failedBefore = Number(cluster.psql('postgres', 'select failed_count from pg_stat_archiver'));
  writeFileSync(configPath, JSON.stringify({ ...config, endpoint: `http://127.0.0.1:${await freePort()}` }, null, 2));
  const segments = [writeAndSwitch()];
  for (let i = 0; i < 40 && Number(cluster.psql('postgres', 'select failed_count from pg_stat_archiver')) < failedBefore + 2; i++) await new Promise((r) => setTimeout(r, 500));
  segments.push(writeAndSwitch());
  const failed = Number(cluster.psql('postgres', 'select failed_count from pg_stat_archiver'));
  assert.ok(failed >= failedBefore + 2, `failed_count ${failedBefore} → ${failed}`);
  const log = readFileSync(cluster.logFile, 'utf8');
  assert.match(log, /archive command failed with exit code 5/);
  assert.doesNotMatch(log, /archive command was terminated|archiver process .* exited/);
  assert.ok(existsSync(join(cluster.dataDir, 'pg_wal', 'archive_status', `${segments[0]}.ready`)));

  writeFileSync(configPath, JSON.stringify(config, null, 2));
  segments.push(writeAndSwitch());
  await waitArchived(segments.at(-1)!, 90);
  for (const segment of segments) assert.equal((await recordOf(segment)).record.plaintextSha256, sha256(readFileSync(segmentPath(segment))));

  // The archiver's figures reached CloudWatch (namespace and dimensions the monitor reads).
  const cloudwatch = new CloudWatchClient(sandbox.account.clientConfig);
  const metrics = await cloudwatch.send(new ListMetricsCommand({ Namespace: AGENT_METRICS_NAMESPACE }));
  const names = new Set((metrics.Metrics ?? []).filter((m) => m.Dimensions?.some((d) => d.Name === 'Source' && d.Value === 'pg')).map((m) => m.MetricName));
  for (const name of [METRIC.walReadyBacklog, METRIC.walArchiverFailedCount, METRIC.walFilesArchived]) assert.ok(names.has(name), `${name} in ${[...names].join(', ')}`);
});
