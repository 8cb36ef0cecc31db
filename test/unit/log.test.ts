import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes } from '../../runtime/byte-size';
import { EXIT } from '../../format/exit-codes';
import { createLog } from '../../agent/src/log';

function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  return { stream: { isTTY, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream, written };
}

test('on a terminal: one progress line rewritten in place, then messages on fresh lines', () => {
  const { stream, written } = fakeStream(true);
  const log = createLog({ stream });
  log.progress({ label: 'main/app', bytes: 50 * 1048576, elapsedSeconds: 2 });
  log.progress({ label: 'main/app', bytes: 100 * 1048576, elapsedSeconds: 4 });
  log.info('source backed up', { source: 'main' });
  assert.equal(written[0], '\r\x1b[Kmain/app: 50.0 MiB at 25.0 MiB/s, 2 s');
  assert.equal(written[1], '\r\x1b[Kmain/app: 100 MiB at 25.0 MiB/s, 4 s');
  assert.deepEqual(written.slice(2), ['\n', 'source backed up source=main\n']);
});

test('under SSM (no TTY): JSON lines, progress throttled', () => {
  const { stream, written } = fakeStream(false);
  const log = createLog({ stream, jsonEverySeconds: 3600 });
  log.progress({ label: 'main/app', bytes: 1000, elapsedSeconds: 1 });
  log.progress({ label: 'main/app', bytes: 2000, elapsedSeconds: 2 });
  log.error('source main failed: boom', { exitCode: EXIT.SOURCE });
  assert.equal(written.length, 2);
  const progress = JSON.parse(written[0]);
  assert.equal(progress.message, 'progress');
  assert.equal(progress.bytesPerSecond, 1000);
  const error = JSON.parse(written[1]);
  assert.deepEqual([error.level, error.message, error.exitCode], ['error', 'source main failed: boom', EXIT.SOURCE]);
  assert.match(error.time, /^\d{4}-\d\d-\d\dT/);
});

test('sizes read like a person writes them', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 ** 4), '5.0 TiB');
});
