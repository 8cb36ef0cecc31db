import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ensureDatabases, startMoto } from '../local-system/services';
import { describeMissing, missingPrerequisites } from '../scripts/prerequisites';

/**
 * The one test command: starts the services, runs every *.test.ts under test/ with node's test
 * runner, stops the services. Arguments narrow the files: `npm test -- restore` runs files whose
 * path contains "restore".
 */
function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === 'node_modules' ? [] : findTests(path);
    return entry.endsWith('.test.ts') ? [path] : [];
  });
}

async function main(): Promise<number> {
  const root = join(__dirname, '..');
  const filters = process.argv.slice(2);
  const files = findTests(join(root, 'test'))
    .map((f) => relative(root, f))
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
  if (files.length === 0) {
    console.error(`no test file matches ${filters.join(' ')}`);
    return 1;
  }
  const missing = missingPrerequisites();
  if (missing.length > 0) {
    for (const line of describeMissing(missing)) console.error(`[harness] ${line}`);
    console.error('[harness] run `npm run setup` to install what can be installed, then npm test again');
    return 1;
  }
  await ensureDatabases();
  const moto = await startMoto();
  console.error(`[harness] moto_server on ${moto.endpoint}; ${files.length} test files`);
  try {
    return await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, COLDSEAL_TEST_MOTO_ENDPOINT: moto.endpoint, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', CDK_DISABLE_VERSION_CHECK: '1', AWS_EC2_METADATA_DISABLED: 'true' },
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    });
  } finally {
    await moto.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`[harness] ${(error as Error).message}`);
    process.exit(1);
  },
);
