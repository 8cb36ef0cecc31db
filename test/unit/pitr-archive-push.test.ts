import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { archiveCommandFor, archiveWrapperScript } from '../../agent/src/pitr/archive-wrapper';
import { readClusterIdentity, readSegmentHeader } from '../../agent/src/pitr/cluster-files';
import { archiverOrder, markerDir, planPush } from '../../agent/src/pitr/push-plan';
import { archiveWalFile, MAX_WAL_FILE_BYTES, type WalArchiveContext } from '../../agent/src/pitr/wal-upload';

const SEG = (n: number) => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`;

describe('planPush', () => {
  test('the oldest other ready files, history first, up to pushAhead in all; markers and the requested file left out', () => {
    const statusFiles = [`${SEG(5)}.ready`, `${SEG(3)}.ready`, `${SEG(2)}.done`, `${SEG(4)}.ready`, '00000002.history.ready', `${SEG(6)}.ready`, `${SEG(7)}.ready`, 'junk.ready', `${SEG(3)}.00000028.backup.ready`];
    const plan = planPush({ requested: SEG(3), statusFiles, markers: [SEG(4)], pushAhead: 4 });
    assert.deepEqual(plan.ahead, ['00000002.history', `${SEG(3)}.00000028.backup`, SEG(5)]);
    assert.equal(plan.readyCount, 7);
    assert.equal(plan.requestedReady, true);
    assert.deepEqual(plan.staleMarkers, []);
  });

  test('pushAhead 1 pushes only the requested file; markers of files no longer ready are stale', () => {
    const plan = planPush({ requested: SEG(9), statusFiles: [`${SEG(9)}.ready`, `${SEG(10)}.ready`], markers: [SEG(7), SEG(10), 'not-wal'], pushAhead: 1 });
    assert.deepEqual(plan.ahead, []);
    assert.deepEqual(plan.staleMarkers, [SEG(7)]);
  });

  test('archiverOrder: history files before segments, then by name', () => {
    assert.deepEqual([SEG(2), '00000003.history', SEG(1), '00000002.history'].sort(archiverOrder), ['00000002.history', '00000003.history', SEG(1), SEG(2)]);
  });

  test('markers live under the system identifier', () => {
    assert.equal(markerDir('/var/lib/coldseal/pitr/pg', '7445032834583328915'), '/var/lib/coldseal/pitr/pg/7445032834583328915/pushed');
    assert.throws(() => markerDir('/s', '../x'), /not a decimal number/);
  });
});

/** A data directory with a pg_control of system `sysid` and one WAL segment whose header says so. */
function fakeDataDir(sysid: bigint, segSize = 16 * 1024 * 1024): string {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-wrapper-'));
  mkdirSync(join(dir, 'global'));
  mkdirSync(join(dir, 'pg_wal', 'archive_status'), { recursive: true });
  const control = Buffer.alloc(8192);
  if (endianness() === 'LE') control.writeBigUInt64LE(sysid, 0);
  else control.writeBigUInt64BE(sysid, 0);
  writeFileSync(join(dir, 'global', 'pg_control'), control);
  const header = Buffer.alloc(40);
  if (endianness() === 'LE') {
    header.writeBigUInt64LE(sysid, 24);
    header.writeUInt32LE(segSize, 32);
  } else {
    header.writeBigUInt64BE(sysid, 24);
    header.writeUInt32BE(segSize, 32);
  }
  writeFileSync(join(dir, 'pg_wal', SEG(1)), header);
  truncateSync(join(dir, 'pg_wal', SEG(1)), segSize);
  return dir;
}

describe('cluster files', () => {
  test('system identifier from pg_control, segment size from a segment of that system', async () => {
    const dir = fakeDataDir(7445032834583328915n, 64 * 1024 * 1024);
    assert.deepEqual(await readClusterIdentity(dir), { systemIdentifier: '7445032834583328915', walSegmentSize: 64 * 1024 * 1024 });
    assert.deepEqual(await readSegmentHeader(join(dir, 'pg_wal', SEG(1))), { systemIdentifier: '7445032834583328915', walSegmentSize: 64 * 1024 * 1024 });
  });

  test('a zero-filled (preallocated) segment is no header', async () => {
    const dir = fakeDataDir(1n);
    writeFileSync(join(dir, 'pg_wal', SEG(2)), Buffer.alloc(64));
    await assert.rejects(readSegmentHeader(join(dir, 'pg_wal', SEG(2))), /does not start with a WAL long page header/);
  });
});

describe('the archive_command wrapper (run by /bin/sh)', () => {
  const sysid = 7445032834583328915n;
  function setup(agentStatus: number | 'missing') {
    const data = fakeDataDir(sysid);
    const state = join(data, '..', `${data.split('/').pop()}-state`);
    const calls = join(data, '..', `${data.split('/').pop()}-calls`);
    const agent = join(data, '..', `${data.split('/').pop()}-agent.sh`);
    writeFileSync(agent, `printf '%s\\n' "$@" >> '${calls}'\nexit ${agentStatus === 'missing' ? 0 : agentStatus}\n`);
    const script = archiveWrapperScript({ source: 'pg', stateDir: state, agent: agentStatus === 'missing' ? ['/nonexistent/node'] : ['/bin/sh', agent], configArgs: ['--config', '/etc/coldseal/agent.json'] });
    const wrapper = join(data, '..', `${data.split('/').pop()}-wrapper.sh`);
    writeFileSync(wrapper, script, { mode: 0o755 });
    const run = (file: string) => spawnSync('/bin/sh', [wrapper, `pg_wal/${file}`, file], { cwd: data, encoding: 'utf8' });
    const marker = (id: string, file: string) => {
      mkdirSync(join(state, id, 'pushed'), { recursive: true });
      writeFileSync(join(state, id, 'pushed', file), 'k\n');
      return join(state, id, 'pushed', file);
    };
    const agentCalls = () => (existsSync(calls) ? readFileSync(calls, 'utf8') : '');
    return { run, marker, agentCalls, state };
  }

  test('a file pushed ahead: the marker is taken, exit 0, no agent started', () => {
    const w = setup(0);
    const marker = w.marker(sysid.toString(), SEG(1));
    const result = w.run(SEG(1));
    assert.equal(result.status, 0, result.stderr);
    assert.equal(existsSync(marker), false);
    assert.equal(w.agentCalls(), '');
  });

  test('no marker (or another cluster\'s): the agent runs with %p and %f, and its status passes through', () => {
    const w = setup(5);
    const foreign = w.marker('1234', SEG(1));
    const result = w.run(SEG(1));
    assert.equal(result.status, 5);
    assert.ok(existsSync(foreign), 'another system\'s marker is left alone');
    assert.equal(w.agentCalls(), ['pitr', 'archive-push', '--source', 'pg', '--config', '/etc/coldseal/agent.json', '--state-dir', w.state, '--', `pg_wal/${SEG(1)}`, SEG(1), ''].join('\n'));
  });

  test('a name with a slash never reaches rm', () => {
    const w = setup(0);
    const result = w.run('../pushed');
    assert.equal(result.status, 0);
    assert.match(w.agentCalls(), /\.\.\/pushed/);
  });

  test('statuses of 126 and above (a signal, no node) become 1, so the archiver retries instead of aborting', () => {
    for (const [status, expected] of [[137, 1], [126, 1], [125, 125], ['missing', 1]] as const) {
      const result = setup(status).run(SEG(1));
      assert.equal(result.status, expected, `agent status ${status}: ${result.stderr}`);
      if (expected === 1) assert.match(result.stderr, /reporting 1 so that PostgreSQL retries/);
    }
  });

  test('archive_command: the wrapper quoted for sh, % doubled', () => {
    assert.equal(archiveCommandFor('/usr/local/lib/coldseal/archive-pg.sh'), '/usr/local/lib/coldseal/archive-pg.sh %p %f');
    assert.equal(archiveCommandFor("/opt/my dir/50%/a'b.sh"), "'/opt/my dir/50%%/a'\\''b.sh' %p %f");
  });
});

describe('archiveWalFile refusals before any upload', () => {
  const ctx = (dir: string) => ({ config: { group: 'g' }, host: 'h', source: 'pg', cluster: { systemIdentifier: '1', walSegmentSize: 16 * 1024 * 1024 }, dir }) as unknown as WalArchiveContext;

  test('a WAL file over 64 MiB is refused with what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coldseal-big-'));
    writeFileSync(join(dir, SEG(1)), '');
    truncateSync(join(dir, SEG(1)), MAX_WAL_FILE_BYTES * 2);
    await assert.rejects(archiveWalFile(ctx(dir), { path: join(dir, SEG(1)), walFile: SEG(1) }), (error: ColdsealError) => {
      assert.equal(error.exitCode, EXIT.CONFIG);
      assert.match(error.message, /is 134217728 bytes: coldseal archives WAL files of at most 64 MiB/);
      assert.match(error.hint!, /--wal-segsize/);
      return true;
    });
  });

  test('a segment of another cluster is refused', async () => {
    const dir = fakeDataDir(99n);
    await assert.rejects(archiveWalFile(ctx(dir), { path: join(dir, 'pg_wal', SEG(1)), walFile: SEG(1) }), /does not belong to this cluster \(system 1/);
  });

  test('a name that is not a WAL file is a usage error', async () => {
    await assert.rejects(archiveWalFile(ctx('/'), { path: '/etc/passwd', walFile: 'passwd' }), (error: ColdsealError) => error.exitCode === EXIT.USAGE);
  });
});
