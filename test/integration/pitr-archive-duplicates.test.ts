import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import type { AgentConfigInput } from '../../format/agent-config';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { openWalRecord } from '../../runtime/wal-record';
import { createAlertInbox, type AlertInbox } from '../../local-system/alerts';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';

/**
 * `pitr archive-push` run by hand (as PostgreSQL runs it, from a scratch cluster's pg_wal) for the
 * archive's write-once contract: the same file again succeeds, different content fails below 126,
 * overwrites nothing and alerts once; .history and .backup files; gzip and openpgp.js.
 */
let sandbox: AgentSandbox;
let cluster: PgCluster;
let inbox: AlertInbox;
let signingKeys: PublicKey[];
let configPath: string;
let config: AgentConfigInput;
const WAL = 'wal/testgroup/testhost/pg/';

before(async () => {
  sandbox = await createAgentSandbox();
  inbox = await createAlertInbox(sandbox.account, { waitSeconds: 3 });
  signingKeys = await readPublicKeys(sandbox.signing.publicKey, 'signing');
  cluster = await startPgCluster({ settings: { checkpoint_timeout: '1h' } });
  cluster.psql('postgres', 'create table t (id int, v text)');
  config = sandbox.config({ alertTopicArn: inbox.topicArn, sources: [{ name: 'pg', type: 'postgres', host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true } }] });
  configPath = sandbox.writeConfig(config);
});

after(() => cluster?.stop());

/** Rows, then a WAL switch: returns the segment completed (archiving is off: it stays in pg_wal). */
function writeAndSwitch(): string {
  cluster.psql('postgres', 'insert into t select g, md5(g::text) from generate_series(1, 1000) g');
  return cluster.psql('postgres', 'select pg_walfile_name(pg_switch_wal())');
}

async function recordOf(walFile: string) {
  const key = walObjectKey('testgroup', 'testhost', 'pg', walFile);
  const head = await sandbox.s3.send(new HeadObjectCommand({ Bucket: sandbox.bucket, Key: key }));
  return { key, etag: head.ETag, record: (await openWalRecord(head.Metadata, signingKeys, key)).record };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const segmentPath = (name: string) => join(cluster.dataDir, 'pg_wal', name);

/** archive-push by hand (as root), as PostgreSQL would run it, for a file given by absolute path. */
const push = (path: string, name: string) => sandbox.runCli(['pitr', 'archive-push', '--source', 'pg', '--config', configPath, '--pgdata', cluster.dataDir, '--state-dir', join(sandbox.dir, 'manual-state'), path, name]);

test('the same segment again succeeds; different content fails (< 126), overwrites nothing and alerts', async () => {
  const segment = writeAndSwitch();
  const first = await push(segmentPath(segment), segment);
  assert.equal(first.code, EXIT.OK, first.log);
  const before = await recordOf(segment);
  assert.equal(before.record.plaintextSha256, sha256(readFileSync(segmentPath(segment))));
  const again = await push(segmentPath(segment), segment);
  assert.equal(again.code, EXIT.OK, again.log);
  assert.match(again.log, /already archived/);

  const tampered = Buffer.from(readFileSync(segmentPath(segment)));
  tampered[100_000] ^= 0xff;
  mkdirSync(join(sandbox.dir, 'other'), { recursive: true });
  writeFileSync(join(sandbox.dir, 'other', segment), tampered);
  const different = await push(join(sandbox.dir, 'other', segment), segment);
  assert.equal(different.code, EXIT.INTEGRITY, different.log);
  assert.match(different.log, /already in the archive .* with different content/);
  const afterwards = await recordOf(segment);
  assert.equal(afterwards.etag, before.etag);
  assert.deepEqual(afterwards.record, before.record);
  const alerts = await inbox.receive();
  assert.equal(alerts.length, 1);
  assert.match(alerts[0]!.subject, /WAL INTEGRITY/);
  assert.match(alerts[0]!.message, new RegExp(`${segment}.*\\n.*different content`));
});

test('a .history file is archived under its timeline and never overwritten', async () => {
  const dir = join(sandbox.dir, 'history');
  mkdirSync(dir, { recursive: true });
  const content = '1\t0/5000000\tno recovery target specified\n';
  writeFileSync(join(dir, '00000002.history'), content);
  const first = await push(join(dir, '00000002.history'), '00000002.history');
  assert.equal(first.code, EXIT.OK, first.log);
  const key = `${WAL}00000002/00000002.history.pgp`;
  assert.ok((await sandbox.listKeys(WAL)).includes(key));
  assert.equal(decompress(gpgDecrypt(await sandbox.getObject(key), sandbox.recipient.privateFile), 'zstd').toString(), content);
  const { etag } = await recordOf('00000002.history');

  writeFileSync(join(dir, '00000002.history'), `${content}2\t0/6000000\tno recovery target specified\n`);
  const second = await push(join(dir, '00000002.history'), '00000002.history');
  assert.equal(second.code, EXIT.INTEGRITY, second.log);
  // PostgreSQL retries: the failure repeats, the alert does not.
  const third = await push(join(dir, '00000002.history'), '00000002.history');
  assert.equal(third.code, EXIT.INTEGRITY, third.log);
  assert.equal((await recordOf('00000002.history')).etag, etag);
  assert.equal(decompress(gpgDecrypt(await sandbox.getObject(key), sandbox.recipient.privateFile), 'zstd').toString(), content);
  const alerts = await inbox.receive();
  assert.equal(alerts.length, 1, alerts.map((a) => a.subject).join(', '));
  assert.match(alerts[0]!.message, /00000002\.history .*\n.*different content/);
});

test('a .backup file, through gzip and openpgp.js (no zstd or gpg binary needed)', async () => {
  const name = '000000010000000000000003.00000028.backup';
  const content = 'START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTOP WAL LOCATION: 0/3000100 (file 000000010000000000000003)\n';
  const path = join(sandbox.dir, 'history', name);
  writeFileSync(path, content);
  const plain = sandbox.writeConfig({ ...config, compression: { algorithm: 'gzip' }, encryption: { implementation: 'openpgp.js' } });
  const result = await sandbox.runCli(['pitr', 'archive-push', '--source', 'pg', '--config', plain, '--pgdata', cluster.dataDir, '--state-dir', join(sandbox.dir, 'manual-state'), path, name]);
  assert.equal(result.code, EXIT.OK, result.log);
  const { key, record } = await recordOf(name);
  assert.equal(record.compression, 'gzip');
  assert.equal(record.plaintextSha256, sha256(Buffer.from(content)));
  assert.equal(decompress(gpgDecrypt(await sandbox.getObject(key), sandbox.recipient.privateFile), 'gzip').toString(), content);
});
