import { build, buildSync, type BuildOptions, type BuildResult } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Bundles the agent into one file that runs with `node coldseal-agent.js` on a host with Node ≥ 18
 * and nothing installed from npm. The stack ships this file as an S3 asset.
 */
export const AGENT_BUNDLE_DIR = join(__dirname, '..', 'dist', 'agent');
export const AGENT_BUNDLE = join(AGENT_BUNDLE_DIR, 'coldseal-agent.js');

/** How the loader (agent-loader.ts) finds the agent in the bundle: it opens the comment holding it. */
const AGENT_START = '/* coldseal agent follows\n';

/** Both parts of the bundle: one CommonJS file each, kept in memory for `assemble`. */
const COMMON: BuildOptions = { bundle: true, write: false, platform: 'node', target: 'node18', format: 'cjs', logLevel: 'warning' };

function agentOptions(): BuildOptions {
  return {
    ...COMMON,
    entryPoints: [join(__dirname, '..', 'agent', 'src', 'cli.ts')],
    // Whitespace and comments only (names stay, for stack traces): a smaller file, and all ASCII,
    // which Node reads and V8 scans faster than text with a few non-ASCII characters in comments.
    minifyWhitespace: true,
    charset: 'ascii',
    // import() becomes require(): the agent is compiled with vm.Script, which has no loader for import().
    supported: { 'dynamic-import': false },
    sourcemap: false,
    legalComments: 'none',
    // openpgp's ESM build calls createRequire(import.meta.url), which is empty in a CJS bundle.
    define: { 'import.meta.url': '__coldsealImportMetaUrl' },
    banner: { js: 'const __coldsealImportMetaUrl = require("url").pathToFileURL(__filename).href;' },
  };
}

function loaderOptions(): BuildOptions {
  return { ...COMMON, entryPoints: [join(__dirname, 'agent-loader.ts')] };
}

/**
 * The file hosts run: the loader, then the agent inside a block comment (so that Node's own
 * compile of the file skips it). The agent's comment terminators are written with a backslash
 * before the slash, which the loader takes out again; the agent has no such sequence of its own.
 */
function assemble(loader: string, agent: string): string {
  if (agent.includes('*\\/')) throw new Error('the agent bundle contains "*\\/", which the loader reads as an escaped "*/": change the escape in build-agent.ts and agent-loader.ts');
  const file = `#!/usr/bin/env node\n${loader}\n${AGENT_START}${agent.split('*/').join('*\\/')}\n*/\n`;
  if (file.indexOf(AGENT_START) !== file.lastIndexOf(AGENT_START)) throw new Error('the agent marker occurs more than once in the bundle');
  return file;
}

function write(loader: BuildResult, agent: BuildResult): string {
  mkdirSync(AGENT_BUNDLE_DIR, { recursive: true });
  writeFileSync(AGENT_BUNDLE, assemble(loader.outputFiles![0].text, agent.outputFiles![0].text), { mode: 0o755 });
  return AGENT_BUNDLE;
}

export async function buildAgent(): Promise<string> {
  const [loader, agent] = await Promise.all([build(loaderOptions()), build(agentOptions())]);
  return write(loader, agent);
}

/** For the CDK app, whose synth is synchronous. */
export function buildAgentSync(): string {
  return write(buildSync(loaderOptions()), buildSync(agentOptions()));
}

if (require.main === module) {
  buildAgent().then(
    (path) => console.log(path),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
