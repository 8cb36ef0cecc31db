import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { createAlertInbox, type AlertInbox } from '../../local-system/alerts';
import { createPgFixture, dropPgDatabase, MYSQL, PG, uniqueDbName } from '../../local-system/databases';
import { startS3Proxy } from '../harness/s3-proxy';

/**
 * Messages that tell the truth and exit codes that name the cause: an abort that failed is not
 * reported as done, a missing role is not "unreachable", and a key problem alerts like any failure.
 */
let sandbox: AgentSandbox;
let inbox: AlertInbox;
const pgDb = uniqueDbName('cs_refuse');

before(async () => {
  sandbox = await createAgentSandbox();
  inbox = await createAlertInbox(sandbox.account, { waitSeconds: 3 });
  await createPgFixture(pgDb, 200);
});

after(async () => {
  await dropPgDatabase(pgDb);
});

function pgSource(name: string, extra: Record<string, unknown> = {}) {
  return { name, type: 'postgres' as const, databases: [pgDb], host: PG.host, port: PG.port, user: PG.user, ...extra };
}

async function backup(sources: unknown[], extra: Record<string, unknown> = {}) {
  const config = sandbox.config({ sources: sources as never, alertTopicArn: inbox.topicArn, upload: { partSizeMiB: 5 }, ...extra });
  return sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
}

describe('messages that tell the truth', () => {
  test('S3 outage that also refuses the abort: the log and the alert say "could not abort; S3\'s lifecycle rule removes it within a day", and the upload is indeed still listed', async () => {
    const bin = join(sandbox.dir, 'bin-outage');
    mkdirSync(bin);
    for (const tool of ['psql', 'pg_dumpall']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
    writeFileSync(join(bin, 'pg_dump'), '#!/bin/sh\nif [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\nhead -c 12000000 /dev/urandom\n');
    chmodSync(join(bin, 'pg_dump'), 0o755);
    // Parts from the second on, and every abort (DELETE …?uploadId=), are dropped as an outage would.
    const proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint, {
      drop: (method, query) => (method === 'PUT' && Number(query.get('partNumber') ?? 0) >= 2) || (method === 'DELETE' && query.has('uploadId')),
    });
    try {
      const result = await backup([pgSource('outage', { binDir: bin })], { endpoint: proxy.url });
      assert.equal(result.code, EXIT.STORAGE, result.log);
      assert.match(result.log, /upload to s3:\/\/.*outage.* failed/);
      assert.match(result.log, /could not abort the incomplete upload of backups\/daily\/testgroup\/testhost\/outage\/.*; S3's lifecycle rule removes it 3 days after it began/);
      assert.doesNotMatch(result.log, /the incomplete upload was aborted/);
      const open = (await sandbox.openMultipartUploads()).filter((k) => k.includes('/outage/'));
      assert.equal(open.length, 1, 'what the message says is what S3 shows');
      const [alert] = await inbox.receive();
      assert.ok(alert, 'an alert was sent');
      assert.match(alert.message, /could not abort the incomplete upload/);
      assert.match(alert.message, /Some incomplete uploads could not be aborted \(see above\): S3's lifecycle rule removes them 3 days after they began/);
      assert.doesNotMatch(alert.message, /incomplete uploads were aborted/);
    } finally {
      await proxy.close();
      // moto applies no lifecycle rule: the test removes what the "outage" left.
      const listed = await sandbox.s3.send(new ListMultipartUploadsCommand({ Bucket: sandbox.bucket }));
      for (const u of listed.Uploads ?? []) await sandbox.s3.send(new AbortMultipartUploadCommand({ Bucket: sandbox.bucket, Key: u.Key!, UploadId: u.UploadId! }));
    }
  });

  test('an abort that works is still reported as done', async () => {
    const proxy = await startS3Proxy(sandbox.account.clientConfig.endpoint, { drop: (method, query) => method === 'PUT' && Number(query.get('partNumber') ?? 0) >= 2 });
    try {
      const bin = join(sandbox.dir, 'bin-flaky');
      mkdirSync(bin);
      for (const tool of ['psql', 'pg_dumpall']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
      writeFileSync(join(bin, 'pg_dump'), '#!/bin/sh\nif [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\nhead -c 12000000 /dev/urandom\n');
      chmodSync(join(bin, 'pg_dump'), 0o755);
      const result = await backup([pgSource('flaky', { binDir: bin })], { endpoint: proxy.url });
      assert.equal(result.code, EXIT.STORAGE, result.log);
      assert.match(result.log, /; the incomplete upload was aborted/);
      assert.deepEqual((await sandbox.openMultipartUploads()).filter((k) => k.includes('/flaky/')), []);
      const [alert] = await inbox.receive();
      assert.match(alert.message, /no manifest was written and incomplete uploads were aborted/);
    } finally {
      await proxy.close();
    }
  });
});

describe('user errors get their own exit code and message', () => {
  test('a PostgreSQL role that does not exist: exit 4, "no role", not "unreachable"', async () => {
    const result = await backup([pgSource('norole', { user: 'cs_no_such_role' })]);
    assert.equal(result.code, EXIT.SOURCE, result.log);
    assert.match(result.log, /the server has no role "cs_no_such_role"/);
    assert.doesNotMatch(result.log, /unreachable/);
    assert.equal((await inbox.receive()).length, 1);
  });

  test('a bad recipient key: exit 7 and an alert (nothing was dumped, yet the backup was missed)', async () => {
    const bad = join(sandbox.dir, 'bad-recipient.asc');
    writeFileSync(bad, '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n');
    const result = await backup([pgSource('badkey')], { recipients: { file: bad } });
    assert.equal(result.code, EXIT.KEYS, result.log);
    const alerts = await inbox.receive();
    assert.equal(alerts.length, 1);
    assert.match(alerts[0].message, /Source badkey \(exit 7\):/);
    assert.match(alerts[0].message, /recipients is not an armored OpenPGP public key/);
  });

  test('a bad recipient key while the first source was already being prepared: exit 7, and the option file its preparation wrote is removed', async () => {
    // The first source's look-ups run while the keys are read; a MySQL source writes its 0600
    // option file (connection settings, and the password when there is one) then. A key failure
    // must not leave that file behind.
    const bad = join(sandbox.dir, 'bad-recipient-2.asc');
    writeFileSync(bad, '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n');
    const tmp = join(sandbox.dir, 'tmp-badkey');
    mkdirSync(tmp);
    const config = sandbox.config({
      sources: [{ name: 'mybadkey', type: 'mysql', databases: ['mysql'], host: MYSQL.host, port: MYSQL.port, user: MYSQL.user }] as never,
      alertTopicArn: inbox.topicArn,
      recipients: { file: bad },
    });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily'], { TMPDIR: tmp });
    assert.equal(result.code, EXIT.KEYS, result.log);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('coldseal-')), [], 'no option file left in the temporary directory');
    const alerts = await inbox.receive();
    assert.equal(alerts.length, 1, 'the missed backup is alerted');
  });
});

describe('sizes and places the system cannot handle are named, not reported as a bug', () => {
  test('a files source with more paths than fit on a command line: backed up (names go to tar on stdin), exit 0', async () => {
    // 3,000 files whose paths are ~1,000 bytes: 3 MB of arguments, past Linux's 2 MiB limit on argv (spawn E2BIG).
    const deep = join(sandbox.dir, 'many', 'a'.repeat(250), 'b'.repeat(250), 'c'.repeat(250));
    mkdirSync(deep, { recursive: true });
    const paths: string[] = [];
    for (let i = 0; i < 3_000; i++) {
      const path = join(deep, `${'f'.repeat(200)}-${String(i).padStart(5, '0')}`);
      writeFileSync(path, `file ${i}`);
      paths.push(path);
    }
    // A path that begins with "-" once tar has made it relative must still be a name, not an option.
    mkdirSync(join(sandbox.dir, 'many', '-dash'));
    writeFileSync(join(sandbox.dir, 'many', '-dash', 'f'), 'dash');
    const result = await backup([{ name: 'many', type: 'files', paths: [...paths, join(sandbox.dir, 'many', '-dash')] }]);
    assert.equal(result.code, EXIT.OK, result.log);
    const tarFile = join(sandbox.dir, 'many.tar');
    const config = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'many', type: 'files', paths: ['/tmp'] }] }));
    const restored = await sandbox.runCli(['restore', '--config', config, '--source', 'many', '--key', sandbox.recipient.privateFile, '--output', tarFile]);
    assert.equal(restored.code, EXIT.OK, restored.log);
    const names = execFileSync('tar', ['-tf', tarFile], { maxBuffer: 64 * 1024 * 1024 }).toString().split('\n').filter(Boolean);
    assert.equal(names.filter((n) => n.includes('f'.repeat(200))).length, 3_000);
    assert.ok(names.some((n) => n.endsWith('-dash/f')), 'the directory named "-dash" is in the archive');
    const tooMany = await backup([{ name: 'toomany', type: 'files', paths: paths.slice(0, 3), excludes: paths.map((p) => `${p}-excluded`) }]);
    assert.equal(tooMany.code, EXIT.CONFIG, tooMany.log);
    assert.match(tooMany.log, /toomany.*too long for a command line/);
    assert.match(tooMany.log, /fewer/);
  });

  test('a PostgreSQL source whose excludes make pg_dump\'s command line too long: exit 3, and the inventory session it opened is closed (no hang)', { timeout: 120_000 }, async () => {
    const excludeTables = Array.from({ length: 3_000 }, (_, i) => `public.${'t'.repeat(1_000)}${i}`);
    const result = await backup([pgSource('longpg', { excludeTables })]);
    assert.equal(result.code, EXIT.CONFIG, result.log);
    assert.match(result.log, /longpg.*too long for a command line/);
  });

  test('a path under /proc, /sys or /dev (tar can block forever reading them): exit 3 naming the path, before any dump', async () => {
    const result = await backup([{ name: 'procs', type: 'files', paths: ['/etc/hostname', '/proc/kmsg'] }]);
    assert.equal(result.code, EXIT.CONFIG, result.log);
    assert.match(result.log, /\/proc\/kmsg/);
    assert.match(result.log, /virtual file system/);
  });
});
