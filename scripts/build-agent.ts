import { build, buildSync, type BuildOptions, type BuildResult } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { AGENT_PLATFORMS, AGENT_RUNTIME_NODE_VERSION, compressedExecutableName, executableName, type AgentExecutable, type AgentPlatform } from '../format/agent-executables';

/**
 * Bundles the agent into one file that runs with `node coldseal-agent.js` wherever there is a
 * Node >= 20 (operators' laptops, tests), and builds from it the self-contained executables the
 * stack ships to hosts (buildAgentExecutablesSync below).
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

/** Where the official Node binaries are installed (the root package's postinstall runs `npm ci` there). */
export const AGENT_RUNTIME_DIR = join(__dirname, '..', 'agent', 'runtime');

/** What the default build writes about its executables (read by the bench and by people). */
export const AGENT_EXECUTABLES_MANIFEST = join(AGENT_BUNDLE_DIR, 'executables.json');

/** Bumped when the way an executable is made changes, so that a cached build is not reused. */
const EXECUTABLE_RECIPE = 'sea-1';

/** zlib's level for the shipped copies: 9 saves 0.2 MB of 45 and costs 5 s more per architecture. */
const GZIP_LEVEL = 6;

/** Node's documented sentinel for postject (https://nodejs.org/api/single-executable-applications.html). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function runtimeBinary(platform: AgentPlatform): string {
  const packageDir = join(AGENT_RUNTIME_DIR, 'node_modules', platform.runtimePackage);
  const binary = join(packageDir, 'bin', 'node');
  if (!existsSync(binary)) {
    throw new Error(`the official Node.js for ${platform.description} is not installed (${binary} is missing): run \`npm ci\` (its postinstall installs agent/runtime), or \`npm run postinstall\``);
  }
  const version = (JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string }).version;
  if (version !== AGENT_RUNTIME_NODE_VERSION) {
    throw new Error(`agent/runtime has ${platform.runtimePackage}@${version}, but format/agent-executables.ts says ${AGENT_RUNTIME_NODE_VERSION}: run \`npm run postinstall\` (or change both together)`);
  }
  return binary;
}

/** The runtime that makes the blob: one this machine can run. The blob has no code cache or snapshot, so it fits every architecture of that Node version. */
function blobMaker(): string {
  const platform = AGENT_PLATFORMS.find((p) => p.arch === process.arch);
  if (process.platform !== 'linux' || !platform) {
    throw new Error(`building the agent executables needs Linux on ${AGENT_PLATFORMS.map((p) => p.machine).join(' or ')} (the blob is made by the bundled Node itself); this is ${process.platform} ${process.arch}`);
  }
  return runtimeBinary(platform);
}

function seaLoaderOptions(agentSha256: string): BuildOptions {
  return { ...COMMON, target: 'node24', entryPoints: [join(__dirname, 'agent-sea-loader.ts')], define: { __COLDSEAL_AGENT_SHA256__: JSON.stringify(agentSha256) } };
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

function readManifest(file: string, key: string): AgentExecutable[] | undefined {
  try {
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { key: string; executables: AgentExecutable[] };
    if (manifest.key !== key) return undefined;
    const intact = manifest.executables.every((e) => statSync(e.path).size === e.bytes && statSync(e.compressedPath).size === e.compressedBytes);
    return intact && manifest.executables.length === AGENT_PLATFORMS.length ? manifest.executables : undefined;
  } catch {
    return undefined;
  }
}

export interface ExecutableBuildOptions {
  /** @default dist/agent */
  readonly outputDir?: string;
  /**
   * Reuse the executables already in outputDir when they were built from the same inputs.
   * @default true
   */
  readonly reuse?: boolean;
}

/**
 * One executable per host architecture: the official Node binary with the agent injected as a
 * single executable application (blob made by that Node, injected by postject), and a gzip copy
 * for the stack to ship. The same sources give the same bytes (no code cache, no time stamps), so
 * a build is reused while its inputs are unchanged: synth calls this often.
 */
export function buildAgentExecutablesSync(options: ExecutableBuildOptions = {}): AgentExecutable[] {
  const outputDir = options.outputDir ?? AGENT_BUNDLE_DIR;
  const manifestFile = options.outputDir ? join(outputDir, 'executables.json') : AGENT_EXECUTABLES_MANIFEST;
  const agent = buildSync(agentOptions()).outputFiles![0].text;
  const agentSha256 = sha256(agent);
  const loader = buildSync(seaLoaderOptions(agentSha256)).outputFiles![0].text;
  const runtimes = AGENT_PLATFORMS.map((p) => ({ platform: p, binary: runtimeBinary(p) }));
  const postjectVersion = (JSON.parse(readFileSync(require.resolve('postject/package.json'), 'utf8')) as { version: string }).version;
  const key = sha256([EXECUTABLE_RECIPE, `gzip-${GZIP_LEVEL}`, `postject-${postjectVersion}`, AGENT_RUNTIME_NODE_VERSION, agentSha256, sha256(loader), ...runtimes.map((r) => `${r.platform.arch}:${statSync(r.binary).size}`)].join('\n'));
  const cached = options.reuse === false ? undefined : readManifest(manifestFile, key);
  if (cached) return cached;

  mkdirSync(outputDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'coldseal-sea-'));
  try {
    writeFileSync(join(work, 'agent.js'), agent);
    writeFileSync(join(work, 'loader.js'), loader);
    const config = { main: 'loader.js', output: 'agent.blob', disableExperimentalSEAWarning: true, useCodeCache: false, useSnapshot: false, assets: { 'agent.js': 'agent.js' } };
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config));
    execFileSync(blobMaker(), ['--experimental-sea-config', 'sea-config.json'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    const postject = require.resolve('postject/dist/cli.js');
    const executables = runtimes.map(({ platform, binary }): AgentExecutable => {
      const staged = join(work, executableName(platform.arch));
      copyFileSync(binary, staged);
      chmodSync(staged, 0o755);
      execFileSync(process.execPath, [postject, staged, 'NODE_SEA_BLOB', join(work, 'agent.blob'), '--sentinel-fuse', SEA_FUSE], { stdio: ['ignore', 'ignore', 'pipe'] });
      const bytes = readFileSync(staged);
      const compressed = gzipSync(bytes, { level: GZIP_LEVEL });
      const path = join(outputDir, executableName(platform.arch));
      const compressedPath = join(outputDir, compressedExecutableName(platform.arch));
      writeFileSync(`${compressedPath}.partial`, compressed);
      renameSync(`${compressedPath}.partial`, compressedPath);
      renameSync(staged, path);
      return { arch: platform.arch, path, sha256: sha256(bytes), bytes: bytes.length, compressedPath, compressedSha256: sha256(compressed), compressedBytes: compressed.length };
    });
    writeFileSync(manifestFile, `${JSON.stringify({ key, nodeVersion: AGENT_RUNTIME_NODE_VERSION, agentSha256, executables }, null, 2)}\n`);
    return executables;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  buildAgent().then(
    (path) => {
      console.log(path);
      for (const e of buildAgentExecutablesSync()) console.log(`${e.path} (${(e.bytes / 1e6).toFixed(1)} MB; shipped as ${e.compressedPath}, ${(e.compressedBytes / 1e6).toFixed(1)} MB, sha256 ${e.compressedSha256})`);
    },
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
