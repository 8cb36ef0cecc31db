import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runtimeDescription, runningAsExecutable, type AgentRuntime } from '../../agent/src/agent-runtime';
import { nodeVersionNotice } from '../../agent/src/node-notice';
import { archiveWrapperScript } from '../../agent/src/pitr/archive-wrapper';
import { binlogPushUnits } from '../../agent/src/pitr/mysql/setup-timer';
import { selfInvocation } from '../../agent/src/pitr/self-invocation';
import { AGENT_COPY_NAMES, agentToInstall, writeAgentCopy } from '../../agent/src/pitr/setup';

/**
 * The agent as the self-contained executable (a Node single executable application), faked: what
 * runs it again, what `pitr setup` copies into the state directory and names in archive_command
 * and the binlog-push timer, and that the copy is streamed (the real executable is ~130 MB).
 * test/integration/agent-executable.test.ts runs the real one.
 */
const MiB = 1024 * 1024;

function fakeExecutable(dir: string, bytes: number): string {
  const path = join(dir, 'coldseal-agent-1234abcd');
  // Sparse but for its ends: as large as the real thing, without writing it all.
  const fd = openSync(path, 'w', 0o755);
  writeSync(fd, Buffer.from('\x7fELF fake agent'), 0, 15, 0);
  writeSync(fd, Buffer.from('end'), 0, 3, bytes - 3);
  closeSync(fd);
  return path;
}

const executable = (execPath: string): AgentRuntime => ({ executable: true, execPath, execArgv: [], script: 'coldseal-agent' });

test('here (tsx from source) is not the executable; --version says which Node runs the agent', () => {
  assert.equal(runningAsExecutable(), false);
  assert.equal(runtimeDescription(), `node ${process.version}, linux-${process.arch}`);
  assert.equal(runtimeDescription(true), `node ${process.version}, linux-${process.arch}, self-contained`);
});

test('the executable runs itself again by its own path alone, whatever argv[1] says', () => {
  assert.deepEqual(selfInvocation(executable('/var/lib/coldseal/agent/coldseal-agent-1234abcd')), ['/var/lib/coldseal/agent/coldseal-agent-1234abcd']);
  assert.deepEqual(selfInvocation({ executable: false, execPath: '/usr/bin/node', execArgv: [], script: 'dist/coldseal-agent.js' }), ['/usr/bin/node', join(process.cwd(), 'dist/coldseal-agent.js')]);
});

test('no Node-version notice from the executable, whose Node is its own', () => {
  const home = mkdtempSync(join(tmpdir(), 'cs-home-'));
  try {
    assert.equal(nodeVersionNotice('20.1.0', home, true), undefined);
    assert.match(nodeVersionNotice('20.1.0', home, false) ?? '', /^Node 20\.1\.0: /);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('pitr setup from the executable: a streamed copy in the state directory, named by archive_command and the timer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-sea-'));
  try {
    const exe = fakeExecutable(dir, 256 * MiB);
    // As setup makes it, before the copy.
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    const copyPath = join(stateDir, 'agent', AGENT_COPY_NAMES.executable);

    // Sampled while it works: neither the comparison nor the copy holds the file in memory.
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 5);
    let agent: Awaited<ReturnType<typeof agentToInstall>>;
    let again: typeof agent;
    try {
      agent = await agentToInstall(stateDir, executable(exe));
      assert.deepEqual(agent.words, [copyPath], 'the copy alone, no node');
      assert.deepEqual(agent.copy, { path: copyPath, from: exe, changes: true });
      await writeAgentCopy(agent.copy!);
      again = await agentToInstall(stateDir, executable(exe));
    } finally {
      clearInterval(sampler);
    }
    // Read chunks wait for the collector (30-50 MiB measured here, whatever the size); the whole file would be 256.
    assert.ok(peak - before < 96 * MiB, `buffers in memory at most: ${((peak - before) / MiB).toFixed(1)} MiB, far less than the file`);

    assert.equal(statSync(copyPath).size, 256 * MiB);
    assert.equal(statSync(copyPath).mode & 0o111, 0o111, 'executable');
    assert.ok(readFileSync(copyPath).equals(readFileSync(exe)), 'the same bytes');
    assert.equal(again.copy?.changes, false, 'the same bytes are not copied again');

    // Another version of the same size (a byte in the middle): compared by SHA-256, not size alone.
    const fd = openSync(exe, 'r+');
    writeSync(fd, Buffer.from('x'), 0, 1, 128 * MiB);
    closeSync(fd);
    assert.equal((await agentToInstall(stateDir, executable(exe))).copy?.changes, true);

    const wrapper = archiveWrapperScript({ source: 'pg', stateDir, agent: agent.words, configArgs: ['--config', '/etc/coldseal.json'] });
    assert.match(wrapper, new RegExp(`\\n${copyPath} pitr archive-push --source pg --config /etc/coldseal.json --state-dir "\\$state" -- "\\$1" "\\$2"\\n`));
    const units = binlogPushUnits({ source: 'shop', intervalMinutes: 5, command: [...agent.words, 'pitr', 'binlog-push', '--source', 'shop'] });
    assert.match(units.service, new RegExp(`ExecStart=${copyPath} pitr binlog-push --source shop\\n`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('from the bundle: a copy of the bundle, run by the same node; from source: no copy', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-bundle-'));
  try {
    const bundle = join(dir, 'coldseal-agent.js');
    writeFileSync(bundle, `#!/usr/bin/env node\n/* coldseal agent follows\nagent\n*/\n`);
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    const agent = await agentToInstall(stateDir, { executable: false, execPath: '/usr/bin/node', execArgv: [], script: bundle });
    const copyPath = join(stateDir, 'agent', AGENT_COPY_NAMES.bundle);
    assert.deepEqual(agent.words, ['/usr/bin/node', copyPath]);
    await writeAgentCopy(agent.copy!);
    assert.equal(readFileSync(copyPath, 'utf8'), readFileSync(bundle, 'utf8'));
    const fromSource = await agentToInstall(stateDir, { executable: false, execPath: '/usr/bin/node', execArgv: ['--import', 'tsx'], script: join(dir, 'cli.ts') });
    assert.equal(fromSource.copy, undefined);
    assert.deepEqual(fromSource.words.slice(-1), [join(dir, 'cli.ts')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
