import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { rerunCommand, terminalConfirm } from '../../agent/src/commands/terminal';

test('rerunCommand: the command line as a shell takes it back', () => {
  assert.equal(rerunCommand(['restore', '--at', 'latest', '--source', 'pg']), 'coldseal restore --at latest --source pg');
  assert.equal(rerunCommand(['restore', '--target', 'postgres://u@h/my db', "--note=it's"]), "coldseal restore --target 'postgres://u@h/my db' '--note=it'\\''s'");
  assert.equal(rerunCommand(['--x', '$(rm -rf ~)', 'a;b']), "coldseal --x '$(rm -rf ~)' 'a;b'");
  assert.equal(rerunCommand([]), 'coldseal');
});

/** A stream that looks like a terminal (or not), with the operator's answer queued. */
function terminal(answer: string | undefined, isTTY: boolean): { input: NodeJS.ReadStream; output: NodeJS.WriteStream; written: () => string } {
  const input = Object.assign(new PassThrough(), { isTTY }) as unknown as NodeJS.ReadStream;
  const output = new PassThrough();
  let text = '';
  output.on('data', (d: Buffer) => (text += d.toString()));
  if (answer !== undefined) setImmediate(() => (input as unknown as PassThrough).write(`${answer}\n`));
  return { input, output: output as unknown as NodeJS.WriteStream, written: () => text };
}

test('terminalConfirm: only y or yes (any case) is a yes', async () => {
  const cases: [string, boolean][] = [
    ['y', true],
    ['YES', true],
    [' yes ', true],
    ['n', false],
    ['', false],
    ['yep', false],
  ];
  for (const [answer, yes] of cases) {
    const t = terminal(answer, true);
    assert.equal(await terminalConfirm(t.input, t.output)('Drop shop? Continue? [y/N] '), yes, JSON.stringify(answer));
    assert.match(t.written(), /Drop shop\? Continue\? \[y\/N\]/);
  }
});

test('terminalConfirm: without a terminal it refuses at once, saying nothing was changed', async () => {
  const t = terminal(undefined, false);
  await assert.rejects(terminalConfirm(t.input, t.output)('This replaces database shop. Continue? [y/N] '), (e: unknown) => {
    assert.ok(e instanceof ColdsealError);
    assert.equal(e.exitCode, EXIT.REFUSED);
    assert.equal(e.message, 'This replaces database shop. There is no terminal to confirm on');
    assert.match(e.hint!, /^Nothing was changed\. Pass --yes/);
    return true;
  });
});
