import { EXIT } from '../../format/exit-codes';
import { NODE_INSTALL_FALLBACK, NODE_INSTALL_LINES, NODE_SUPPORT, nodeInstallAdvice } from '../../format/node-support';
import { groupParameters, DEFAULT_PARAMETER_PREFIX } from '../../format/parameters';

/**
 * The shell script the SSM document runs on a host (aws:runShellScript, /bin/sh). It is built
 * here, as plain text, so that a test can run exactly this script outside SSM.
 *
 * `{{ name }}` are SSM document parameters; SSM substitutes them as text before the script runs,
 * so each one is constrained by an allowedPattern (see documentParameters in format/run-document.ts) and quoted once here.
 */
export interface AgentScriptOptions {
  /** s3://bucket/key of the agent bundle. */
  readonly agentUrl: string;
  /** SHA-256 (hex) of the bundle: a host runs only the exact file the stack shipped. */
  readonly agentSha256: string;
  /** Region the agent talks to (SSM does not set AWS_REGION for commands). */
  readonly region: string;
  /** @default DEFAULT_PARAMETER_PREFIX */
  readonly parameterPrefix?: string;
}

const MINIMUM_NODE_MAJOR = NODE_SUPPORT.minimumMajor;

/** A shell word that stands for `text` exactly. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * A shell function that prints the Node.js install line for this host's distribution
 * (format/node-support.ts), from /etc/os-release: ID first, then each of ID_LIKE. Builtins only,
 * so it answers on a host with no `node` (or anything else) on PATH. COLDSEAL_OS_RELEASE is not
 * set under SSM; it lets a test play another distribution.
 */
function nodeInstallLineFunction(): string[] {
  const cases = NODE_INSTALL_LINES.map((entry) => {
    const patterns = entry.ids.flatMap((id) => (entry.versionMajors ?? ['*']).map((major) => `${id}:${major}`));
    return `      ${patterns.join(' | ')}) echo ${shellQuote(nodeInstallAdvice(entry))}; exit 0 ;;`;
  });
  return [
    'node_install_line() (',
    '  set +u',
    '  ID=; ID_LIKE=; VERSION_ID=',
    '  OS_RELEASE="${COLDSEAL_OS_RELEASE:-/etc/os-release}"',
    '  if [ -r "$OS_RELEASE" ]; then . "$OS_RELEASE"; fi',
    '  for FAMILY in "$ID" $ID_LIKE; do',
    '    case "$FAMILY:${VERSION_ID%%.*}" in',
    ...cases,
    '    esac',
    '  done',
    `  echo ${shellQuote(NODE_INSTALL_FALLBACK)}`,
    ')',
  ];
}

const GROUP_PLACEHOLDER = 'GROUPNAMEPLACEHOLDER';

/** The group's config parameter name with the group left as a shell variable, derived from format/parameters. */
function configParameterTemplate(prefix: string, variable: string): string {
  return groupParameters(GROUP_PLACEHOLDER, prefix).config.split(GROUP_PLACEHOLDER).join(variable);
}

const SHA_CHECK = `node -e 'try{const h=require("crypto").createHash("sha256").update(require("fs").readFileSync(process.argv[1])).digest("hex");process.exit(h===process.argv[2]?0:1)}catch(e){process.exit(1)}'`;

/** The script, one line per runCommand entry. */
export function agentScriptLines(options: AgentScriptOptions): string[] {
  if (!/^s3:\/\/[^/\s']+\/[^\s']+$/.test(options.agentUrl) && !options.agentUrl.includes('${Token')) {
    throw new Error(`agentUrl "${options.agentUrl}" is not an s3:// URL`);
  }
  if (!/^[0-9a-f]{64}$/.test(options.agentSha256)) throw new Error(`agentSha256 "${options.agentSha256}" is not a SHA-256 hex digest`);
  const prefix = options.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX;
  const agentFile = `coldseal-agent-${options.agentSha256.slice(0, 16)}.js`;
  return [
    'set -eu',
    'umask 077',
    "GROUP='{{ group }}'",
    "ACTION='{{ action }}'",
    "TIER='{{ tier }}'",
    "SOURCES='{{ sources }}'",
    ...nodeInstallLineFunction(),
    'if ! command -v node >/dev/null 2>&1; then',
    `  echo "coldseal: Node.js ${MINIMUM_NODE_MAJOR} or later is required on this host and there is no 'node' on PATH. Install it, then run again: $(node_install_line)" >&2`,
    `  exit ${EXIT.CONFIG}`,
    'fi',
    // Read from --version, not run as a script: an old Node must not need to understand anything.
    'NODE_VERSION=$(node --version 2>/dev/null || true)',
    'NODE_MAJOR=${NODE_VERSION#v}',
    'NODE_MAJOR=${NODE_MAJOR%%.*}',
    "case \"$NODE_MAJOR\" in '' | *[!0-9]*) NODE_MAJOR=0 ;; esac",
    `if [ "$NODE_MAJOR" -lt ${MINIMUM_NODE_MAJOR} ]; then`,
    `  echo "coldseal: Node.js ${MINIMUM_NODE_MAJOR} or later is required; this host has \${NODE_VERSION:-a node that does not tell its version}. Upgrade it, then run again: $(node_install_line)" >&2`,
    `  exit ${EXIT.CONFIG}`,
    'fi',
    `export AWS_REGION='${options.region}' AWS_DEFAULT_REGION='${options.region}'`,
    // COLDSEAL_HOME is not set under SSM; it lets a test run this script without writing /var/lib.
    'AGENT_DIR="${COLDSEAL_HOME:-/var/lib/coldseal}/agent"',
    `AGENT="$AGENT_DIR/${agentFile}"`,
    'mkdir -p "$AGENT_DIR"',
    `if ! ${SHA_CHECK} "$AGENT" '${options.agentSha256}'; then`,
    '  if ! command -v aws >/dev/null 2>&1; then',
    `    echo "coldseal: the AWS CLI is needed to fetch the agent from ${options.agentUrl} and there is no 'aws' on PATH. Install it and run again." >&2`,
    `    exit ${EXIT.CONFIG}`,
    '  fi',
    '  DOWNLOAD="$AGENT.$$.download"',
    `  if ! aws s3 cp --only-show-errors '${options.agentUrl}' "$DOWNLOAD"; then`,
    '    rm -f "$DOWNLOAD"',
    `    echo "coldseal: could not download the agent from ${options.agentUrl}: is the coldseal instance policy attached to this host's role?" >&2`,
    `    exit ${EXIT.STORAGE}`,
    '  fi',
    `  if ! ${SHA_CHECK} "$DOWNLOAD" '${options.agentSha256}'; then`,
    '    rm -f "$DOWNLOAD"',
    `    echo "coldseal: the agent downloaded from ${options.agentUrl} does not have the SHA-256 this document expects; refusing to run it." >&2`,
    `    exit ${EXIT.INTEGRITY}`,
    '  fi',
    '  mv -f "$DOWNLOAD" "$AGENT"',
    // Each stack update ships an agent of another name: earlier ones and their code caches would
    // pile up. A run still using one has its file open already (an unlinked file stays readable).
    '  for OLD in "$AGENT_DIR"/coldseal-agent-*.js "$AGENT_DIR"/coldseal-agent-*.js.v8cache; do',
    '    case "$OLD" in "$AGENT" | "$AGENT.v8cache") ;; *) rm -f "$OLD" ;; esac',
    '  done',
    'fi',
    `set -- "$ACTION" --config-parameter "${configParameterTemplate(prefix, '$GROUP')}"`,
    'if [ "$ACTION" = backup ] && [ "$TIER" != auto ]; then set -- "$@" --tier "$TIER"; fi',
    'if [ "$ACTION" = backup ] && [ "$SOURCES" != all ]; then set -- "$@" --source "$SOURCES"; fi',
    'exec node "$AGENT" "$@"',
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
