import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { checkKeyFilesFree, writeKeyFiles } from '../../agent/src/keys/key-files';

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'coldseal-key-files-'));
}
const modeOf = (path: string): number => statSync(path).mode & 0o777;

test('a pair is written with its modes (0600 private, 0644 public), no temporary file left', async () => {
  const dir = scratch();
  try {
    await writeKeyFiles([{ path: join(dir, 'k.key.asc'), content: 'PRIVATE', mode: 0o600 }, { path: join(dir, 'k.pub.asc'), content: 'PUBLIC', mode: 0o644 }], false);
    assert.equal(readFileSync(join(dir, 'k.key.asc'), 'utf8'), 'PRIVATE');
    assert.equal(modeOf(join(dir, 'k.key.asc')), 0o600);
    assert.equal(modeOf(join(dir, 'k.pub.asc')), 0o644);
    assert.deepEqual(readdirSync(dir).sort(), ['k.key.asc', 'k.pub.asc']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an existing file (or symlink) refuses the whole pair before anything is written', async () => {
  const dir = scratch();
  try {
    writeFileSync(join(dir, 'k.pub.asc'), 'OLD');
    symlinkSync(join(dir, 'nowhere'), join(dir, 'k.key.asc'));
    const pair = [{ path: join(dir, 'k.key.asc'), content: 'NEW', mode: 0o600 }, { path: join(dir, 'k.pub.asc'), content: 'NEW', mode: 0o644 }];
    await assert.rejects(writeKeyFiles(pair, false), (e: unknown) => {
      assert.ok(e instanceof ColdsealError);
      assert.equal(e.exitCode, EXIT.REFUSED);
      assert.equal(e.message, `${join(dir, 'k.key.asc')} already exists; a key is never overwritten silently (also there: ${join(dir, 'k.pub.asc')})`);
      assert.match(e.hint!, /^Nothing was written\./);
      return true;
    });
    assert.equal(readFileSync(join(dir, 'k.pub.asc'), 'utf8'), 'OLD');
    assert.deepEqual(readdirSync(dir).sort(), ['k.key.asc', 'k.pub.asc']);
    await assert.rejects(checkKeyFilesFree([join(dir, 'free'), join(dir, 'k.pub.asc')], undefined), /k\.pub\.asc already exists/);
    await checkKeyFilesFree([join(dir, 'free')], false);
    await checkKeyFilesFree([join(dir, 'k.pub.asc')], true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--force replaces a symlink itself (never writing through it) and does not keep the old mode', async () => {
  const dir = scratch();
  try {
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'UNTOUCHED', { mode: 0o644 });
    symlinkSync(target, join(dir, 'k.key.asc'));
    writeFileSync(join(dir, 'k.pub.asc'), 'OLD');
    chmodSync(join(dir, 'k.pub.asc'), 0o666);
    await writeKeyFiles([{ path: join(dir, 'k.key.asc'), content: 'NEW', mode: 0o600 }, { path: join(dir, 'k.pub.asc'), content: 'NEWPUB', mode: 0o644 }], true);
    assert.equal(readFileSync(target, 'utf8'), 'UNTOUCHED');
    assert.equal(readFileSync(join(dir, 'k.key.asc'), 'utf8'), 'NEW');
    assert.equal(modeOf(join(dir, 'k.key.asc')), 0o600);
    assert.equal(modeOf(join(dir, 'k.pub.asc')), 0o644);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
