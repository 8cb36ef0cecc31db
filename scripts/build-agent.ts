import { build, buildSync, type BuildOptions } from 'esbuild';
import { join } from 'node:path';

/**
 * Bundles the agent into one file that runs with `node coldseal-agent.js` on a host with Node ≥ 18
 * and nothing installed from npm. The stack ships this file as an S3 asset.
 */
export const AGENT_BUNDLE_DIR = join(__dirname, '..', 'dist', 'agent');
export const AGENT_BUNDLE = join(AGENT_BUNDLE_DIR, 'coldseal-agent.js');

function options(): BuildOptions {
  return {
    entryPoints: [join(__dirname, '..', 'agent', 'src', 'cli.ts')],
    outfile: AGENT_BUNDLE,
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    // openpgp's ESM build calls createRequire(import.meta.url), which is empty in a CJS bundle.
    define: { 'import.meta.url': '__coldsealImportMetaUrl' },
    banner: { js: '#!/usr/bin/env node\nconst __coldsealImportMetaUrl = require("url").pathToFileURL(__filename).href;' },
  };
}

export async function buildAgent(): Promise<string> {
  await build(options());
  return AGENT_BUNDLE;
}

/** For the CDK app, whose synth is synchronous. */
export function buildAgentSync(): string {
  buildSync(options());
  return AGENT_BUNDLE;
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
