import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLsn, historyFileName, segmentFileName, segmentStartLsn } from '../../format/wal';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { archiveWal, fakeSegment, putBaseBackup, SYSTEM_IDENTIFIER } from '../harness/wal-archive';

/**
 * `coldseal list` shows each PITR source's recovery window, worked out from its base backups'
 * signed manifests and its WAL archive (written in the archive contract by
 * test/harness/wal-archive.ts): from, to, the gaps, and the timelines.
 */
const SEG = 1 << 20;
const seg = (timeline: number, n: number) => segmentFileName(timeline, BigInt(n), SEG);

let sandbox: AgentSandbox;

async function archive(source: string, walFiles: string[]): Promise<void> {
  for (const walFile of walFiles) await archiveWal(sandbox, { source, walFile, plaintext: fakeSegment(`${source}/${walFile}`, SEG), walSegmentSize: SEG });
}

before(async () => {
  sandbox = await createAgentSandbox();
});

describe('coldseal list: the recovery window of each PITR source', () => {
  test('from the earliest base backup that reaches the newest WAL, with the gap that cuts the older one off', async () => {
    const source = 'pitrlist';
    await archive(source, [1, 2, 3, 4, 7, 8, 9].map((n) => seg(1, n)));
    const lsn = (n: number, offset: number) => formatLsn(segmentStartLsn(BigInt(n), SEG) + BigInt(offset));
    const base = (n: number) => ({ systemIdentifier: SYSTEM_IDENTIFIER, timeline: 1, startLsn: lsn(n, 0x28), stopLsn: lsn(n, 0x1000), startWalFile: seg(1, n), walSegmentSize: SEG, stoppedAt: new Date(Date.UTC(2026, 11, 6, n)).toISOString() });
    const older = await putBaseBackup(sandbox, source, new Date(Date.UTC(2026, 11, 6, 2)), base(2));
    const newer = await putBaseBackup(sandbox, source, new Date(Date.UTC(2026, 11, 6, 7)), base(7));
    const configFile = sandbox.writeConfig(sandbox.config({ sources: [{ name: source, type: 'postgres' }] }));

    const json = await sandbox.runCli(['list', '--config', configFile, '--source', source, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as { source: string; recoveryWindow?: { from: { base: string; lsn: string }; to: { segment: string; lsn: string }; gaps: { from: string; to: string; breaks: string[] }[]; ranges: unknown[] } }[];
    assert.equal(rows.length, 2);
    const window = rows[0].recoveryWindow!;
    assert.deepEqual(rows[1].recoveryWindow, window, 'every row of the source carries its window');
    assert.equal(window.from.base, newer);
    assert.equal(window.from.lsn, lsn(7, 0x1000));
    assert.equal(window.to.segment, seg(1, 9));
    assert.equal(window.to.lsn, formatLsn(segmentStartLsn(10n, SEG)));
    assert.deepEqual(window.gaps.map((g) => [g.from, g.to, g.breaks]), [[seg(1, 5), seg(1, 6), [older]]]);
    assert.equal(window.ranges.length, 2, 'the older base still reaches up to the gap');

    const text = await sandbox.runCli(['list', '--config', configFile, '--source', source]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /RECOVERY WINDOWS/);
    assert.match(text.stdout, new RegExp(`testhost/${source}: from 2026-12-06T07:00:00Z \\(LSN ${lsn(7, 0x1000)}, timeline 1\\) to \\S+ \\(LSN 0/A00000, timeline 1\\)`));
    assert.match(text.stdout, new RegExp(`GAP ${seg(1, 5)}\\.\\.${seg(1, 6)} \\(timeline 1\\)`));
  });

  test('two timelines: with the key the history file is read; without it the switch is assumed and said', async () => {
    const source = 'pitrtl';
    await archive(source, [seg(1, 1), seg(1, 2), seg(1, 3), seg(2, 4), seg(2, 5)]);
    const switchLsn = formatLsn(segmentStartLsn(3n, SEG) + 0x5000n);
    await archiveWal(sandbox, { source, walFile: historyFileName(2), plaintext: Buffer.from(`1\t${switchLsn}\tno recovery target specified\n`), walSegmentSize: SEG });
    await putBaseBackup(sandbox, source, new Date(Date.UTC(2026, 11, 6, 1)), {
      systemIdentifier: SYSTEM_IDENTIFIER,
      timeline: 1,
      startLsn: formatLsn(segmentStartLsn(1n, SEG) + 0x28n),
      stopLsn: formatLsn(segmentStartLsn(1n, SEG) + 0x900n),
      startWalFile: seg(1, 1),
      walSegmentSize: SEG,
      stoppedAt: new Date(Date.UTC(2026, 11, 6, 1)).toISOString(),
    });
    const configFile = sandbox.writeConfig(sandbox.config({ sources: [{ name: source, type: 'postgres' }] }));
    type Row = { recoveryWindow: { to: { segment: string; timeline: number }; gaps: unknown[]; notes: string[] } };
    // Segment 3 of timeline 2 (the switch segment) was never archived: recovery reads timeline 1's up
    // to the switch only through .partial; with the real history the hole is in timeline 2.
    const keyless = JSON.parse((await sandbox.runCli(['list', '--config', configFile, '--source', source, '--json'])).stdout) as Row[];
    assert.match(keyless[0].recoveryWindow.notes.join('\n'), /timeline 2: its history file was not read .* assumed to fork off timeline 1 at its first archived segment/);
    assert.equal(keyless[0].recoveryWindow.to.segment, seg(2, 5), 'assumed switch at 4: no hole');
    const keyed = JSON.parse((await sandbox.runCli(['list', '--config', configFile, '--source', source, '--key', sandbox.recipient.privateFile, '--json'])).stdout) as Row[];
    assert.deepEqual(keyed[0].recoveryWindow.notes, []);
    assert.equal(keyed[0].recoveryWindow.to.segment, seg(1, 2), 'the real switch is in segment 3, which timeline 2 never archived');
    assert.equal(keyed[0].recoveryWindow.gaps.length, 1);
  });
});
