import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decrypt, readMessage } from 'openpgp';
import { readPrivateKey } from '../../runtime/pgp';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { mysqlSource, mysqlUrl, pgContentFingerprint, pgSource, pgUrl, uniqueDbName } from '../../local-system/databases';

/**
 * Safety dumps (the copy of what a restore replaces) are not the weakest copy of the data: 0600
 * files in a 0700 directory whatever the umask, encrypted to the recipients by default, their path
 * and size printed; a --safety-dir that is a file is a usage error, not a bug.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
let work: string;
const pgDb = uniqueDbName('cs_safe_pg');
const myDb = uniqueDbName('cs_safe_my');
let umask: number;

before(async () => {
  // The widest umask: files the agent leaves to it would come out 0666.
  umask = process.umask(0);
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  work = rt.tempDir('cs-safety-');
  await Promise.all([rt.pgFixture(pgDb, 200), rt.mysqlFixture(myDb, 200)]);
  configFile = await rt.backup(sandbox.config({ sources: [pgSource('pg', [pgDb]), mysqlSource('maria', [myDb])] }));
});

after(async () => {
  process.umask(umask);
  await rt?.cleanup();
});

function restore(args: string[]) {
  return sandbox.runCli(['restore', '--config', configFile, '--key', sandbox.recipient.privateFile, '--yes', ...args]);
}

describe('safety dumps', () => {
  test('PostgreSQL: encrypted to the recipients by default, 0600 in a directory tightened to 0700, path and size printed', async () => {
    const dir = join(work, 'pg');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const result = await restore(['--source', 'pg', '--target', pgUrl(pgDb), '--safety-dir', dir]);
    assert.equal(result.code, EXIT.OK, result.log);
    const path = /safety dump of the previous content: (.+)/.exec(result.stdout)?.[1];
    assert.ok(path, result.stdout);
    assert.match(path, /\.pgdump\.pgp$/);
    assert.match(result.stdout, /\d+(\.\d+)? [KMG]?i?B, mode 0600, encrypted to the recipients \(read it with: gpg --decrypt .+\.pgdump\.pgp > .+\.pgdump\)/);
    assert.match(result.stdout, /coldseal never deletes it/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const bytes = readFileSync(path);
    assert.notEqual(bytes.subarray(0, 5).toString(), 'PGDMP', 'not plaintext');
    const { data } = await decrypt({ message: await readMessage({ binaryMessage: bytes }), decryptionKeys: await readPrivateKey(sandbox.recipient.privateKey, 'recipient'), format: 'binary' });
    assert.equal(Buffer.from(data).subarray(0, 5).toString(), 'PGDMP');
  });

  test('MySQL with --no-encrypt-safety-dump: plaintext, still 0600 in a new 0700 directory', async () => {
    const dir = join(work, 'new', 'my');
    const result = await restore(['--source', 'maria', '--target', mysqlUrl(myDb), '--safety-dir', dir, '--no-encrypt-safety-dump']);
    assert.equal(result.code, EXIT.OK, result.log);
    const [file] = readdirSync(dir);
    assert.match(file, /\.sql$/);
    assert.match(result.stdout, /mode 0600, PLAINTEXT/);
    assert.equal(statSync(join(dir, file)).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.match(readFileSync(join(dir, file), 'utf8'), new RegExp(`CREATE DATABASE .*\`${myDb}\``));
  });

  test('a --safety-dir that is a file: exit 2 (usage), naming it, and the target untouched', async () => {
    const file = join(work, 'not-a-dir');
    writeFileSync(file, 'x');
    const before = await pgContentFingerprint(pgDb);
    const result = await restore(['--source', 'pg', '--target', pgUrl(pgDb), '--safety-dir', join(file, 'sub')]);
    assert.equal(result.code, EXIT.USAGE, result.log);
    assert.match(result.log, /--safety-dir .*not-a-dir\/sub is not a directory/);
    assert.deepEqual(await pgContentFingerprint(pgDb), before);
  });
});
