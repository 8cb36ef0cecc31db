import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox } from '../harness/agent';

/**
 * The SSM document runs `drill --config-parameter …` with no key argument: the drill host's key
 * is found at a fixed place, and refused when missing or readable by others.
 */
test('a scheduled drill finds its key at the default place, and says where it looked', async () => {
  const sandbox = await createAgentSandbox();
  const config = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'etc', type: 'files', paths: [sandbox.dir] }] }));
  const missing = join(sandbox.dir, 'no-such-drill.key.asc');
  const noKey = await sandbox.runCli(['drill', '--config', config], { COLDSEAL_DRILL_KEY: missing });
  assert.equal(noKey.code, EXIT.KEYS);
  assert.match(noKey.log, new RegExp(`there is no recipient private key at ${missing.replace(/[.]/g, '\\.')}`));
  assert.match(noKey.log, /Put the drill recipient's private key there \(chmod 600\)/);

  const open = join(sandbox.dir, 'open.key.asc');
  writeFileSync(open, sandbox.recipient.privateKey, { mode: 0o644 });
  const exposed = await sandbox.runCli(['drill', '--config', config], { COLDSEAL_DRILL_KEY: open });
  assert.equal(exposed.code, EXIT.KEYS);
  assert.match(exposed.log, /is readable by other users \(mode 644\)/);

  // With the key in place (0600) the drill runs: no backup yet, so there is nothing to restore.
  const ready = await sandbox.runCli(['drill', '--config', config], { COLDSEAL_DRILL_KEY: sandbox.recipient.privateFile });
  assert.equal(ready.code, EXIT.NOT_FOUND, ready.log);
  assert.match(ready.log, /no complete backup of group testgroup to drill/);
});
