import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * Which test files import each module of the code directly: the answer to "where is this file's
 * test?". `npx tsx scripts/test-map.ts` prints it; test/unit/test-map.test.ts keeps test/README.md
 * naming every folder. Direct imports only: the integration tests also reach the agent by running
 * its CLI (test/harness/agent.ts), which no import shows; test/README.md says which scenarios do.
 */

/** The folders whose TypeScript is the product (not tests, scripts or the e2e deploy library). */
export const CODE_ROOTS = ['agent/src', 'format', 'runtime', 'lambdas', 'infra/lib'] as const;

const ROOT = join(__dirname, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (entry === 'node_modules') return [];
    if (statSync(path).isDirectory()) return tsFiles(path);
    return entry.endsWith('.ts') && !entry.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every module of the code, as a path from the repository root. */
export function codeModules(root = ROOT): string[] {
  return CODE_ROOTS.flatMap((r) => (existsSync(join(root, r)) ? tsFiles(join(root, r)) : [])).map((f) => relative(root, f)).sort();
}

/** Every folder that holds a module of the code. */
export function codeFolders(root = ROOT): string[] {
  return [...new Set(codeModules(root).map((m) => dirname(m)))].sort();
}

export function testFiles(root = ROOT): string[] {
  return tsFiles(join(root, 'test')).filter((f) => f.endsWith('.test.ts')).map((f) => relative(root, f)).sort();
}

function resolveImport(root: string, from: string, specifier: string): string | undefined {
  const base = resolve(root, dirname(from), specifier);
  const target = [`${base}.ts`, base].find((c) => existsSync(c) && statSync(c).isFile());
  return target && relative(root, target);
}

/**
 * The repository files a source file imports by relative path (static and dynamic imports,
 * re-exports). The code has no index modules: every import names the file that defines it.
 */
export function relativeImports(file: string, root = ROOT): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found = new Set<string>();
  for (const match of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']*)'/g)) {
    const target = resolveImport(root, file, match[1]);
    if (target) found.add(target);
  }
  return [...found].sort();
}

/** For each module of the code, the test files that import it directly. */
export function testMap(root = ROOT): Map<string, string[]> {
  const map = new Map<string, string[]>(codeModules(root).map((m) => [m, []]));
  for (const test of testFiles(root)) {
    for (const target of relativeImports(test, root)) map.get(target)?.push(test);
  }
  return map;
}

if (require.main === module) {
  const map = testMap();
  const width = Math.max(...[...map.keys()].map((k) => k.length));
  for (const [module, tests] of map) console.log(`${module.padEnd(width)}  ${tests.join(' ') || '-'}`);
  const untested = [...map.values()].filter((t) => t.length === 0).length;
  const unit = [...map.values()].filter((t) => t.some((f) => f.startsWith('test/unit/'))).length;
  console.log(`\n${map.size} modules: ${unit} with a unit test, ${untested} imported by no test file (reached through the CLI, the stack or another module; see test/README.md)`);
}
