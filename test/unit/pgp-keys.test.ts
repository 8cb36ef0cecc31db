import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { canEncrypt, recipientProblems, sharedKeyIds } from '../../runtime/key-roles';
import { generateKeyPair, readPublicKeys } from '../../runtime/pgp';

/** Key roles: which key may be a recipient, which may be a signing key, and reading every key given. */
const EXAMPLE = readFileSync(join(__dirname, '..', '..', 'infra', 'example-keys', 'escrow.pub.asc'), 'utf8');

describe('key roles', () => {
  test('several armored blocks one after the other are all read (not only the first)', async () => {
    const a = await generateKeyPair({ name: 'a' });
    const b = await generateKeyPair({ name: 'b' });
    const keys = await readPublicKeys(`${a.publicKey}\n${b.publicKey}`, 'recipients');
    assert.deepEqual(keys.map((k) => k.getFingerprint().toLowerCase()), [a.fingerprint, b.fingerprint]);
  });

  test('signing pairs are sign-only, recipient pairs encrypt; neither prefers digests GnuPG 2.2 lacks', async () => {
    const signing = await generateKeyPair({ name: 's' }, undefined, { signOnly: true });
    const recipient = await generateKeyPair({ name: 'r' }, 'pass phrase');
    const [signingKey] = await readPublicKeys(signing.publicKey, 's');
    const [recipientKey] = await readPublicKeys(recipient.publicKey, 'r');
    assert.equal(canEncrypt(signingKey), false);
    assert.equal(canEncrypt(recipientKey), true);
    for (const key of [signingKey, recipientKey]) {
      const prefs = key.users.flatMap((u) => u.selfCertifications.flatMap((s) => s.preferredHashAlgorithms ?? []));
      assert.ok(prefs.length > 0);
      assert.ok(!prefs.includes(openpgp.enums.hash.sha3_256) && !prefs.includes(openpgp.enums.hash.sha3_512), `no SHA-3 in ${prefs.join(',')}`);
      await key.verifyPrimaryKey();
    }
    const locked = await openpgp.readPrivateKey({ armoredKey: recipient.privateKey });
    assert.equal(locked.isDecrypted(), false, 'the passphrase still protects the re-certified key');
  });

  test('a recipient that is a signing key of any group, or the example key, is named with the reason', async () => {
    const recipient = await generateKeyPair({ name: 'r' });
    const signing = await generateKeyPair({ name: 's' }, undefined, { signOnly: true });
    const [r] = await readPublicKeys(recipient.publicKey, 'r');
    const [s] = await readPublicKeys(signing.publicKey, 's');
    const [example] = await readPublicKeys(EXAMPLE, 'example');
    assert.deepEqual(recipientProblems([r], [{ owner: 'group db', keys: [s] }]), []);
    assert.deepEqual(sharedKeyIds([r], [s]), []);
    const problems = recipientProblems([r, s, example], [{ owner: 'group web', keys: [] }, { owner: 'group db', keys: [s] }]);
    assert.equal(problems.length, 2);
    assert.match(problems[0], new RegExp(`key ${signing.fingerprint} is the signing key of group db`));
    assert.match(problems[1], /is the example key committed in infra\/example-keys\/escrow\.pub\.asc/);
  });
});
