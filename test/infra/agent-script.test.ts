import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedExecutableName, compressedExecutableName, type AgentExecutable } from '../../format/agent-executables';
import { EXIT } from '../../format/exit-codes';
import { agentScriptLines, substituteParameters, type AgentScriptExecutable } from '../../infra/lib/agent-script';
import { buildAgentExecutablesSync } from '../../scripts/build-agent';

/**
 * The document's shell step (infra/lib/agent-script.ts) run with /bin/sh as SSM runs it, against
 * the real executables: the downloads its aws:downloadContent steps would leave are the real .gz
 * files, `uname` and `getconf` are fakes on PATH that play other hosts. The exec'd agent finds no
 * AWS (an endpoint nothing listens on) and says so: that it said so is the proof it ran.
 */
let executables: AgentExecutable[];
let x64: AgentExecutable;
let arm64: AgentExecutable;

before(() => {
  executables = buildAgentExecutablesSync();
  x64 = executables.find((e) => e.arch === 'x64')!;
  arm64 = executables.find((e) => e.arch === 'arm64')!;
});

/** Every host's directory (each holds an executable of 130 MB): removed at the end. */
const hosts: string[] = [];
after(() => {
  for (const dir of hosts) rmSync(dir, { recursive: true, force: true });
});

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface Host {
  readonly dir: string;
  readonly home: string;
  readonly agentDir: string;
  readonly downloads: string;
  readonly bin: string;
}

/** A fresh host: an empty COLDSEAL_HOME, a download directory, fakes of `uname -m` and `getconf GNU_LIBC_VERSION` (null: no glibc). */
function host(machine = 'x86_64', libc: string | null = 'glibc 2.36'): Host {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-script-'));
  hosts.push(dir);
  const h = { dir, home: join(dir, 'home'), agentDir: join(dir, 'home', 'agent'), downloads: join(dir, 'download'), bin: join(dir, 'bin') };
  for (const d of [h.home, h.downloads, h.bin]) mkdirSync(d);
  writeFileSync(join(h.bin, 'uname'), `#!/bin/sh\n[ "$1" = -m ] && echo ${machine}\n`, { mode: 0o755 });
  // musl's getconf (Alpine) knows no GNU_LIBC_VERSION: it fails.
  writeFileSync(join(h.bin, 'getconf'), libc ? `#!/bin/sh\n[ "$1" = GNU_LIBC_VERSION ] && echo '${libc}'\n` : '#!/bin/sh\necho "getconf: $1: invalid configuration variable" >&2\nexit 1\n', { mode: 0o755 });
  return h;
}

/** What the download steps leave: both architectures' .gz files (hard links to dist/agent's when the file system allows). */
function download(h: Host, replace: Partial<Record<'x64' | 'arm64', Buffer>> = {}): void {
  for (const e of executables) {
    const target = join(h.downloads, compressedExecutableName(e.arch));
    const replacement = replace[e.arch];
    if (replacement) writeFileSync(target, replacement);
    else {
      try {
        linkSync(e.compressedPath, target);
      } catch {
        copyFileSync(e.compressedPath, target);
      }
    }
  }
  // The SSM Agent leaves an ETag file beside them (artifact.go s3Download).
  writeFileSync(join(h.downloads, `${'a'.repeat(40)}.etag`), '"etag"');
}

function script(list: readonly AgentScriptExecutable[] = executables): string {
  return substituteParameters(agentScriptLines({ executables: list, region: 'us-east-1' }).join('\n'), { group: 'db', action: 'backup', tier: 'auto', sources: 'all' });
}

/**
 * The shells a host's /bin/sh can be: dash (Debian, Ubuntu: this machine's /bin/sh) and bash in
 * POSIX mode (RHEL, Amazon Linux, SUSE).
 */
const SHELLS: readonly (readonly string[])[] = [['/bin/sh'], ['/bin/bash', '--posix']];

function run(shell: readonly string[], h: Host, options: { text?: string; path?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const file = join(h.dir, '_script.sh');
  writeFileSync(file, options.text ?? script());
  const result = spawnSync(shell[0], [...shell.slice(1), file], {
    encoding: 'utf8',
    env: {
      PATH: options.path ?? `${h.bin}:/usr/bin:/bin`,
      COLDSEAL_HOME: h.home,
      COLDSEAL_DOWNLOADS: h.downloads,
      // For the exec'd agent: no AWS here, and no waiting for it.
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'example',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      AWS_MAX_ATTEMPTS: '1',
    },
  });
  assert.equal(result.error, undefined, `${shell.join(' ')} could not run: ${String(result.error)}`);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const cached = (h: Host) => (existsSync(h.agentDir) ? readdirSync(h.agentDir).sort() : []);

function assertDownloadsGone(h: Host): void {
  assert.deepEqual(readdirSync(h.downloads), [], 'both downloads and the ETag file are removed');
}

/** The exec'd agent's own words: it read its arguments and tried SSM Parameter Store. */
const AGENT_RAN = /cannot read configuration parameter \/coldseal\/groups\/db\/config: connect ECONNREFUSED 127\.0\.0\.1:9/;

for (const shell of SHELLS) {
  const name = shell.join(' ');
  describe(`the document script on an x86_64 host (${name})`, () => {
    const h = host('x86_64');

    test('installs the x64 executable, removes older versions and their code caches, runs it', () => {
      mkdirSync(h.agentDir, { mode: 0o700 });
      for (const old of ['coldseal-agent-0123456789abcdef', 'coldseal-agent-0123456789abcdef.v8cache', 'coldseal-agent-fedcba9876543210']) writeFileSync(join(h.agentDir, old), 'an older version');
      download(h);
      const result = run(shell, h);
      assert.equal(result.code, EXIT.STORAGE, result.stderr);
      assert.match(result.stderr, AGENT_RAN);
      const name = cachedExecutableName(x64.sha256);
      // The smoke test ran the executable (--version), which wrote its code cache next to it.
      assert.deepEqual(cached(h), [name, `${name}.v8cache`]);
      assert.equal(sha256(join(h.agentDir, name)), x64.sha256);
      assert.equal(statSync(join(h.agentDir, name)).mode & 0o777, 0o700);
      assert.equal(statSync(h.agentDir).mode & 0o777, 0o700);
      assertDownloadsGone(h);
    });

    test('a cache hit never reads the downloads: garbage in them does not matter', () => {
      const file = join(h.agentDir, cachedExecutableName(x64.sha256));
      const before = statSync(file);
      download(h, { x64: Buffer.from('not the agent'), arm64: Buffer.from('not the agent either') });
      const result = run(shell, h);
      assert.equal(result.code, EXIT.STORAGE, result.stderr);
      assert.match(result.stderr, AGENT_RAN);
      const after = statSync(file);
      assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], 'the cached copy was not replaced');
      assertDownloadsGone(h);
    });
  });

  describe(`the document script refuses (${name})`, () => {
    test('a download with another SHA-256: EXIT.INTEGRITY, nothing cached', () => {
      const h = host('x86_64');
      const tampered = readFileSync(x64.compressedPath);
      tampered[tampered.length - 100] ^= 0xff;
      download(h, { x64: tampered });
      const result = run(shell, h);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      assert.equal(result.stderr.trim(), `coldseal: the agent downloaded to ${join(h.downloads, compressedExecutableName('x64'))} does not have the SHA-256 this document expects; refusing to run it`);
      assert.deepEqual(cached(h), []);
      assertDownloadsGone(h);
    });

    test('a download that decompresses to another executable: EXIT.INTEGRITY, nothing cached', () => {
      const h = host('x86_64');
      download(h);
      const wrong = executables.map((e) => (e.arch === 'x64' ? { ...e, sha256: '0'.repeat(64) } : e));
      const result = run(shell, h, { text: script(wrong) });
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      assert.match(result.stderr, /^coldseal: the agent decompressed from .*coldseal-agent-linux-x64\.gz does not have the SHA-256 this document expects; refusing to run it$/m);
      assert.deepEqual(cached(h), []);
      assertDownloadsGone(h);
    });

    test('an unsupported machine: EXIT.CONFIG, saying which', () => {
      const h = host('s390x');
      download(h);
      const result = run(shell, h);
      assert.equal(result.code, EXIT.CONFIG);
      assert.equal(result.stderr.trim(), 'coldseal: this host is s390x; the agent runs on x86_64 and aarch64 Linux');
      assert.deepEqual(cached(h), []);
      assertDownloadsGone(h);
    });

    test('no glibc (musl, as on Alpine): EXIT.CONFIG, saying so', () => {
      const h = host('x86_64', null);
      download(h);
      const result = run(shell, h);
      assert.equal(result.code, EXIT.CONFIG);
      assert.equal(result.stderr.trim(), "coldseal: this host's C library is not glibc (getconf GNU_LIBC_VERSION says: nothing); the agent needs glibc 2.28 or later, and musl (Alpine Linux) will not do");
      assert.deepEqual(cached(h), []);
      assertDownloadsGone(h);
    });

    test('a glibc older than 2.28 (Amazon Linux 2): EXIT.CONFIG, saying which', () => {
      const h = host('x86_64', 'glibc 2.26');
      download(h);
      const result = run(shell, h);
      assert.equal(result.code, EXIT.CONFIG);
      assert.match(result.stderr, /^coldseal: this host has glibc 2\.26; the agent needs glibc 2\.28 or later/);
      assertDownloadsGone(h);
    });

    test('a host without sha256sum: EXIT.CONFIG, naming it', () => {
      const h = host('x86_64');
      download(h);
      // A PATH with the fakes and what the script's commands need, but no sha256sum.
      const where = (tool: string) => ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p))!;
      for (const tool of ['rm', 'mkdir', 'chmod', 'ln', 'cp', 'mv', 'gzip']) symlinkSync(where(tool), join(h.bin, tool));
      const result = run(shell, h, { path: h.bin });
      assert.equal(result.code, EXIT.CONFIG);
      assert.match(result.stderr, /^coldseal: this host has no sha256sum on PATH; fetching the agent needs uname, getconf, sha256sum and gzip/);
      assertDownloadsGone(h);
    });
  });

  describe(`the document script on an aarch64 host (${name})`, () => {
    test('installs the arm64 executable (checked by SHA-256); this x86_64 machine cannot exec it, and the smoke test says so', () => {
      const h = host('aarch64');
      download(h);
      const result = run(shell, h);
      assert.equal(result.code, EXIT.CONFIG, result.stderr);
      // The SHA-256 in the message is computed from the installed file, before it is removed again.
      const message = `coldseal: the agent for aarch64 (SHA-256 ${arm64.sha256}) does not start on this host: `;
      assert.ok(result.stderr.startsWith(message), result.stderr);
      assert.match(result.stderr.slice(message.length), new RegExp(`${cachedExecutableName(arm64.sha256)}: (cannot execute binary file: )?Exec format error`));
      assert.deepEqual(cached(h), [], 'an executable that does not start is not kept: the next run says the same');
      assertDownloadsGone(h);
    });
  });
}

test('the script is the same text whatever the order of the executables given', () => {
  assert.equal(script([...executables].reverse()), script());
});
