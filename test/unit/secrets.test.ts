import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { readParameter, resolvePublicKeys, resolveSecret } from '../../agent/src/secrets';

/** SSM answering GetParameter from a map; a missing name is ParameterNotFound, a name starting with "!" fails otherwise. */
function ssm(values: Record<string, string>): { client: SSMClient; decrypted: boolean[] } {
  const decrypted: boolean[] = [];
  const client = {
    send: async (command: { input: { Name: string; WithDecryption?: boolean } }) => {
      decrypted.push(Boolean(command.input.WithDecryption));
      if (command.input.Name.startsWith('!')) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      if (!(command.input.Name in values)) throw Object.assign(new Error('not found'), { name: 'ParameterNotFound' });
      return { Parameter: { Value: values[command.input.Name] } };
    },
  } as unknown as SSMClient;
  return { client, decrypted };
}

const rejectsWith = (promise: Promise<unknown>, exitCode: number, message: string, hint?: RegExp) =>
  assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ColdsealError, String(e));
    assert.equal(e.exitCode, exitCode);
    assert.equal(e.message, message);
    if (hint) assert.match(e.hint!, hint);
    return true;
  });

test('readParameter: the decrypted value; missing, empty and unreadable parameters are named with what to do', async () => {
  const { client, decrypted } = ssm({ '/p/pw': 's3cret', '/p/empty': '' });
  assert.equal(await readParameter(client, '/p/pw', 'source pg password'), 's3cret');
  assert.deepEqual(decrypted, [true], 'SecureStrings are read decrypted');
  await rejectsWith(readParameter(client, '/p/none', 'source pg password'), EXIT.CONFIG, 'source pg password: parameter /p/none does not exist', /coldseal keys publish .* put-parameter --type SecureString/);
  await rejectsWith(readParameter(client, '/p/empty', 'signing key'), EXIT.CONFIG, 'signing key: parameter /p/empty is empty');
  await rejectsWith(readParameter(client, '!/p/x', 'signing key'), EXIT.STORAGE, 'signing key: cannot read parameter !/p/x: Rate exceeded', /ssm:GetParameter \(and KMS decrypt\)/);
});

test('secrets from files: private ones must be 0600; one trailing newline is dropped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-secrets-'));
  try {
    const file = join(dir, 'pw');
    writeFileSync(file, 'line1\nline2\n');
    chmodSync(file, 0o600);
    const { client } = ssm({});
    assert.equal(await resolveSecret(client, { file }, 'password'), 'line1\nline2');
    chmodSync(file, 0o640);
    await rejectsWith(resolveSecret(client, { file }, 'password'), EXIT.CONFIG, `password: ${file} is readable by other users (mode 640)`, new RegExp(`^Run: chmod 600 ${file}$`));
    // Public keys may be readable by anyone.
    assert.equal(await resolvePublicKeys(client, { file }, 'recipients'), 'line1\nline2');
    await rejectsWith(resolveSecret(client, { file: join(dir, 'absent') }, 'password'), EXIT.CONFIG, `password: cannot read ${join(dir, 'absent')}: ENOENT`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('references: a parameter, a file, or armored keys inline', async () => {
  const { client } = ssm({ '/k/sign': 'SIGNING', '/k/pub': 'PUBLIC' });
  assert.equal(await resolveSecret(client, { parameter: '/k/sign' }, 'signing key'), 'SIGNING');
  assert.equal(await resolvePublicKeys(client, { parameter: '/k/pub' }, 'recipients'), 'PUBLIC');
  assert.equal(await resolvePublicKeys(client, { armored: 'INLINE' }, 'recipients'), 'INLINE');
});
