import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { EXIT } from '../../format/exit-codes';
import { installLine, OS_RELEASE_TEST_HOOK, parseOsRelease, postgresMajor } from '../../format/host-tools';
import { tail } from '../../lambdas/monitor/core/command-failure';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { createAlertInbox, type AlertInbox } from '../../local-system/alerts';
import { createPgFixture, dropPgDatabase, PG, pgSource, uniqueDbName } from '../../local-system/databases';

/**
 * A host without the database's client tools, or with ones too old for the server, is told which
 * tool, what was found, what is needed and the line that installs it on its distribution; nothing
 * is dumped or uploaded, and the failure is alerted as any other. The monitor's alert for the
 * failed SSM command quotes the output's tail: the line is in it.
 */
let sandbox: AgentSandbox;
let inbox: AlertInbox;
let serverMajor: number;
const db = uniqueDbName('cs_tools');
const UBUNTU_2204 = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n';

before(async () => {
  sandbox = await createAgentSandbox();
  inbox = await createAlertInbox(sandbox.account, { waitSeconds: 3 });
  await createPgFixture(db, 100);
  const client = new Client({ ...PG, database: 'postgres' });
  await client.connect();
  try {
    serverMajor = postgresMajor((await client.query<{ server_version: string }>('show server_version')).rows[0].server_version)!;
  } finally {
    await client.end();
  }
});

after(async () => {
  await dropPgDatabase(db);
});

async function backup(source: ReturnType<typeof pgSource>, env: Record<string, string> = {}) {
  const config = sandbox.config({ sources: [source], alertTopicArn: inbox.topicArn });
  return sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily'], env);
}

async function assertNothingStored(source: string) {
  assert.deepEqual((await sandbox.listKeys()).filter((k) => k.includes(`/${source}/`)), [], 'no manifest, no object');
  assert.deepEqual((await sandbox.openMultipartUploads()).filter((k) => k.includes(`/${source}/`)), [], 'no upload left open');
}

describe('database client tools missing or too old', () => {
  test('no pg_dump on PATH: which tool, what is needed, the line for this distribution; nothing stored; alerted, and the line survives the monitor tail', async () => {
    // Every command of /usr/bin but pg_dump: the host as it is, without the one tool.
    const bin = join(sandbox.dir, 'bin-no-pg_dump');
    mkdirSync(bin);
    for (const name of readdirSync('/usr/bin')) if (name !== 'pg_dump') symlinkSync(join('/usr/bin', name), join(bin, name));
    const osRelease = join(sandbox.dir, 'os-release-ubuntu2204');
    writeFileSync(osRelease, UBUNTU_2204);

    const result = await backup(pgSource('notools', [db]), { PATH: bin, [OS_RELEASE_TEST_HOOK]: osRelease });

    assert.equal(result.code, EXIT.SOURCE, result.log);
    const line = installLine(parseOsRelease(UBUNTU_2204), { tool: 'pg_dump', postgresMajor: serverMajor })!;
    // Ubuntu 22.04's own client is 14: below the server's major here, so the PGDG repository for jammy.
    assert.match(line, serverMajor > 14 ? /jammy-pgdg main.*postgresql-client-\d+$/ : /^sudo apt-get install -y postgresql-client-14$/);
    assert.ok(
      result.log.includes(`source notools failed: source notools: pg_dump --version: pg_dump is not on PATH (needed: pg_dump of PostgreSQL ${serverMajor} or newer (the server's major)). Install: ${line} (Ubuntu 22.04.4 LTS), or set the source's binDir`),
      result.log,
    );
    await assertNothingStored('notools');

    const [alert] = await inbox.receive();
    assert.ok(alert, 'the failure is alerted like any other');
    assert.equal(alert.subject, 'coldseal FAILED: testgroup/testhost notools');
    assert.ok(alert.message.includes(line), alert.message);
    // What the monitor quotes of the failed command's output (its standard error) keeps the line whole.
    assert.ok(tail(result.stderr).includes(line), tail(result.stderr));
  });

  test('a pg_dump older than the server: refused before any dump, naming what was found, what is needed and the line', async () => {
    const bin = join(sandbox.dir, 'bin-old-pg_dump');
    mkdirSync(bin);
    symlinkSync('/usr/bin/psql', join(bin, 'psql'));
    const ran = join(sandbox.dir, 'old-pg_dump-dumped');
    writeFileSync(join(bin, 'pg_dump'), `#!/bin/sh\nif [ "$1" = --version ]; then echo 'pg_dump (PostgreSQL) 9.6.24'; exit 0; fi\ntouch '${ran}'\nhead -c 100000 /dev/urandom\n`);
    chmodSync(join(bin, 'pg_dump'), 0o755);

    // This host's own /etc/os-release (no test hook).
    const result = await backup(pgSource('oldtools', [db], { binDir: bin }));

    assert.equal(result.code, EXIT.SOURCE, result.log);
    assert.match(result.log, new RegExp(`source oldtools: pg_dump 9\\.6\\.24 \\(${join(bin, 'pg_dump').replace(/[/.]/g, '\\$&')}\\) is older than the server, PostgreSQL ${serverMajor}\\.\\d+, and cannot dump it \\(needed: pg_dump of PostgreSQL ${serverMajor} or newer \\(the server's major\\)\\); nothing was dumped`));
    const line = installLine(existsSync('/etc/os-release') ? parseOsRelease(readFileSync('/etc/os-release', 'utf8')) : undefined, { tool: 'pg_dump', postgresMajor: serverMajor })!;
    assert.ok(result.log.includes(`Install: ${line}`), result.log);
    assert.ok(result.log.includes("or set the source's binDir to a newer one"), result.log);
    assert.equal(existsSync(ran), false, 'pg_dump was never run to dump');
    await assertNothingStored('oldtools');
    const [alert] = await inbox.receive();
    assert.ok(alert?.message.includes(line), alert?.message);
    assert.ok(tail(result.stderr).includes(line));
  });
});
