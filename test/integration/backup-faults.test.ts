import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { startS3Proxy } from '../harness/s3-proxy';
import { createAlertInbox, type AlertInbox } from '../../local-system/alerts';
import { createPgFixture, dropMysqlDatabase, dropPgDatabase, MYSQL, PG, uniqueDbName } from '../../local-system/databases';
import mysql from 'mysql2/promise';

/**
 * Every way a backup can fail ends the same way: a non-zero exit code, a one-line error that says
 * what to do, an alert, no manifest, no object, and no multipart upload left open.
 */
let sandbox: AgentSandbox;
let inbox: AlertInbox;
const pgDb = uniqueDbName('cs_fault');
const myDb = uniqueDbName('cs_fault_my');
const myUser = `cs_${Math.random().toString(36).slice(2, 8)}`;

before(async () => {
  sandbox = await createAgentSandbox();
  inbox = await createAlertInbox(sandbox.account, { waitSeconds: 3 });
  await createPgFixture(pgDb, 2000);
  const conn = await mysql.createConnection({ ...MYSQL });
  await conn.query(`create database \`${myDb}\``);
  await conn.query(`create table \`${myDb}\`.t (id int primary key)`);
  await conn.query(`create user '${myUser}'@'%' identified by 'right-Pa55 word'`);
  await conn.query(`grant all on \`${myDb}\`.* to '${myUser}'@'%'`);
  await conn.end();
});

after(async () => {
  await dropPgDatabase(pgDb);
  await dropMysqlDatabase(myDb);
  const conn = await mysql.createConnection({ ...MYSQL });
  await conn.query(`drop user if exists '${myUser}'@'%'`);
  await conn.end();
});

/** A directory of PostgreSQL client tools whose pg_dump misbehaves as `script` says. */
function fakePgBin(name: string, script: string): string {
  const dir = join(sandbox.dir, `bin-${name}`);
  mkdirSync(dir);
  for (const tool of ['psql', 'pg_dumpall']) symlinkSync(`/usr/bin/${tool}`, join(dir, tool));
  writeFileSync(join(dir, 'pg_dump'), `#!/bin/sh\nif [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\n${script}\n`);
  chmodSync(join(dir, 'pg_dump'), 0o755);
  return dir;
}

async function assertNothingLeft(source: string): Promise<void> {
  assert.deepEqual(await sandbox.listKeys(`backups/daily/testgroup/testhost/${source}/`), [], 'no object at all under the source prefix');
  assert.deepEqual((await sandbox.openMultipartUploads()).filter((k) => k.includes(`/${source}/`)), [], 'no multipart upload left open');
}

function pgSource(name: string, extra: Record<string, unknown> = {}) {
  return { name, type: 'postgres' as const, databases: [pgDb], host: PG.host, port: PG.port, user: PG.user, ...extra };
}

async function backup(sources: unknown[], extra: Record<string, unknown> = {}, args: string[] = []) {
  const config = sandbox.config({ sources: sources as never, alertTopicArn: inbox.topicArn, upload: { partSizeMiB: 5 }, ...extra });
  return sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily', ...args]);
}

describe('a failed backup leaves nothing and always alerts', () => {
  test('dump killed halfway (after two upload parts): exit 4, upload aborted, alert names the source', async () => {
    const bin = fakePgBin('killed', 'head -c 12000000 /dev/urandom\nkill -KILL $$');
    const result = await backup([pgSource('killed', { binDir: bin })]);
    assert.equal(result.code, EXIT.SOURCE, result.stderr);
    assert.match(result.log, /pg_dump was killed by SIGKILL before it finished/);
    assert.match(result.log, /out-of-memory killer/);
    await assertNothingLeft('killed');
    const alerts = await inbox.receive();
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].subject, 'coldseal FAILED: testgroup/testhost killed');
    assert.match(alerts[0].message, /Backup FAILED on host testhost \(group testgroup, tier daily\)/);
    assert.match(alerts[0].message, /Source killed \(exit 4\):\n {2}pg_dump was killed by SIGKILL/);
    assert.match(alerts[0].message, /no manifest was written and incomplete uploads were aborted/);
  });

  test('dump exits non-zero after writing data: exit 4 with the tool status, nothing left', async () => {
    const bin = fakePgBin('status', 'head -c 100000 /dev/urandom\necho "pg_dump: error: query failed: server closed the connection unexpectedly" >&2\nexit 1');
    const result = await backup([pgSource('status', { binDir: bin })]);
    assert.equal(result.code, EXIT.SOURCE);
    assert.match(result.log, /pg_dump exited with status 1 for .*server closed the connection unexpectedly/);
    await assertNothingLeft('status');
    assert.equal((await inbox.receive()).length, 1);
  });

  test('dump reports success but writes nothing: refused as empty', async () => {
    const bin = fakePgBin('empty', 'exit 0');
    const result = await backup([pgSource('empty', { binDir: bin })]);
    assert.equal(result.code, EXIT.SOURCE);
    assert.match(result.log, /pg_dump produced no data for .* \(0 bytes\) although it reported success/);
    await assertNothingLeft('empty');
    assert.equal((await inbox.receive()).length, 1);
  });

  test('SQL dump without its completion trailer is refused as truncated', async () => {
    const dir = join(sandbox.dir, 'bin-mysql-truncated');
    mkdirSync(dir);
    symlinkSync('/usr/bin/mysql', join(dir, 'mysql'));
    writeFileSync(join(dir, 'mysqldump'), `#!/bin/sh\nif [ "$1" = --version ]; then exec /usr/bin/mysqldump --version; fi\n/usr/bin/mysqldump "$@" | head -n 20\n`);
    chmodSync(join(dir, 'mysqldump'), 0o755);
    const result = await backup([{ name: 'trunc', type: 'mysql', databases: [myDb], host: MYSQL.host, port: MYSQL.port, user: MYSQL.user, binDir: dir }]);
    assert.equal(result.code, EXIT.SOURCE, result.stderr);
    assert.match(result.log, /ends without its completion line "-- Dump completed": the dump is truncated/);
    await assertNothingLeft('trunc');
    assert.equal((await inbox.receive()).length, 1);
  });

  test('database unreachable: exit 4 with what to check', async () => {
    const result = await backup([pgSource('down', { port: 1 })]);
    assert.equal(result.code, EXIT.SOURCE);
    assert.match(result.log, /source down: reading the server version: the database server is unreachable/);
    assert.match(result.log, /Check that PostgreSQL is running and that the source's host and port are right/);
    await assertNothingLeft('down');
    assert.equal((await inbox.receive()).length, 1);
  });

  test('wrong password from SSM SecureString: authentication failure, and the password appears nowhere', async () => {
    const ssm = new SSMClient(sandbox.account.clientConfig);
    await ssm.send(new PutParameterCommand({ Name: '/test/mysql/wrong', Type: 'SecureString', Value: 'wrong-Pa55 word' }));
    await ssm.send(new PutParameterCommand({ Name: '/test/mysql/right', Type: 'SecureString', Value: 'right-Pa55 word' }));
    const source = (password: string) => ({ name: 'secured', type: 'mysql', databases: [myDb], host: MYSQL.host, port: MYSQL.port, user: myUser, password: { parameter: password } });
    const wrong = await backup([source('/test/mysql/wrong')]);
    assert.equal(wrong.code, EXIT.SOURCE);
    assert.match(wrong.log, /authentication failed \(.*Access denied for user/);
    assert.match(wrong.log, /Check the source's user and password parameter/);
    assert.doesNotMatch(wrong.stderr + wrong.stdout, /wrong-Pa55/);
    await assertNothingLeft('secured');
    const alerts = await inbox.receive();
    assert.equal(alerts.length, 1);
    assert.doesNotMatch(alerts[0].message, /Pa55/);

    const right = await backup([source('/test/mysql/right')]);
    assert.equal(right.code, EXIT.OK, right.stderr);
    const keys = await sandbox.listKeys('backups/daily/testgroup/testhost/secured/');
    assert.equal(keys.length, 2);
    const manifest = (await sandbox.getObject(keys.find((k) => k.endsWith('.manifest.json'))!)).toString();
    assert.doesNotMatch(manifest + right.stderr + right.stdout, /Pa55/);
    assert.match(manifest, /--defaults-extra-file=<0600 option file>/);
  });

  test('one bad database in a source: the good one is not committed either', async () => {
    const result = await backup([{ ...pgSource('mixed'), databases: [pgDb, 'no_such_database_here'] }]);
    assert.equal(result.code, EXIT.SOURCE);
    assert.match(result.log, /database "no_such_database_here" does not exist/);
    await assertNothingLeft('mixed');
    assert.equal((await inbox.receive()).length, 1);
  });

  test('S3 fails mid-upload (connection dropped on part 2): exit 5, multipart upload aborted', async () => {
    // Drop every upload of part 2 or later; create, abort and list pass through.
    const proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint, { drop: (method, query) => method === 'PUT' && Number(query.get('partNumber') ?? 0) >= 2 });
    try {
      const bin = fakePgBin('s3fail', 'head -c 12000000 /dev/urandom');
      const result = await backup([pgSource('s3fail', { binDir: bin })], { endpoint: proxy.url });
      assert.equal(result.code, EXIT.STORAGE, result.stderr);
      assert.match(result.log, /upload to s3:\/\/.*s3fail.* failed/);
      assert.match(result.log, /the incomplete upload was aborted/);
      assert.ok(proxy.dropped() > 0, 'the proxy dropped part uploads');
      await assertNothingLeft('s3fail');
      assert.equal((await inbox.receive()).length, 1);
    } finally {
      await proxy.close();
    }
  });

  test('SIGTERM mid-dump (an SSM timeout): uploads aborted, exit 12, alert says interrupted', async () => {
    const bin = fakePgBin('interrupted', 'head -c 30000000 /dev/urandom\nexec sleep 60');
    const started = Date.now();
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(sandbox.config({ sources: [pgSource('interrupted', { binDir: bin })], alertTopicArn: inbox.topicArn, upload: { partSizeMiB: 5 } })), '--tier', 'daily'], {}, {
      name: 'SIGTERM',
      // Once the upload is under way: the signal then lands mid-dump, not during start-up.
      when: async () => (await sandbox.openMultipartUploads()).some((k) => k.includes('/interrupted/')),
    });
    assert.equal(result.code, EXIT.INTERRUPTED, result.log);
    assert.ok(Date.now() - started < 20_000, 'stopped promptly, not after the dump tool finished');
    assert.match(result.log, /backup interrupted by SIGTERM while dumping/);
    await assertNothingLeft('interrupted');
    const alerts = await inbox.receive();
    assert.equal(alerts.length, 1);
    assert.match(alerts[0].message, /Source interrupted \(exit 12\):\n {2}backup interrupted by SIGTERM/);
  });

  test('unknown source: usage error listing the configured ones, nothing attempted', async () => {
    const result = await backup([pgSource('real')], {}, ['--source', 'nope']);
    assert.equal(result.code, EXIT.USAGE);
    assert.match(result.log, /unknown source "nope". Configured sources: real/);
  });

  test('malformed configuration: exit 3 naming the file and the field', async () => {
    const badJson = join(sandbox.dir, 'bad.json');
    writeFileSync(badJson, '{"group": "x",}');
    const r1 = await sandbox.runCli(['backup', '--config', badJson]);
    assert.equal(r1.code, EXIT.CONFIG);
    assert.match(r1.log, /configuration file .*bad\.json is not valid JSON/);

    const badField = sandbox.writeConfig({ ...sandbox.config({ sources: [{ name: 'x', type: 'oracle' } as never] }) });
    const r2 = await sandbox.runCli(['backup', '--config', badField]);
    assert.equal(r2.code, EXIT.CONFIG);
    assert.match(r2.log, /sources\[0\]\.type/);

    const badName = sandbox.writeConfig(sandbox.config({ group: 'no spaces allowed', sources: [pgSource('x')] }));
    const r3 = await sandbox.runCli(['backup', '--config', badName]);
    assert.equal(r3.code, EXIT.CONFIG);
    assert.match(r3.log, /group: must be 1-63 characters/);

    const r4 = await sandbox.runCli(['backup', '--config', join(sandbox.dir, 'missing.json')]);
    assert.equal(r4.code, EXIT.CONFIG);
    assert.match(r4.log, /cannot read configuration file .*missing\.json: ENOENT/);
  });

  test('a private key given as recipient is refused before anything runs', async () => {
    const config = sandbox.config({ sources: [pgSource('keys')], recipients: { file: sandbox.recipient.privateFile } });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
    assert.equal(result.code, EXIT.KEYS);
    assert.match(result.log, /recipients holds a PRIVATE key; give only the public half/);
    await assertNothingLeft('keys');
  });
});
