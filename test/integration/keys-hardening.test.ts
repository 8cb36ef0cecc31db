import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { canEncrypt } from '../../runtime/key-roles';
import { generateKeyPair, readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { groupParameters } from '../../format/parameters';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';

/**
 * Keys in the wrong place: `keys publish` must refuse anything that can decrypt or that is part of
 * a configured recipient (SSM keeps every earlier value in its history); `keys generate` makes
 * sign-only signing keys whose preferences GnuPG 2.2 knows, and writes files atomically (0600
 * temp + rename: no kept mode, no followed symlink, no half pair); a backup refuses a recipient
 * that is the group's signing key.
 */
let sandbox: AgentSandbox;
let env: Record<string, string>;
let ssm: SSMClient;

before(async () => {
  sandbox = await createAgentSandbox();
  env = { AWS_ENDPOINT_URL: sandbox.account.clientConfig.endpoint };
  ssm = new SSMClient(sandbox.account.clientConfig);
});

async function parameterExists(name: string): Promise<boolean> {
  return ssm.send(new GetParameterCommand({ Name: name })).then(
    () => true,
    (error: Error) => {
      if (error.name === 'ParameterNotFound') return false;
      throw error;
    },
  );
}

function gpgImport(file: string): string {
  const home = mkdtempSync(join(tmpdir(), 'cs-gpg-'));
  try {
    // gpg prints its import report, warnings included, on stderr.
    const result = spawnSync('gpg', ['--homedir', home, '--batch', '--import', file], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    return result.stderr;
  } finally {
    try {
      execFileSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore' });
    } catch {
      // no agent started
    }
    rmSync(home, { recursive: true, force: true });
  }
}

describe('keys publish refuses keys that must never be in AWS', () => {
  test('the recipient private key (it can decrypt): exit 7, nothing stored', async () => {
    const out = join(sandbox.dir, 'k-recipient');
    assert.equal((await sandbox.runCli(['keys', 'generate', '--out', out, '--only', 'recipient'])).code, EXIT.OK);
    const result = await sandbox.runCli(['keys', 'publish', '--group', 'leak', '--signing-key', join(out, 'recipient.key.asc')], env);
    assert.equal(result.code, EXIT.KEYS, result.log);
    assert.match(result.log, /recipient\.key\.asc \(key [0-9a-f]{40}\) can decrypt: it has an encryption key/);
    assert.match(result.log, /Nothing was published/);
    assert.equal(await parameterExists(groupParameters('leak').signingKey), false);
  });

  test('a signing key with an encryption subkey (as older versions generated): exit 7', async () => {
    const old = await generateKeyPair({ name: 'old-style signing' });
    const file = join(sandbox.dir, 'old-signing.key.asc');
    writeFileSync(file, old.privateKey, { mode: 0o600 });
    const result = await sandbox.runCli(['keys', 'publish', '--group', 'oldstyle', '--signing-key', file], env);
    assert.equal(result.code, EXIT.KEYS, result.log);
    assert.equal(await parameterExists(groupParameters('oldstyle').signingKey), false);
  });

  test('a sign-only key that shares its primary with the configured recipient: exit 7, naming the recipients parameter', async () => {
    const recipient = await generateKeyPair({ name: 'group recipient' });
    const names = groupParameters('shared');
    await ssm.send(new PutParameterCommand({ Name: names.recipients, Type: 'String', Value: recipient.publicKey }));
    // The recipient's primary key with its encryption subkey stripped: sign-only, yet part of the recipient.
    const stripped = await openpgp.readPrivateKey({ armoredKey: recipient.privateKey });
    stripped.subkeys = [];
    assert.equal(canEncrypt(stripped), false);
    const file = join(sandbox.dir, 'stripped.key.asc');
    writeFileSync(file, stripped.armor(), { mode: 0o600 });
    const result = await sandbox.runCli(['keys', 'publish', '--group', 'shared', '--signing-key', file], env);
    assert.equal(result.code, EXIT.KEYS, result.log);
    assert.match(result.log, new RegExp(`shares key id [0-9a-f]{16} with recipient ${recipient.fingerprint} in ${names.recipients}`));
    assert.equal(await parameterExists(names.signingKey), false);
  });
});

describe('keys generate', () => {
  test('the signing pair is sign-only, the recipient pair encrypts, and gpg 2.2 imports both without warnings', async () => {
    const out = join(sandbox.dir, 'k-gen');
    const result = await sandbox.runCli(['keys', 'generate', '--out', out, '--group', 'prod']);
    assert.equal(result.code, EXIT.OK, result.log);
    const signing = await readPrivateKey(readFileSync(join(out, 'prod-signing.key.asc'), 'utf8'), 'signing');
    assert.equal(canEncrypt(signing), false, 'no encryption subkey on a signing key');
    assert.equal(signing.subkeys.length, 0);
    const [signingPublic] = await readPublicKeys(readFileSync(join(out, 'prod-signing.pub.asc'), 'utf8'), 'signing');
    await assert.rejects(openpgp.encrypt({ message: await openpgp.createMessage({ text: 'x' }), encryptionKeys: signingPublic }));
    const [recipient] = await readPublicKeys(readFileSync(join(out, 'recipient.pub.asc'), 'utf8'), 'recipient');
    assert.equal(canEncrypt(recipient), true);
    for (const file of ['recipient.key.asc', 'prod-signing.key.asc']) {
      const report = gpgImport(join(out, file));
      assert.match(report, /secret key imported/);
      assert.doesNotMatch(report, /WARNING|unavailable/i, report);
    }
  });

  test('--force replaces a 0644 key file and a symlink atomically: the new files are 0600/0644 regular files, the symlink target untouched', async () => {
    const out = join(sandbox.dir, 'k-force');
    mkdirSync(out, { mode: 0o700 });
    writeFileSync(join(out, 'recipient.key.asc'), 'old key\n', { mode: 0o644 });
    const victim = join(sandbox.dir, 'victim.txt');
    writeFileSync(victim, 'do not touch\n');
    symlinkSync(victim, join(out, 'recipient.pub.asc'));
    const result = await sandbox.runCli(['keys', 'generate', '--out', out, '--only', 'recipient', '--force']);
    assert.equal(result.code, EXIT.OK, result.log);
    assert.equal(statSync(join(out, 'recipient.key.asc')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(out, 'recipient.key.asc'), 'utf8'), /BEGIN PGP PRIVATE KEY BLOCK/);
    const pub = lstatSync(join(out, 'recipient.pub.asc'));
    assert.ok(pub.isFile() && !pub.isSymbolicLink(), 'the symlink was replaced, not followed');
    assert.equal(readFileSync(victim, 'utf8'), 'do not touch\n');
    const [publicKey] = await readPublicKeys(readFileSync(join(out, 'recipient.pub.asc'), 'utf8'), 'p');
    const privateKey = await readPrivateKey(readFileSync(join(out, 'recipient.key.asc'), 'utf8'), 'k');
    assert.equal(publicKey.getFingerprint(), privateKey.getFingerprint());
  });

  test('with only the .pub present and no --force: refused before writing anything (no mismatched pair)', async () => {
    const out = join(sandbox.dir, 'k-lonepub');
    mkdirSync(out, { mode: 0o700 });
    writeFileSync(join(out, 'prod-signing.pub.asc'), 'old public\n');
    const result = await sandbox.runCli(['keys', 'generate', '--out', out, '--group', 'prod']);
    assert.equal(result.code, EXIT.REFUSED, result.log);
    assert.match(result.log, /prod-signing\.pub\.asc already exists; a key is never overwritten silently/);
    for (const file of ['prod-signing.key.asc', 'recipient.key.asc', 'recipient.pub.asc']) assert.throws(() => lstatSync(join(out, file)), /ENOENT/, `${file} must not be written`);
    assert.equal(readFileSync(join(out, 'prod-signing.pub.asc'), 'utf8'), 'old public\n');
  });
});

describe('backup refuses a signing key as recipient', () => {
  test('recipients = the group signing key: exit 7 before any dump, nothing uploaded', async () => {
    const config = sandbox.config({ recipients: { file: sandbox.signing.publicFile }, sources: [{ name: 'etc', type: 'files', paths: [sandbox.dir] }] });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
    assert.equal(result.code, EXIT.KEYS, result.log);
    assert.match(result.log, /recipients: key [0-9a-f]{40} is the signing key of group testgroup/);
    assert.deepEqual(await sandbox.listKeys('backups/'), []);
  });

  test('recipients = the committed example key: exit 7, naming the command that makes real keys', async () => {
    const config = sandbox.config({ recipients: { file: join(__dirname, '..', '..', 'infra', 'example-keys', 'escrow.pub.asc') }, sources: [{ name: 'etc', type: 'files', paths: [sandbox.dir] }] });
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
    assert.equal(result.code, EXIT.KEYS, result.log);
    assert.match(result.log, /example key committed in infra\/example-keys\/escrow\.pub\.asc.*coldseal keys generate/);
  });
});
