import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openManifest, readPublicKeys } from '../../format';
import { EXIT } from '../../format/exit-codes';
import { buildAgent } from '../../scripts/build-agent';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { createPgFixture, dropPgDatabase, uniqueDbName } from '../../e2e/databases';

/**
 * The bundle is what hosts run: one file, no node_modules. Run it from a directory with nothing
 * else in it, as root, with a source that runs its dump as another local user (runAs).
 */
let sandbox: AgentSandbox;
let bundle: string;

before(async () => {
  sandbox = await createAgentSandbox();
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-bundle-'));
  bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(await buildAgent(), bundle);
});

function runBundle(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: tmpdir(), env: { ...process.env, ...sandbox.account.env, NODE_PATH: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the bundle alone backs up PostgreSQL over the local socket as the postgres user (peer/runAs)', async () => {
  const db = uniqueDbName('cs_bundle');
  await createPgFixture(db, 500);
  try {
    const config = sandbox.config({ sources: [{ name: 'local', type: 'postgres', databases: [db], runAs: 'postgres' }] });
    const result = await runBundle(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const manifestKey = (await sandbox.listKeys('backups/daily/testgroup/testhost/local/')).find((k) => k.endsWith('.manifest.json'))!;
    const { document } = await openManifest((await sandbox.getObject(manifestKey)).toString(), await readPublicKeys(sandbox.signing.publicKey, 's'));
    assert.deepEqual(document.artifacts[0].tool.args.slice(0, 4), ['-u', 'postgres', '--', 'pg_dump']);
    assert.ok((document.artifacts[0].uncompressedBytes ?? 0) > 10_000);
  } finally {
    await dropPgDatabase(db);
  }
});

test('runAs really drops privileges: a file only root can read fails the dump as nobody', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-private-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'root-only.txt'), 'secret', { mode: 0o600 });
  const asNobody = sandbox.config({ sources: [{ name: 'private', type: 'files', paths: [join(dir, 'data')], runAs: 'nobody' }] });
  const refused = await runBundle(['backup', '--config', sandbox.writeConfig(asNobody), '--tier', 'daily']);
  assert.equal(refused.code, EXIT.SOURCE);
  assert.match(refused.stderr, /tar exited with status 2 .*Permission denied/);
  assert.deepEqual(await sandbox.listKeys('backups/daily/testgroup/testhost/private/'), []);
  const asRoot = sandbox.config({ sources: [{ name: 'private', type: 'files', paths: [join(dir, 'data')] }] });
  assert.equal((await runBundle(['backup', '--config', sandbox.writeConfig(asRoot), '--tier', 'daily'])).code, EXIT.OK);
});

test('--help documents every exit code', async () => {
  const help = await runBundle(['--help']);
  assert.equal(help.code, EXIT.OK);
  for (const line of ['0  success', '4  the dump failed', '5  S3 or another AWS service failed', '10  some sources succeeded and others failed']) assert.match(help.stdout, new RegExp(line));
});
