import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AGENT_PLATFORMS, AGENT_RUNTIME_NODE_VERSION } from '../../format/agent-executables';
import { LAMBDA_RUNTIME } from '../../infra/lib/lambda-function';
import { AGENT_RUNTIME_DIR, buildAgentExecutablesSync } from '../../scripts/build-agent';

/**
 * The self-contained agent's build: the pinned Node is the one installed and the Lambdas' major,
 * two builds from the same sources give the same bytes, and each executable is an ELF file of its
 * architecture that carries the agent.
 */
const ROOT = join(__dirname, '..', '..');
const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;

/** ELF e_machine: EM_X86_64 is 62, EM_AARCH64 is 183 (System V ABI, "ELF Header"). */
const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183 };

function elfMachine(path: string): number {
  const header = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  assert.equal(header.subarray(0, 4).toString('latin1'), '\x7fELF', `${path} is not an ELF file`);
  return header.readUInt16LE(18);
}

describe('the self-contained agent build', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  test('the pinned Node is the one agent/runtime installs, and the Lambdas run its major', () => {
    const manifest = JSON.parse(readFileSync(join(AGENT_RUNTIME_DIR, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const lock = JSON.parse(readFileSync(join(AGENT_RUNTIME_DIR, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
    for (const platform of AGENT_PLATFORMS) {
      assert.equal(manifest.dependencies[platform.runtimePackage], AGENT_RUNTIME_NODE_VERSION, platform.runtimePackage);
      const locked = lock.packages[`node_modules/${platform.runtimePackage}`];
      assert.equal(locked?.version, AGENT_RUNTIME_NODE_VERSION, `${platform.runtimePackage} in the lock file`);
      assert.match(locked?.integrity ?? '', /^sha512-/, `${platform.runtimePackage} is pinned by its integrity`);
      const installed = JSON.parse(readFileSync(join(AGENT_RUNTIME_DIR, 'node_modules', platform.runtimePackage, 'package.json'), 'utf8')) as { version: string };
      assert.equal(installed.version, AGENT_RUNTIME_NODE_VERSION, `installed ${platform.runtimePackage}`);
    }
    assert.equal(LAMBDA_RUNTIME.name, `nodejs${AGENT_RUNTIME_NODE_VERSION.split('.')[0]}.x`);
  });

  test('two builds from the same sources are byte for byte the same; each executable is its architecture and runs the agent', () => {
    const builds = [0, 1].map(() => {
      const dir = mkdtempSync(join(tmpdir(), 'coldseal-build-'));
      dirs.push(dir);
      return buildAgentExecutablesSync({ outputDir: dir, reuse: false });
    });
    assert.deepEqual(
      builds[0].map((e) => [e.arch, e.sha256, e.compressedSha256]),
      builds[1].map((e) => [e.arch, e.sha256, e.compressedSha256]),
    );
    for (const executable of builds[0]) {
      assert.equal(statSync(executable.path).size, executable.bytes);
      assert.equal(statSync(executable.compressedPath).size, executable.compressedBytes);
      assert.ok(executable.compressedBytes < executable.bytes / 2, `${executable.arch}: the shipped copy is compressed`);
      assert.equal(elfMachine(executable.path), ELF_MACHINE[executable.arch], executable.arch);
      const unpacked = execFileSync('sh', ['-c', 'gzip -dc "$1" | sha256sum', 'sh', executable.compressedPath]).toString().split(' ')[0];
      assert.equal(unpacked, executable.sha256, `${executable.arch}: gzip -d gives the executable back`);
    }
    const x64 = builds[0].find((e) => e.arch === 'x64')!;
    // No node on PATH: the executable needs none.
    const out = execFileSync(x64.path, ['--version'], { env: { PATH: '/nonexistent', COLDSEAL_CODE_CACHE: 'off' } }).toString();
    assert.match(out, new RegExp(`^${version.replace(/\./g, '\\.')}\\b`));
  });
});
