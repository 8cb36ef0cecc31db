import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { artifactKey, manifestKey, stampOf, type SourceLocation } from '../../format/layout';
import { latestOf } from '../../agent/src/catalog/latest';
import { listBackups } from '../../agent/src/catalog/listing';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';

/**
 * The listing core past one LIST page (S3 returns at most 1,000 keys per call): more than 1,000
 * small objects are written straight into moto, as a year of backups of several hosts would
 * leave them, and "latest" must never mix hosts, sources or uncommitted uploads.
 */
let sandbox: AgentSandbox;
let configFile: string;
const PER_HOST = 560;
const base = Date.parse('2025-01-01T02:00:00Z');
const stampAt = (i: number, offsetMinutes = 0) => stampOf(new Date(base + i * 86_400_000 + offsetMinutes * 60_000));
const loc = (host: string, source: string, tier: SourceLocation['tier'] = 'daily'): SourceLocation => ({ tier, group: 'fleet', host, source });

async function putAll(keys: string[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < keys.length) {
        const key = keys[next++];
        await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: key, Body: 'x' }));
      }
    }),
  );
}

before(async () => {
  sandbox = await createAgentSandbox();
  configFile = sandbox.writeConfig(sandbox.config({ group: 'fleet', sources: [{ name: 'db', type: 'files', paths: ['/nonexistent'] }] }));
  const keys: string[] = [];
  for (let i = 0; i < PER_HOST; i++) {
    // Host "alpha" at 02:00, host "beta" at 03:00 (so beta is always "later"), mixed tiers by calendar.
    const tier = i % 7 === 0 ? 'weekly' : 'daily';
    for (const [host, offset] of [['alpha', 0], ['beta', 60]] as const) {
      keys.push(manifestKey(loc(host, 'db', tier), stampAt(i, offset)), artifactKey(loc(host, 'db', tier), stampAt(i, offset), 'app', 'pgdump.zst'));
    }
  }
  // Another source on alpha, later than everything of "db".
  keys.push(manifestKey(loc('alpha', 'other'), stampAt(PER_HOST + 5)));
  // An upload of alpha/db that never got its manifest, newer than every committed one.
  keys.push(artifactKey(loc('alpha', 'db'), stampAt(PER_HOST + 1), 'app', 'pgdump.zst'));
  await putAll(keys);
});

describe('listing and "latest" past 1,000 objects', () => {
  test('every backup of every host is listed (several LIST pages), with tiers and incomplete ones told apart', async () => {
    const all = await listBackups(sandbox.s3, sandbox.bucket, { group: 'fleet' });
    assert.equal(all.length, 2 * PER_HOST + 2);
    assert.equal(all.filter((e) => e.host === 'alpha' && e.source === 'db').length, PER_HOST + 1);
    assert.equal(all.filter((e) => e.tier === 'weekly').length, 2 * Math.ceil(PER_HOST / 7));
    assert.equal(all.filter((e) => !e.manifest).length, 1);
    assert.ok(all.filter((e) => e.manifest).every((e) => e.artifacts.length === (e.source === 'db' ? 1 : 0)));
  });

  test('"latest" is per host and source, never an uncommitted upload; without a host it is refused when ambiguous', async () => {
    const all = await listBackups(sandbox.s3, sandbox.bucket, { group: 'fleet' });
    assert.equal(latestOf(all, { group: 'fleet', host: 'alpha', source: 'db' }).stamp, stampAt(PER_HOST - 1, 0));
    assert.equal(latestOf(all, { group: 'fleet', host: 'beta', source: 'db' }).stamp, stampAt(PER_HOST - 1, 60));
    assert.equal(latestOf(all, { group: 'fleet', source: 'other' }).stamp, stampAt(PER_HOST + 5));
    assert.throws(() => latestOf(all, { group: 'fleet', source: 'db' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /several hosts \(alpha, beta\)/.test(e.message));
    assert.throws(() => latestOf(all, { group: 'fleet', host: 'gamma', source: 'db' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.NOT_FOUND);
    // Narrowed listing (one host's prefix per tier) gives the same answer.
    const alpha = await listBackups(sandbox.s3, sandbox.bucket, { group: 'fleet', host: 'alpha', source: 'db' });
    assert.equal(alpha.length, PER_HOST + 1);
    assert.equal(latestOf(alpha, { group: 'fleet', host: 'alpha', source: 'db' }).stamp, stampAt(PER_HOST - 1, 0));
  });

  test('coldseal list --json filters by host, tier and time; status shows each source\'s own latest', async () => {
    const list = await sandbox.runCli(['list', '--config', configFile, '--host', 'beta', '--tier', 'weekly', '--since', '2025-06-01', '--json']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    const rows = JSON.parse(list.stdout) as { host: string; tier: string; time: string; complete: boolean; storage: string; bytes: number }[];
    const expected = Array.from({ length: PER_HOST }, (_, i) => i).filter((i) => i % 7 === 0 && base + i * 86_400_000 >= Date.parse('2025-06-01')).length;
    assert.equal(rows.length, expected);
    assert.ok(rows.every((r) => r.host === 'beta' && r.tier === 'weekly' && r.complete && r.storage === 'STANDARD' && r.bytes === 1));

    const status = await sandbox.runCli(['status', '--config', configFile, '--json']);
    assert.equal(status.code, EXIT.OK, status.stderr);
    const statuses = JSON.parse(status.stdout) as { host: string; source: string; backups: number; incomplete: number; latest?: { stamp: string } }[];
    const of = (host: string, source: string) => statuses.find((s) => s.host === host && s.source === source);
    assert.equal(of('alpha', 'db')?.latest?.stamp, stampAt(PER_HOST - 1, 0));
    assert.equal(of('alpha', 'db')?.incomplete, 1);
    assert.equal(of('beta', 'db')?.latest?.stamp, stampAt(PER_HOST - 1, 60));
    assert.equal(of('beta', 'db')?.backups, PER_HOST);
    assert.equal(of('alpha', 'other')?.latest?.stamp, stampAt(PER_HOST + 5));

    const human = await sandbox.runCli(['list', '--config', configFile, '--host', 'alpha', '--source', 'db', '--incomplete']);
    assert.equal(human.code, EXIT.OK, human.stderr);
    assert.match(human.stdout, /STAMP\s+TIER\s+HOST\s+SOURCE\s+SIZE\s+STORAGE\s+STATE/);
    assert.match(human.stdout, new RegExp(`${stampAt(PER_HOST + 1)}\\s+daily\\s+alpha\\s+db\\s+1 B\\s+STANDARD\\s+INCOMPLETE \\(no manifest\\)`));
  });
});
