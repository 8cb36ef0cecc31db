import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import { buildAgent } from '../../scripts/build-agent';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { createPgFixture, dropPgDatabase, uniqueDbName } from '../../local-system/databases';

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

/** Runs the bundle (or a copy of it at `path`), from a directory with nothing else in it. */
function runBundle(args: string[], options: { path?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [options.path ?? bundle, ...args], { cwd: tmpdir(), env: { ...process.env, ...sandbox.account.env, NODE_PATH: '', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

/**
 * The loader at the head of the bundle compiles the agent with V8's code cache, kept next to the
 * bundle: only where no one else can write, only if it was made from this very agent, and any
 * cache it cannot use just costs the compile it would have cost anyway.
 */
function bundleIn(mode: number): { dir: string; file: string; cache: string } {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-cache-'));
  chmodSync(dir, mode);
  const file = join(dir, 'coldseal-agent.js');
  copyFileSync(bundle, file);
  return { dir, file, cache: `${file}.v8cache` };
}

test('the code cache is made at the first run in a private directory, then used as it is', async () => {
  const { file, cache } = bundleIn(0o700);
  const first = await runBundle(['--version'], { path: file });
  assert.equal(first.code, EXIT.OK, first.stderr);
  assert.ok(existsSync(cache), 'the first run leaves a code cache beside the bundle');
  assert.equal(statSync(cache).mode & 0o777, 0o600, 'readable by its owner only');
  const made = statSync(cache);
  const second = await runBundle(['--version'], { path: file });
  assert.equal(second.code, EXIT.OK, second.stderr);
  assert.equal(second.stdout, first.stdout);
  const after = statSync(cache);
  assert.equal(after.ino, made.ino, 'an accepted cache is not written again');
  assert.equal(after.mtimeMs, made.mtimeMs, 'an accepted cache is not written again');
});

test('a damaged, foreign or stale code cache is ignored and replaced; the agent runs as without one', async () => {
  const { dir, file, cache } = bundleIn(0o700);
  assert.equal((await runBundle(['--version'], { path: file })).code, EXIT.OK);
  const good = readFileSync(cache);
  const damaged = Buffer.from(good);
  for (let i = 32; i < damaged.length; i += 97) damaged[i] ^= 0xff;
  const cases: [string, Buffer][] = [
    ['random bytes', randomBytes(good.length)],
    ['the right stamp over damaged code', damaged],
    ['a cache made from another agent', Buffer.concat([randomBytes(32), good.subarray(32)])],
  ];
  for (const [what, bytes] of cases) {
    writeFileSync(cache, bytes, { mode: 0o600 });
    const run = await runBundle(['--help'], { path: file });
    assert.equal(run.code, EXIT.OK, `${what}: ${run.stderr}`);
    assert.match(run.stdout, /0 {2}success/, `${what}: the agent still runs`);
    assert.ok(readFileSync(cache).subarray(0, 32).equals(good.subarray(0, 32)) && !readFileSync(cache).equals(bytes), `${what}: replaced by a cache of this agent`);
  }
  // Another user's cache file, even in our own directory, is not read: it is replaced by ours.
  writeFileSync(cache, good, { mode: 0o600 });
  chownSync(cache, 65534, 65534);
  assert.equal((await runBundle(['--version'], { path: file })).code, EXIT.OK);
  assert.equal(statSync(cache).uid, process.geteuid!(), "a cache owned by someone else is not used but replaced");
  rmSync(dir, { recursive: true, force: true });
});

test('no code cache where others can write, and none when COLDSEAL_CODE_CACHE=off', async () => {
  const shared = bundleIn(0o777);
  assert.equal((await runBundle(['--version'], { path: shared.file })).code, EXIT.OK);
  assert.ok(!existsSync(shared.cache), 'a directory others can write to gets no cache');
  const off = bundleIn(0o700);
  assert.equal((await runBundle(['--version'], { path: off.file, env: { COLDSEAL_CODE_CACHE: 'off' } })).code, EXIT.OK);
  assert.ok(!existsSync(off.cache), 'COLDSEAL_CODE_CACHE=off writes none');
  // A cache planted through a symlink is not followed.
  const linked = bundleIn(0o700);
  assert.equal((await runBundle(['--version'], { path: linked.file })).code, EXIT.OK);
  const target = join(linked.dir, 'elsewhere');
  renameSync(linked.cache, target);
  symlinkSync(target, linked.cache);
  assert.equal((await runBundle(['--version'], { path: linked.file })).code, EXIT.OK);
  assert.ok(!lstatSync(linked.cache).isSymbolicLink(), 'the symlink was replaced by a cache of our own');
});
