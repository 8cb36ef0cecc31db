import { AGENT_PLATFORMS, cachedExecutableName, compressedExecutableName, MINIMUM_GLIBC, type AgentArch, type AgentExecutable } from '../../format/agent-executables';
import { EXIT } from '../../format/exit-codes';
import { groupParameters, DEFAULT_PARAMETER_PREFIX } from '../../format/parameters';

/**
 * The shell script the SSM document runs on a host (aws:runShellScript, /bin/sh), after its two
 * aws:downloadContent steps have fetched both architectures' executables (agent-delivery.ts). It
 * is built here, as plain text, so that a test can run exactly this script outside SSM.
 *
 * It needs nothing but what every Linux has: uname, getconf (the C library's), coreutils'
 * sha256sum and gzip. No Node.js, no AWS CLI: the executable carries its own Node, and the SSM
 * Agent fetched it with the instance's role.
 *
 * `{{ name }}` are SSM document parameters; SSM substitutes them as text before the script runs,
 * so each one is constrained by an allowedPattern (see documentParameters in format/run-document.ts) and quoted once here.
 */

/** Where the agent lives on a host (COLDSEAL_HOME overrides it, for tests). */
export const AGENT_HOME = '/var/lib/coldseal';

/**
 * Where the document's download steps write the executables: absolute and the same for every
 * command, so the script knows where to look (a relative destinationPath would go under the
 * command's own orchestration directory: aws/amazon-ssm-agent agent/plugins/downloadcontent/downloadcontent.go).
 * COLDSEAL_DOWNLOADS overrides it, for tests.
 */
export const AGENT_DOWNLOAD_DIR = `${AGENT_HOME}/download`;

/** The file a download step writes for this architecture: its full path (not a directory), so the file has this name whatever the asset's key. */
export function agentDownloadPath(arch: AgentArch): string {
  return `${AGENT_DOWNLOAD_DIR}/${compressedExecutableName(arch)}`;
}

/** Other names `uname -m` gives the same machine (arm64: what some kernels and tools print for aarch64). */
const MACHINE_ALIASES: Readonly<Record<AgentArch, readonly string[]>> = { x64: [], arm64: ['arm64'] };

/** What the script must know of each executable: which one, and the SHA-256s it accepts. */
export type AgentScriptExecutable = Pick<AgentExecutable, 'arch' | 'sha256' | 'compressedSha256'>;

export interface AgentScriptOptions {
  /** One per AGENT_PLATFORMS entry: a host runs only the exact file the stack shipped for its architecture. */
  readonly executables: readonly AgentScriptExecutable[];
  /** Region the agent talks to (SSM does not set AWS_REGION for commands). */
  readonly region: string;
  /** @default DEFAULT_PARAMETER_PREFIX */
  readonly parameterPrefix?: string;
}

const GROUP_PLACEHOLDER = 'GROUPNAMEPLACEHOLDER';

/** The group's config parameter name with the group left as a shell variable, derived from format/parameters. */
function configParameterTemplate(prefix: string, variable: string): string {
  return groupParameters(GROUP_PLACEHOLDER, prefix).config.split(GROUP_PLACEHOLDER).join(variable);
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The executables in AGENT_PLATFORMS order, each checked; throws naming what is wrong. */
export function checkedScriptExecutables(executables: readonly AgentScriptExecutable[], what = 'executables'): AgentScriptExecutable[] {
  for (const [index, e] of executables.entries()) {
    if (!AGENT_PLATFORMS.some((p) => p.arch === e.arch)) throw new Error(`${what}[${index}].arch "${e.arch}" is not one of ${AGENT_PLATFORMS.map((p) => p.arch).join(', ')}`);
    if (!SHA256_HEX.test(e.sha256)) throw new Error(`${what}[${index}].sha256 "${e.sha256}" is not a SHA-256 hex digest`);
    if (!SHA256_HEX.test(e.compressedSha256)) throw new Error(`${what}[${index}].compressedSha256 "${e.compressedSha256}" is not a SHA-256 hex digest`);
  }
  return AGENT_PLATFORMS.map((platform) => {
    const matching = executables.filter((e) => e.arch === platform.arch);
    if (matching.length === 0) throw new Error(`${what}: there is no executable for ${platform.arch} (${platform.description}); every host architecture needs one`);
    if (matching.length > 1) throw new Error(`${what}: ${platform.arch} is given ${matching.length} times`);
    return matching[0];
  });
}

/** One `case` branch: the architecture's names, its cached file and the SHA-256s the script accepts. */
function architectureCase(e: AgentScriptExecutable): string {
  const platform = AGENT_PLATFORMS.find((p) => p.arch === e.arch)!;
  const names = [platform.machine, ...MACHINE_ALIASES[e.arch]].join(' | ');
  return `  ${names}) ARCH=${e.arch}; SHA256=${e.sha256}; COMPRESSED_SHA256=${e.compressedSha256}; AGENT_FILE=${cachedExecutableName(e.sha256)} ;;`;
}

/** The link to the current version, in the agent directory. */
export const STABLE_LINK = 'coldseal-agent';

/** The script, one line per runCommand entry. */
export function agentScriptLines(options: AgentScriptOptions): string[] {
  const executables = checkedScriptExecutables(options.executables);
  const prefix = options.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX;
  const machines = AGENT_PLATFORMS.map((p) => p.machine).join(' and ');
  const glibc = `${MINIMUM_GLIBC.major}.${MINIMUM_GLIBC.minor}`;
  const downloads = executables.map((e) => `"$DOWNLOADS/${compressedExecutableName(e.arch)}"`).join(' ');
  return [
    'set -eu',
    'umask 077',
    "GROUP='{{ group }}'",
    "ACTION='{{ action }}'",
    "TIER='{{ tier }}'",
    "SOURCES='{{ sources }}'",
    // COLDSEAL_HOME and COLDSEAL_DOWNLOADS are not set under SSM; they let a test run this script
    // without writing /var/lib, with the downloads where its emulation of the SSM Agent put them.
    `DOWNLOADS="\${COLDSEAL_DOWNLOADS:-${AGENT_DOWNLOAD_DIR}}"`,
    `AGENT_DIR="\${COLDSEAL_HOME:-${AGENT_HOME}}/agent"`,
    'INCOMING=',
    // The downloads (~45 MB each) are fetched again by every run: none stays behind, whatever the
    // outcome. The SSM Agent also leaves an ETag file per URL there (aws/amazon-ssm-agent
    // agent/fileutil/artifact/artifact.go s3Download: it writes <sha1 of the URL>.etag, then
    // renames the downloaded file to destinationPath, so the ETag never matches a file again).
    `drop_downloads() { rm -f ${downloads} "$DOWNLOADS"/*.etag; }`,
    'cleanup() { drop_downloads; if [ -n "$INCOMING" ]; then rm -f "$INCOMING" "$INCOMING.gz"; fi; }',
    'trap cleanup EXIT',
    "trap 'exit 130' INT",
    "trap 'exit 143' TERM",
    'fail() { CODE=$1; shift; echo "coldseal: $*" >&2; exit "$CODE"; }',
    'for TOOL in uname getconf sha256sum gzip; do',
    `  command -v "$TOOL" >/dev/null 2>&1 || fail ${EXIT.CONFIG} "this host has no $TOOL on PATH; fetching the agent needs uname, getconf, sha256sum and gzip (coreutils, gzip and the C library's tools: install the missing one and run again)"`,
    'done',
    'MACHINE=$(uname -m)',
    'case "$MACHINE" in',
    ...executables.map(architectureCase),
    `  *) fail ${EXIT.CONFIG} "this host is $MACHINE; the agent runs on ${machines} Linux" ;;`,
    'esac',
    // The official Node.js inside the executable needs glibc (format/agent-executables.ts MINIMUM_GLIBC).
    'LIBC=$(getconf GNU_LIBC_VERSION 2>/dev/null || true)',
    'case "$LIBC" in',
    "  'glibc '*) ;;",
    `  *) fail ${EXIT.CONFIG} "this host's C library is not glibc (getconf GNU_LIBC_VERSION says: \${LIBC:-nothing}); the agent needs glibc ${glibc} or later, and musl (Alpine Linux) will not do" ;;`,
    'esac',
    'GLIBC=${LIBC#glibc }',
    'GLIBC_MAJOR=${GLIBC%%.*}',
    'GLIBC_MINOR=${GLIBC#*.}',
    'GLIBC_MINOR=${GLIBC_MINOR%%[!0-9]*}',
    'case "$GLIBC_MAJOR:$GLIBC_MINOR" in',
    `  :* | *: | *[!0-9:]*) fail ${EXIT.CONFIG} "this host's glibc version cannot be read (getconf GNU_LIBC_VERSION says: $LIBC); the agent needs glibc ${glibc} or later" ;;`,
    'esac',
    `if [ "$GLIBC_MAJOR" -lt ${MINIMUM_GLIBC.major} ] || { [ "$GLIBC_MAJOR" -eq ${MINIMUM_GLIBC.major} ] && [ "$GLIBC_MINOR" -lt ${MINIMUM_GLIBC.minor} ]; }; then`,
    `  fail ${EXIT.CONFIG} "this host has glibc $GLIBC; the agent needs glibc ${glibc} or later (Amazon Linux 2023, RHEL 8, Debian 10, Ubuntu 20.04 and later have it)"`,
    'fi',
    'sha256_of() { if [ -f "$1" ] && H=$(sha256sum 2>/dev/null < "$1"); then echo "${H%% *}"; fi; }',
    'mkdir -p "$AGENT_DIR"',
    'chmod 700 "$AGENT_DIR"',
    'AGENT="$AGENT_DIR/$AGENT_FILE"',
    // A cached copy with the document's SHA-256 runs as it is: the downloads are not even read.
    'if [ "$(sha256_of "$AGENT")" != "$SHA256" ]; then',
    '  DOWNLOAD="$DOWNLOADS/coldseal-agent-linux-$ARCH.gz"',
    // A private name no cleanup below matches (a run beside this one cleans up too).
    '  INCOMING="$AGENT_DIR/.incoming.$$"',
    // One open of the download, into this run's own name: what is checked is what is unpacked.
    '  if ln "$DOWNLOAD" "$INCOMING.gz" 2>/dev/null || cp "$DOWNLOAD" "$INCOMING.gz" 2>/dev/null; then',
    '    [ "$(sha256_of "$INCOMING.gz")" = "$COMPRESSED_SHA256" ] || fail ' +
      `${EXIT.INTEGRITY} "the agent downloaded to $DOWNLOAD does not have the SHA-256 this document expects; refusing to run it"`,
    `    gzip -dc < "$INCOMING.gz" > "$INCOMING" || fail ${EXIT.INTEGRITY} "the agent downloaded to $DOWNLOAD does not decompress; refusing to run it"`,
    `    [ "$(sha256_of "$INCOMING")" = "$SHA256" ] || fail ${EXIT.INTEGRITY} "the agent decompressed from $DOWNLOAD does not have the SHA-256 this document expects; refusing to run it"`,
    '    chmod 700 "$INCOMING"',
    '    mv -f "$INCOMING" "$AGENT"',
    '    rm -f "$INCOMING.gz"',
    '    INCOMING=',
    // Each stack update ships an agent of another name: earlier ones and their code caches would
    // pile up. A run still using one has its file open already (an unlinked file stays readable).
    '    for OLD in "$AGENT_DIR"/coldseal-agent-*; do',
    '      case "$OLD" in "$AGENT" | "$AGENT.v8cache") ;; *) rm -f "$OLD" ;; esac',
    '    done',
    // It starts here, or the host lacks something it needs (a library the loader names).
    // Removed again, so that the next run says the same instead of failing in exec.
    '    if ! SMOKE=$("$AGENT" --version 2>&1); then',
    '      INSTALLED=$(sha256_of "$AGENT")',
    '      rm -f "$AGENT" "$AGENT.v8cache"',
    `      fail ${EXIT.CONFIG} "the agent for $MACHINE (SHA-256 $INSTALLED) does not start on this host: $SMOKE"`,
    '    fi',
    // A run beside this one installed the agent, then removed the downloads.
    '  elif [ "$(sha256_of "$AGENT")" != "$SHA256" ]; then',
    `    fail ${EXIT.STORAGE} "the agent's download $DOWNLOAD is missing: the document's download step writes it just before this step"`,
    '  fi',
    'fi',
    // A stable name for people (`sudo /var/lib/coldseal/agent/coldseal-agent list ...`); the
    // cleanup above matches only the versioned names, so it never removes this link.
    `[ "$(readlink "$AGENT_DIR/${STABLE_LINK}" 2>/dev/null || true)" = "$AGENT_FILE" ] || ln -sfn "$AGENT_FILE" "$AGENT_DIR/${STABLE_LINK}"`,
    'drop_downloads',
    `export AWS_REGION='${options.region}' AWS_DEFAULT_REGION='${options.region}'`,
    `set -- "$ACTION" --config-parameter "${configParameterTemplate(prefix, '$GROUP')}"`,
    'if [ "$ACTION" = backup ] && [ "$TIER" != auto ]; then set -- "$@" --tier "$TIER"; fi',
    'if [ "$ACTION" = backup ] && [ "$SOURCES" != all ]; then set -- "$@" --source "$SOURCES"; fi',
    'exec "$AGENT" "$@"',
  ];
}

/**
 * What SSM does to the script before running it: every `{{ name }}` (spaces optional) replaced by
 * the parameter's value, defaults filled in. For tests and for people who read the document.
 */
export function substituteParameters(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (_match, key: string) => {
    if (!(key in values)) throw new Error(`no value for document parameter "${key}"`);
    return values[key];
  });
}
