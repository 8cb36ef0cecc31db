import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { keepTail, lastLines } from '../../agent/src/process-output';

test('keepTail keeps only the last characters of everything written, across chunks', async () => {
  const stream = new PassThrough();
  const tail = keepTail(stream, 10);
  assert.equal(tail(), '');
  stream.write('0123456789');
  stream.write(Buffer.from('abcdef'));
  stream.end('XY');
  await new Promise((resolve) => stream.on('end', resolve).resume());
  assert.equal(tail(), '89abcdefXY');
});

test('lastLines: the last lines on one line, trailing blank lines ignored', () => {
  const cases: [string, number, string][] = [
    ['a\nb\nc\n\n', 2, 'b / c'],
    ['only', 3, 'only'],
    ['  \n', 2, ''],
    ['x\ny\nz', 1, 'z'],
  ];
  for (const [text, count, expected] of cases) assert.equal(lastLines(text, count), expected, JSON.stringify(text));
});
