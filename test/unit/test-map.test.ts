import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { codeFolders, testFiles, testMap } from '../../scripts/test-map';

const root = join(__dirname, '..', '..');
const readme = readFileSync(join(root, 'test', 'README.md'), 'utf8');
const quoted = new Set([...readme.matchAll(/`([^`]+)`/g)].map((m) => m[1]));

test('test/README.md names every folder of the code', () => {
  const missing = codeFolders().filter((folder) => !quoted.has(`${folder}/`));
  assert.deepEqual(missing, [], `add a row for each to test/README.md, naming the tests that exercise it: ${missing.join(', ')}`);
});

test('test/README.md names every test file, and only test files that exist', () => {
  const named = (file: string): boolean => {
    const path = relative('test', file);
    return quoted.has(path) || (path.startsWith('unit/') && quoted.has(basename(path)));
  };
  const unnamed = testFiles().filter((f) => !named(f));
  assert.deepEqual(unnamed, [], `name each in test/README.md beside the folder it tests: ${unnamed.join(', ')}`);
  const stale = [...quoted]
    .filter((q) => /^[\w/.-]+\.test\.ts$/.test(q))
    .filter((q) => ![join(root, q), join(root, 'test', q), join(root, 'test', 'unit', q)].some((p) => existsSync(p)));
  assert.deepEqual(stale, [], `test/README.md names test files that do not exist: ${stale.join(', ')}`);
});

test('the map follows relative imports to the file that defines each name', () => {
  const map = testMap();
  assert.ok(map.get('agent/src/commands/options.ts')?.includes('test/unit/options.test.ts'));
  assert.ok(map.get('format/backup-judgement.ts')?.includes('test/unit/backup-judgement.test.ts'));
  assert.equal(map.get('format/node-support.ts')?.includes('test/unit/backup-judgement.test.ts'), false, 'a module the test does not import is not counted');
  assert.equal(map.has('test/unit/options.test.ts'), false, 'tests are not modules of the code');
});
