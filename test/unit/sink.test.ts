import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ColdsealError } from '../../agent/src/errors';
import { runTool, toolSink } from '../../agent/src/pipeline/sink';

/**
 * A database client tool that is not there when a sink starts it (a restore's psql, mysql, tar):
 * the hint is the install line for this host's distribution, as for a backup's tools
 * (format/host-tools.ts). The os-release comes from the agent's test hook, read once per process.
 */
const dir = mkdtempSync(join(tmpdir(), 'coldseal-sink-'));
const osRelease = join(dir, 'os-release');
writeFileSync(osRelease, 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n');
process.env.COLDSEAL_TEST_OS_RELEASE = osRelease;
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

async function refusal(promise: Promise<unknown>): Promise<ColdsealError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ColdsealError, `expected a ColdsealError, got ${String(error)}`);
  return error;
}

test('a missing tool started by a sink: the hint is the install line for the host, not a generic "install it"', async () => {
  const psql = await refusal(runTool({ command: 'psql', args: ['-c', 'select 1'], env: { PATH: join(dir, 'empty') } }, 'creating the target database'));
  assert.match(psql.message, /^creating the target database: psql could not be started/);
  assert.match(psql.hint ?? '', /^Install: .*apt-get install -y postgresql-client.*\(Ubuntu 24\.04\.1 LTS\)$/);
  const mysql = await refusal(runTool({ command: 'mysql', args: [], env: { PATH: join(dir, 'empty') } }, 'loading the dump'));
  assert.match(mysql.hint ?? '', /mariadb-client/);
  // Started through the shell (drain), a missing tool is the shell's 127: the same hint.
  const sink = toolSink({ command: 'pg_restore', args: [], env: { PATH: join(dir, 'empty') } }, 'restoring', { drain: true });
  sink.input.end();
  const drained = await refusal(sink.done);
  assert.match(drained.message, /pg_restore could not be started \(not found\)/);
  assert.match(drained.hint ?? '', /^Install: .*postgresql-client/);
});
