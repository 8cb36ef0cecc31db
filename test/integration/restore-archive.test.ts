import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand } from '@aws-sdk/client-s3';
import { peekManifest } from '../../runtime/signed-document';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { silentLog } from '../../agent/src/log';
import { ensureReadable, type ArchiveClient, type ArchivePolicy, type ArchiveState, type RetrievalTier } from '../../agent/src/restore/archive';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';

/**
 * Archived backups. moto completes a RestoreObject at once, so the waiting logic is played by a
 * fake archive that reports an ongoing retrieval first; the CLI path (refuse with the tier
 * choices, start a retrieval, use the restored copy) runs against moto.
 */
class SlowArchive implements ArchiveClient {
  readonly requests: { key: string; tier: RetrievalTier; days: number }[] = [];
  heads = 0;
  private state: ArchiveState['restore'];
  constructor(
    private readonly storageClass: string,
    initial: ArchiveState['restore'] = { state: 'none' },
    /** HEADs that still report "ongoing" after the request. */
    private ongoingFor = 2,
  ) {
    this.state = initial;
  }
  async head(): Promise<ArchiveState> {
    this.heads++;
    if (this.state.state === 'ongoing') {
      if (this.ongoingFor-- <= 0) this.state = { state: 'restored', expiry: new Date('2030-01-01T00:00:00Z') };
      else return { storageClass: this.storageClass, restore: { state: 'ongoing' }, size: 1000 };
    }
    return { storageClass: this.storageClass, restore: this.state, size: 1000 };
  }
  async requestRestore(key: string, tier: RetrievalTier, days: number): Promise<void> {
    this.requests.push({ key, tier, days });
    this.state = { state: 'ongoing' };
  }
}

function policy(overrides: Partial<ArchivePolicy>, clock = { now: 0, sleeps: [] as number[] }): ArchivePolicy {
  return {
    days: 3,
    wait: false,
    waitTimeoutMs: 60 * 60_000,
    pollIntervalMs: 60_000,
    rerun: 'coldseal restore --source db --target postgres://h/db --retrieval-tier Bulk --wait',
    sleep: async (ms) => {
      clock.sleeps.push(ms);
      clock.now += ms;
    },
    now: () => clock.now,
    ...overrides,
  };
}

const isArchived = (pattern: RegExp) => (error: unknown) => error instanceof ColdsealError && error.exitCode === EXIT.ARCHIVED && pattern.test(`${error.message} ${error.hint}`);

describe('archive retrieval logic (fake archive that takes its time)', () => {
  test('no tier chosen: stops with the tier choices, their usual waits and cost, and the command to run', async () => {
    const archive = new SlowArchive('GLACIER');
    await assert.rejects(ensureReadable(archive, ['k'], policy({ rerun: 'coldseal restore --source db --directory /x' }), silentLog), (error: unknown) => {
      assert.ok(error instanceof ColdsealError && error.exitCode === EXIT.ARCHIVED);
      assert.match(error.message, /archived in GLACIER/);
      assert.match(error.message, /Expedited\s+usually 1–5 minutes\s+highest cost/);
      assert.match(error.message, /Standard\s+usually 3–5 hours/);
      assert.match(error.message, /Bulk\s+usually 5–12 hours\s+lowest cost/);
      assert.match(error.hint ?? '', /coldseal restore --source db --directory \/x --retrieval-tier Standard/);
      return true;
    });
    assert.equal(archive.requests.length, 0);
  });

  test('--wait: starts the retrieval once, polls while it is ongoing, returns when the copy is restored', async () => {
    const archive = new SlowArchive('DEEP_ARCHIVE');
    const clock = { now: 0, sleeps: [] as number[] };
    await ensureReadable(archive, ['k1'], policy({ tier: 'Bulk', wait: true, days: 5 }, clock), silentLog);
    assert.deepEqual(archive.requests, [{ key: 'k1', tier: 'Bulk', days: 5 }]);
    assert.deepEqual(clock.sleeps, [60_000, 60_000], 'two polls saw "ongoing", the third "restored"');
    assert.equal(archive.heads, 4, 'one HEAD to decide, three while waiting');
  });

  test('--wait gives up at its time limit and says what to run later (the retrieval goes on)', async () => {
    const archive = new SlowArchive('GLACIER', { state: 'none' }, 1_000);
    const clock = { now: 0, sleeps: [] as number[] };
    await assert.rejects(
      ensureReadable(archive, ['k'], policy({ tier: 'Standard', wait: true, waitTimeoutMs: 5 * 60_000 }, clock), silentLog),
      isArchived(/still in progress after 5 min.*time limit is 5 min.*run again later: coldseal restore --source db --target postgres:\/\/h\/db$/s),
    );
    assert.equal(clock.sleeps.length, 5);
  });

  test('without --wait: starts the retrieval and exits with the exact command to run later', async () => {
    const archive = new SlowArchive('GLACIER');
    await assert.rejects(ensureReadable(archive, ['k'], policy({ tier: 'Bulk' }), silentLog), isArchived(/retrieval from GLACIER started \(Bulk, usually 5–12 hours\).*coldseal restore --source db --target postgres:\/\/h\/db /s));
    assert.equal(archive.requests.length, 1);
    // Run again while it is still going: no second request, the same advice.
    await assert.rejects(ensureReadable(archive, ['k'], policy({ tier: 'Bulk' }), silentLog), isArchived(/already in progress/));
    assert.equal(archive.requests.length, 1);
  });

  test('an already restored copy is used directly; Expedited is refused for DEEP_ARCHIVE', async () => {
    const restored = new SlowArchive('GLACIER', { state: 'restored', expiry: new Date('2030-01-01T00:00:00Z') });
    await ensureReadable(restored, ['k'], policy({}), silentLog);
    assert.equal(restored.requests.length, 0);
    await assert.rejects(ensureReadable(new SlowArchive('DEEP_ARCHIVE'), ['k'], policy({ tier: 'Expedited' }), silentLog), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /not available for DEEP_ARCHIVE/.test(e.message));
  });
});

describe('archived backups through the CLI (moto)', () => {
  let sandbox: AgentSandbox;
  let configFile: string;
  let root: string;
  const outs: string[] = [];

  before(async () => {
    sandbox = await createAgentSandbox();
    root = mkdtempSync(join(tmpdir(), 'coldseal-archive-src-'));
    writeFileSync(join(root, 'a.txt'), 'archived content\n');
    configFile = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'docs', type: 'files', paths: [root] }] }));
    const backup = await sandbox.runCli(['backup', '--config', configFile, '--tier', 'yearly']);
    assert.equal(backup.code, EXIT.OK, backup.stderr);
    const [manifestKey] = (await sandbox.listKeys('backups/yearly/')).filter((k) => k.endsWith('.manifest.json'));
    const manifest = peekManifest((await sandbox.getObject(manifestKey)).toString('utf8'));
    // What the yearly lifecycle rule does in AWS: move the ciphertext to Glacier (the manifest stays in STANDARD).
    const key = manifest.artifacts[0].key;
    await sandbox.s3.send(new CopyObjectCommand({ Bucket: sandbox.bucket, Key: key, CopySource: `${sandbox.bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`, StorageClass: 'GLACIER', MetadataDirective: 'COPY' }));
  });

  after(() => {
    for (const dir of [root, ...outs]) rmSync(dir, { recursive: true, force: true });
  });

  test('list shows the storage class; verify checks what it can without reading the archive', async () => {
    const list = await sandbox.runCli(['list', '--config', configFile, '--json']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    const rows = JSON.parse(list.stdout) as { tier: string; storage: string; artifacts: { storageClass: string }[] }[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0].artifacts[0].storageClass, 'GLACIER');
    assert.equal(rows[0].storage, 'GLACIER');

    const verify = await sandbox.runCli(['verify', '--config', configFile, '--source', 'docs']);
    assert.equal(verify.code, EXIT.OK, verify.stderr);
    assert.match(verify.stdout, /ok\s+signature: /);
    // One judgement with the verifier Lambda (format/backup-judgement.ts): an archived copy never
    // read is a WARN in both, and verify still exits 0.
    assert.match(verify.stdout, /WARN {2}checksum: archived in GLACIER/);
    assert.match(verify.stdout, /^WARN /);
  });

  test('restore stops with the choices, starts a retrieval when told, then uses the restored copy', async () => {
    const out = mkdtempSync(join(tmpdir(), 'coldseal-archive-out-'));
    outs.push(out);
    const base = ['restore', '--config', configFile, '--source', 'docs', '--key', sandbox.recipient.privateFile, '--directory', join(out, 'x')];
    const first = await sandbox.runCli(base);
    assert.equal(first.code, EXIT.ARCHIVED, first.stderr);
    assert.match(first.stderr, /archived in GLACIER.*Expedited.*Standard.*Bulk.*--retrieval-tier Standard/s);

    const started = await sandbox.runCli([...base, '--retrieval-tier', 'Bulk', '--retrieval-days', '2']);
    assert.equal(started.code, EXIT.ARCHIVED, started.stderr);
    assert.match(started.stderr, /retrieval started/);
    assert.match(started.stderr, /retrieval from GLACIER started \(Bulk, usually 5–12 hours\)/);

    const list = JSON.parse((await sandbox.runCli(['list', '--config', configFile, '--json'])).stdout) as { storage: string; artifacts: { restoredUntil?: string }[] }[];
    assert.ok(list[0].artifacts[0].restoredUntil, 'moto completed the retrieval: the listing shows until when the copy is readable');
    assert.match(list[0].storage, /GLACIER \(restored until/);

    const done = await sandbox.runCli(base);
    assert.equal(done.code, EXIT.OK, done.stderr);
    assert.match(done.stderr, /using the restored copy of archived/);
    assert.equal(readFileSync(join(out, 'x', root, 'a.txt'), 'utf8'), 'archived content\n');
  });
});
