import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_SUPPORT } from '../../format/node-support';
import { PREREQUISITES } from '../../scripts/prerequisites';
import { nodeVersionNotice } from '../../agent/src/node-notice';
import { createAgentSandbox } from '../harness/agent';

/**
 * The AWS SDK's multi-line Node-version warning is never printed; our one-line notice says which
 * Node versions are supported until when, at most once per user and Node major.
 */
test('on an old Node: one notice, once; on a current one: none', () => {
  const home = mkdtempSync(join(tmpdir(), 'cs-home-'));
  try {
    const first = nodeVersionNotice('20.19.0', home);
    assert.match(first ?? '', /^Node 20\.19\.0: coldseal supports Node 20 and later, but AWS SDK releases after the first week of January 2027 need Node 22\+.*upgrade this machine to Node 24/);
    assert.equal(nodeVersionNotice('20.19.0', home), undefined, 'shown once');
    assert.equal(nodeVersionNotice('24.1.0', home), undefined);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('the CLI prints no NodeVersionSupportWarning in a list/status/verify sequence, and our notice at most once', async () => {
  const sandbox = await createAgentSandbox();
  const config = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'etc', type: 'files', paths: [sandbox.dir] }] }));
  const home = mkdtempSync(join(tmpdir(), 'cs-home-'));
  try {
    // As on a host: warnings not silenced, the SDK's switch not set.
    const env: NodeJS.ProcessEnv = { ...process.env, ...sandbox.account.env, HOME: home };
    delete env.NODE_NO_WARNINGS;
    delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    const cli = join(__dirname, '..', '..', 'agent', 'src', 'cli.ts');
    const outputs = ['list', 'status', 'verify'].map((command) => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', cli, command, '--config', config], { env, encoding: 'utf8', cwd: join(__dirname, '..', '..') });
      return `${result.stdout}\n${result.stderr}`;
    });
    const all = outputs.join('\n');
    assert.doesNotMatch(all, /NodeVersionSupportWarning/);
    const notices = all.match(/coldseal supports Node 20 and later/g) ?? [];
    assert.equal(notices.length, Number(process.versions.node.split('.')[0]) < 22 ? 1 : 0, all);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('one Node.js minimum for the CLI everywhere: package.json engines, npm run setup, the README; no Node install line for hosts', () => {
  const root = join(__dirname, '..', '..');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
  assert.equal(pkg.engines.node, `>=${NODE_SUPPORT.minimumMajor}`);
  assert.ok(PREREQUISITES.some((p) => p.name === `Node.js ≥ ${NODE_SUPPORT.minimumMajor}`));
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const named = [...readme.matchAll(/(?:Node|Node\.js|`node`) ≥ (\d+)|Node\.js (\d+) or later is required/g)].map((m) => Number(m[1] ?? m[2]));
  assert.ok(named.length >= 2, 'the README names the minimum');
  assert.deepEqual([...new Set(named)], [NODE_SUPPORT.minimumMajor]);
  // Hosts need no Node at all: the document runs the self-contained executable.
  assert.doesNotMatch(readme, /dnf install -y nodejs|deb\.nodesource\.com/, 'no Node install line for hosts');
});
