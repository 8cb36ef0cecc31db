import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ByteCounter, EndGate, nodeToWeb, Rechunker, TailWatcher, webToNode } from '../../agent/src/pipeline/streams';

/** Runs chunks through a transform and returns the chunks that come out. */
async function through(transform: NodeJS.ReadWriteStream, chunks: Buffer[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    transform,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return out;
}

const bytes = (n: number, fill = 0x61): Buffer => Buffer.alloc(n, fill);

test('Rechunker: chunks of at least the size, the rest at the end, bytes unchanged', async () => {
  const input = [bytes(3, 0x61), bytes(4, 0x62), bytes(2, 0x63), bytes(10, 0x64), bytes(1, 0x65)];
  const out = await through(new Rechunker(8), input);
  assert.deepEqual(out.map((c) => c.length), [9, 10, 1]);
  assert.deepEqual(Buffer.concat(out), Buffer.concat(input));
  assert.deepEqual(await through(new Rechunker(8), []), []);
});

test('ByteCounter and TailWatcher count every byte; the watcher keeps only the tail, across chunks', async () => {
  const counter = new ByteCounter();
  await through(counter, [bytes(5), bytes(7)]);
  assert.equal(counter.bytes, 12);
  const watcher = new TailWatcher(10);
  const text = ['-- lots of SQL ', 'and more SQL\n', '-- Dump com', 'pleted\n'];
  const out = await through(watcher, text.map((t) => Buffer.from(t)));
  assert.equal(Buffer.concat(out).toString(), text.join(''), 'passes everything on');
  assert.equal(watcher.bytes, text.join('').length);
  assert.equal(watcher.tailText(), text.join('').slice(-10));
  const big = new TailWatcher(4);
  await through(big, [Buffer.from('abcdefgh')]);
  assert.equal(big.tailText(), 'efgh', 'a chunk larger than the tail');
});

test('EndGate: the stream ends only when release settles; a failed release errors the stream instead', async () => {
  const order: string[] = [];
  let open!: () => void;
  const released = new Promise<void>((resolve) => (open = resolve));
  const gate = new EndGate(() => {
    order.push('release asked');
    return released.then(() => void order.push('released'));
  });
  const done = through(gate, [bytes(2), bytes(3)]).then((out) => order.push(`ended with ${Buffer.concat(out).length} bytes`));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(order, ['release asked'], 'held at the end');
  open();
  await done;
  assert.deepEqual(order, ['release asked', 'released', 'ended with 5 bytes']);
  await assert.rejects(through(new EndGate(async () => Promise.reject(new Error('dump tool failed'))), [bytes(1)]), /dump tool failed/);
});

test('nodeToWeb and webToNode carry the bytes both ways, and errors too', async () => {
  const input = [Buffer.from('hello '), Buffer.from('world')];
  const back = webToNode(nodeToWeb(Readable.from(input)));
  const chunks: Buffer[] = [];
  for await (const chunk of back) chunks.push(chunk as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'hello world');
  const failing = new Readable({
    read() {
      this.destroy(new Error('source broke'));
    },
  });
  await assert.rejects(async () => {
    for await (const _ of webToNode(nodeToWeb(failing))) void _;
  }, /source broke/);
});
