import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { groupSettingsSchema } from '../../format/lambda-settings';
import { drillReceiptSchema } from '../../format/manifest';
import { drillEvidence, recoveryTime, type DrilledArtifact, type DrillEvidence, type Dominant, type NewestBackupFacts } from '../../lambdas/verifier/core/recovery-time';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const GB = 1024 ** 3;
const group = (rtoHours?: number) => groupSettingsSchema.parse({ name: 'clinic', sources: ['db', 'files'], ...(rtoHours ? { rtoHours } : {}) });

function drill(results: DrilledArtifact[], extra: Partial<DrillEvidence> = {}): DrillEvidence {
  return { stamp: '20261205T030000Z', host: 'drill1', finishedAt: '2026-12-05T03:20:00.000Z', results, ...extra };
}
/** 1 GiB restored in 100 s: 10.24 MiB/s. */
const plain: DrilledArtifact = { source: 'db', artifact: 'shop', ok: true, durationMs: 100_000, ciphertextBytes: GB };
/** The same, timed: load busy 60 s, download 20 s, decrypt 15 s, checks 10 s (the streamed stages overlap). */
const timed: DrilledArtifact = { ...plain, timings: { downloadMs: 20_000, decryptMs: 15_000, loadMs: 60_000, checksMs: 10_000, ciphertextBytes: GB } };
const newest = (gib: number, classes: string[] = ['STANDARD']): NewestBackupFacts => ({ stamp: '20261206T013000Z', ciphertextBytes: gib * GB, storageClasses: classes });

interface Row {
  readonly name: string;
  readonly rto?: number;
  readonly newest?: NewestBackupFacts;
  readonly drill?: DrillEvidence;
  readonly source?: string;
  readonly hours: number | null;
  readonly dominant?: Dominant;
  readonly parts?: Partial<Record<Dominant, number>>;
  readonly finding: boolean;
  /** A piece of the note (or of the finding's summary). */
  readonly says: string;
}

const rows: Row[] = [
  { name: 'no drill: no estimate, and it says so', newest: newest(1), hours: null, finding: false, says: 'not measured, so it is not estimated' },
  { name: 'no drill and an RTO: still no guess and no finding (drill-stale reports the missing drill)', rto: 1, newest: newest(50), hours: null, finding: false, says: 'no restore drill of group clinic' },
  { name: 'no good backup', drill: drill([plain]), hours: null, finding: false, says: 'no good backup' },
  { name: 'the drill failed: nothing measured', newest: newest(1), drill: drill([{ ...plain, ok: false }]), hours: null, finding: false, says: '(20261205T030000Z) failed' },
  { name: 'same size as drilled: the drill\'s own time', newest: newest(1), drill: drill([plain]), hours: 0.03, dominant: 'restore', parts: { restore: 0.03 }, finding: false, says: 'measured on this source' },
  { name: 'scaled: 36 GiB at the drill\'s rate is 1 h', newest: newest(36), drill: drill([plain]), hours: 1, dominant: 'restore', finding: false, says: '(scaled 36.0×)' },
  { name: 'over the RTO without timings: the restore as a whole dominates', rto: 0.5, newest: newest(36), drill: drill([plain]), hours: 1, dominant: 'restore', finding: true, says: 'the restore as a whole' },
  {
    name: 'with timings: the load dominates, checks apart',
    rto: 0.5,
    newest: newest(36),
    drill: drill([timed]),
    hours: 1,
    dominant: 'load',
    parts: { checks: 0.1, size: 0.33, load: 0.57 },
    finding: true,
    says: "the database's load speed dominates",
  },
  {
    name: 'with timings: reading and decrypting dominate',
    rto: 0.5,
    newest: newest(36),
    drill: drill([{ ...timed, timings: { downloadMs: 70_000, decryptMs: 20_000, loadMs: 30_000, checksMs: 0, ciphertextBytes: GB } }]),
    hours: 1,
    dominant: 'size',
    parts: { checks: 0, size: 0.75, load: 0.25 },
    finding: true,
    says: 'reading and decrypting the backup (its size) dominates',
  },
  {
    name: 'decryption not timed apart (null, as the agent\'s streamed test restore writes it): it is inside the read, which then dominates',
    rto: 0.5,
    newest: newest(36),
    drill: drill([{ ...timed, timings: { downloadMs: 90_000, decryptMs: null, loadMs: 30_000, checksMs: 0, ciphertextBytes: GB } }]),
    hours: 1,
    dominant: 'size',
    parts: { checks: 0, size: 0.75, load: 0.25 },
    finding: true,
    says: 'reading and decrypting the backup (its size) dominates',
  },
  { name: 'newest in GLACIER: plus 5 h of Standard retrieval, which dominates', rto: 4, newest: newest(1, ['GLACIER']), drill: drill([plain]), hours: 5.03, dominant: 'retrieval', parts: { restore: 0.03, retrieval: 5 }, finding: true, says: 'Standard retrieval from GLACIER (3–5 hours) dominates' },
  { name: 'one segment in DEEP_ARCHIVE makes the whole backup wait 12 h', newest: newest(1, ['STANDARD', 'DEEP_ARCHIVE', 'GLACIER']), drill: drill([plain]), hours: 12.03, dominant: 'retrieval', finding: false, says: 'up to 12 hours of Standard retrieval from DEEP_ARCHIVE' },
  { name: 'GLACIER_IR is read at once: no retrieval', newest: newest(1, ['GLACIER_IR']), drill: drill([plain]), hours: 0.03, dominant: 'restore', finding: false, says: 'measured on this source' },
  { name: 'within the RTO: figures, no finding', rto: 2, newest: newest(36), drill: drill([plain]), hours: 1, dominant: 'restore', finding: false, says: 'measured on this source' },
  { name: 'a source not drilled takes the group\'s other sources\' rate', source: 'files', newest: newest(36), drill: drill([plain]), hours: 1, dominant: 'restore', finding: false, says: "the group's other sources (this one was not drilled)" },
  {
    name: 'a point-in-time result is not a dump restore: left out of the rate',
    newest: newest(36),
    drill: drill([plain, { source: 'db', artifact: 'pitr', ok: true, durationMs: 900_000, ciphertextBytes: GB, pointInTime: true }]),
    hours: 1,
    dominant: 'restore',
    finding: false,
    says: 'measured on this source',
  },
  { name: 'a drill read from the replica is named', newest: newest(1), drill: drill([plain], { readFrom: 's3://r (eu-west-3)' }), hours: 0.03, dominant: 'restore', finding: false, says: 'read from the offsite replica s3://r (eu-west-3)' },
];

describe('recoveryTime', () => {
  for (const row of rows) {
    test(row.name, () => {
      const { figures, findings } = recoveryTime({ group: group(row.rto), host: 'h1', source: row.source ?? 'db', bucket: 'vault', newest: row.newest, drill: row.drill, now: NOW });
      assert.equal(figures.estimate?.hours ?? null, row.hours);
      if (row.dominant) assert.equal(figures.estimate?.dominant, row.dominant);
      if (row.parts) assert.deepEqual(figures.estimate?.parts, row.parts);
      assert.equal(findings.length, row.finding ? 1 : 0);
      const text = findings.length ? `${findings[0].summary} ${findings[0].detail}` : figures.note;
      assert.ok(text.includes(row.says), `"${text}" should say "${row.says}"`);
      if (findings.length) {
        assert.equal(findings[0].check, 'rto-exceeded');
        assert.equal(findings[0].severity, 'warn');
        assert.equal(findings[0].id, 'rto-exceeded:clinic/h1/' + (row.source ?? 'db'));
        assert.ok(findings[0].summary.includes(`over the ${row.rto} h RTO`));
        assert.ok(findings[0].action.length > 20);
      }
    });
  }

  test('the measured figures: rate, age, stages', () => {
    const { figures } = recoveryTime({ group: group(), host: 'h1', source: 'db', bucket: 'vault', newest: newest(2), drill: drill([timed]), now: NOW });
    assert.deepEqual(figures.measured, { drill: '20261205T030000Z', host: 'drill1', ageDays: 1.36, from: 'this source', bytes: GB, seconds: 100, bytesPerSecond: Math.round(GB / 100), stages: { download: 20, decrypt: 15, load: 60, checks: 10 } });
    assert.equal(figures.rtoHours, null);
  });

  test('timings.ciphertextBytes wins over the manifest\'s size', () => {
    const r: DrilledArtifact = { ...timed, ciphertextBytes: 10 * GB };
    assert.equal(recoveryTime({ group: group(), host: 'h1', source: 'db', bucket: 'vault', newest: newest(1), drill: drill([r]), now: NOW }).figures.measured?.bytes, GB);
  });

  test('Expedited is taken for GLACIER when asked, and refused for DEEP_ARCHIVE (Standard instead)', () => {
    const glacier = recoveryTime({ group: group(), host: 'h1', source: 'db', bucket: 'vault', newest: newest(1, ['GLACIER']), drill: drill([plain]), now: NOW, retrievalTier: 'Expedited' });
    assert.deepEqual(glacier.figures.estimate?.retrieval, { storageClass: 'GLACIER', tier: 'Expedited', wait: '1–5 minutes' });
    const deep = recoveryTime({ group: group(), host: 'h1', source: 'db', bucket: 'vault', newest: newest(1, ['DEEP_ARCHIVE']), drill: drill([plain]), now: NOW, retrievalTier: 'Expedited' });
    assert.deepEqual(deep.figures.estimate?.retrieval, { storageClass: 'DEEP_ARCHIVE', tier: 'Standard', wait: 'up to 12 hours' });
  });

  test('a receipt becomes evidence: bytes from the drilled manifests, point-in-time results marked, the replica named', () => {
    const receipt = drillReceiptSchema.parse({
      formatVersion: 1, group: 'clinic', host: 'drill1', stamp: '20261205T030000Z', startedAt: '2026-12-05T03:00:00.000Z', finishedAt: '2026-12-05T03:20:00.000Z', ok: true,
      results: [
        { manifestKey: 'm1', source: 'db', artifact: 'shop', ok: true, durationMs: 1000, checks: [] },
        { manifestKey: 'm1', source: 'db', artifact: 'crm', ok: true, durationMs: 2000, checks: [], timings: timed.timings },
        { manifestKey: 'm2', source: 'db', artifact: 'pitr', ok: true, durationMs: 3000, checks: [], pitr: { window: { fromLsn: '0/1', toLsn: '0/2', toTime: null }, target: { kind: 'lsn', value: '0/2' }, timeline: 1, baseManifestKey: 'm2', reached: null } },
      ],
      signingKeyFingerprint: 'a'.repeat(40), agent: { version: '1', node: '20' }, readFrom: { bucket: 'vault-replica', region: 'eu-west-3' },
    });
    const bytes: Record<string, number> = { 'm1/shop': 5 * GB, 'm1/crm': 7 * GB };
    const evidence = drillEvidence(receipt, (key, artifact) => bytes[`${key}/${artifact}`]);
    assert.deepEqual(evidence, {
      stamp: '20261205T030000Z', host: 'drill1', finishedAt: '2026-12-05T03:20:00.000Z', readFrom: 's3://vault-replica (eu-west-3)',
      results: [
        { source: 'db', artifact: 'shop', ok: true, durationMs: 1000, ciphertextBytes: 5 * GB },
        { source: 'db', artifact: 'crm', ok: true, durationMs: 2000, ciphertextBytes: 7 * GB, timings: timed.timings },
        { source: 'db', artifact: 'pitr', ok: true, durationMs: 3000, pointInTime: true },
      ],
    });
  });

  test('the receipt schema takes stage timings as an optional field, and old receipts still parse', () => {
    const receipt = {
      formatVersion: 1, group: 'clinic', host: 'drill1', stamp: '20261205T030000Z', startedAt: '2026-12-05T03:00:00.000Z', finishedAt: '2026-12-05T03:20:00.000Z', ok: true,
      results: [{ manifestKey: 'k', source: 'db', artifact: 'shop', ok: true, durationMs: 1000, checks: [] }],
      signingKeyFingerprint: 'a'.repeat(40), agent: { version: '1', node: '20' },
    };
    assert.equal(drillReceiptSchema.parse(receipt).results[0].timings, undefined);
    const withTimings = { ...receipt, results: [{ ...receipt.results[0], timings: timed.timings }] };
    assert.deepEqual(drillReceiptSchema.parse(withTimings).results[0].timings, timed.timings);
    assert.throws(() => drillReceiptSchema.parse({ ...receipt, results: [{ ...receipt.results[0], timings: { downloadMs: -1 } }] }));
  });
});
