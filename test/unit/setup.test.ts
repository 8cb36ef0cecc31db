import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

function runSetupCheck(path: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'setup.ts'), '--check'], { cwd: root, env: { ...process.env, PATH: path }, encoding: 'utf8' });
}

test('npm run setup -- --check names each missing tool with the command that installs it, and fails', () => {
  const bin = mkdtempSync(join(tmpdir(), 'coldseal-setup-'));
  try {
    symlinkSync(process.execPath, join(bin, 'node'));
    const result = runSetupCheck(bin);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /missing zstd \(for the agent's compressor\): apt-get install -y zstd/);
    assert.match(result.stderr, /missing GnuPG .*: apt-get install -y gnupg/);
    assert.match(result.stderr, /missing moto_server .*: pip install "moto\[server\]>=5"/);
    assert.doesNotMatch(result.stderr, /Node\.js/, 'node itself is present');
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test('on this machine (as CI leaves it) every prerequisite is present', () => {
  const result = runSetupCheck(process.env.PATH ?? '');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /every prerequisite is present/);
});
