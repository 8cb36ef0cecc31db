import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chown, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { AgentConfig, PostgresSourceConfig } from '../../../format/agent-config';
import { currentRuntime, type AgentRuntime } from '../agent-runtime';
import type { AgentClients } from '../aws';
import { psqlRun, type PgConnection } from '../db/postgres';
import { ColdsealError, EXIT, type ExitCode } from '../errors';
import type { Log } from '../log';
import { runTool } from '../pipeline/sink';
import type { ConfigOrigin } from '../commands/options';
import { archiveCommandFor, archiveWrapperScript, WRAPPER_SIGNATURE, wrapperPath } from './archive-wrapper';
import { defaultStateDir } from './push-plan';
import { selfInvocation } from './self-invocation';
import { PITR_SETTINGS_QUERY, planPitrSetup, RELOAD_STATEMENT, type PgSettingRow, type PitrSetupPlan } from './setup-plan';
import { pitrConnection } from './source-connection';

/**
 * `coldseal pitr setup`: reads the server's settings, plans (setup-plan.ts), and with --apply
 * installs the wrapper script archive_command points at (archive-wrapper.ts) and the state
 * directory it shares with archive-push, then runs the ALTER SYSTEM statements and reloads.
 * The wrapper is written before archive_command names it, so PostgreSQL never runs a command that
 * does not exist yet. ALTER SYSTEM cannot run in a transaction block (PostgreSQL docs, "ALTER
 * SYSTEM"), so the statements go to psql's standard input, each its own transaction, never one -c.
 */
export interface PitrSetupOptions {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly source: PostgresSourceConfig;
  readonly apply: boolean;
  readonly replace: boolean;
  readonly installDir: string;
  readonly stateDir?: string;
  /** How the wrapper's agent call finds the configuration: as this call did. */
  readonly configOrigin: ConfigOrigin;
  readonly print: (line: string) => void;
}

export interface PitrSetupResult {
  readonly exitCode: ExitCode;
  readonly plan: PitrSetupPlan;
  readonly wrapper: string;
  readonly restartNeeded: boolean;
}

interface ServerFacts {
  superuser: boolean;
  serverVersionNum: number;
  dataDirectory: string | null;
  settings: PgSettingRow[];
}

const FACTS_QUERY = `select json_build_object(
  'superuser', current_setting('is_superuser') = 'on',
  'serverVersionNum', current_setting('server_version_num')::int,
  'dataDirectory', case when current_setting('is_superuser') = 'on' then current_setting('data_directory') end,
  'settings', (select json_agg(s) from (${PITR_SETTINGS_QUERY}) s)
);`;

async function readServerFacts(conn: PgConnection, source: string): Promise<ServerFacts> {
  let out: string;
  try {
    out = await runTool(psqlRun(conn, 'postgres'), `source ${source}: reading the server's settings`, FACTS_QUERY);
  } catch (error) {
    throw new ColdsealError(EXIT.SOURCE, (error as Error).message, "Check that PostgreSQL runs and that the source's host, port, user (or runAs) reach it");
  }
  return JSON.parse(out.trim()) as ServerFacts;
}

/** How a command the agent installs (archive_command, the binlog-push timer) finds the configuration: as this call did. */
export function configArgs(origin: ConfigOrigin): string[] {
  if (origin.config) return ['--config', isAbsolute(origin.config) ? origin.config : resolve(origin.config)];
  if (origin.configParameter) return ['--config-parameter', origin.configParameter, ...(origin.region ? ['--region', origin.region] : [])];
  throw new ColdsealError(EXIT.USAGE, 'no configuration given', 'Use --config FILE or --config-parameter NAME');
}

export async function runPitrSetup(options: PitrSetupOptions): Promise<PitrSetupResult> {
  const { source, print } = options;
  if (!source.pitr?.enabled) {
    throw new ColdsealError(EXIT.CONFIG, `source ${source.name} does not have point-in-time recovery enabled`, `Add "pitr": { "enabled": true } to source ${source.name} in the configuration, then run pitr setup again`);
  }
  const conn = await pitrConnection(source, options.clients, 'coldseal-pitr-setup');
  const facts = await readServerFacts(conn, source.name);
  const stateDir = resolve(options.stateDir ?? defaultStateDir(source.name));
  const wrapper = resolve(wrapperPath(options.installDir, source.name));
  const archiveCommand = archiveCommandFor(wrapper);
  const outcome = planPitrSetup({
    settings: facts.settings,
    superuser: facts.superuser,
    serverVersionNum: facts.serverVersionNum,
    archiveCommand,
    archiveTimeoutSeconds: source.pitr.archiveTimeoutSeconds,
    replace: options.replace,
  });
  if (outcome.kind === 'refused') throw outcome.error;
  const plan = outcome.plan;
  const agent = await agentToInstall(stateDir);
  const script = archiveWrapperScript({ source: source.name, stateDir, agent: agent.words, configArgs: configArgs(options.configOrigin) });
  const existing = await readFile(wrapper, 'utf8').catch(() => undefined);
  if (existing !== undefined && existing !== script && !existing.split('\n', 2)[1]?.startsWith(WRAPPER_SIGNATURE) && !options.replace) {
    throw new ColdsealError(EXIT.REFUSED, `${wrapper} exists and is not a coldseal wrapper`, 'Pass --replace to overwrite it, or choose another --install-dir');
  }
  const wrapperChanges = existing !== script;

  const verb = options.apply ? '' : 'would ';
  for (const s of plan.satisfied) print(`ok        ${s.name} = ${s.value}`);
  print(`${wrapperChanges ? `${verb}install` : 'ok       '} ${wrapper} (state in ${stateDir})`);
  if (agent.copy) print(`${agent.copy.changes ? `${verb}install` : 'ok       '} ${agent.copy.path} (the agent archive_command runs)`);
  for (const c of plan.changes) print(`${verb}set   ${c.name}: ${c.from === '' ? "''" : c.from} → ${c.to} (${c.takesEffect})   ${c.statement}`);

  if (options.apply) {
    await installWrapper(wrapper, script, stateDir, facts.dataDirectory, agent.copy);
    if (plan.changes.length > 0) {
      const statements = [...plan.changes.map((c) => `${c.statement};`), `${RELOAD_STATEMENT};`].join('\n');
      try {
        await runTool(psqlRun(conn, 'postgres'), `source ${source.name}: ALTER SYSTEM`, statements);
      } catch (error) {
        throw new ColdsealError(EXIT.SOURCE, (error as Error).message, 'The wrapper is installed; run the statements above by hand as a superuser, or fix the cause and run pitr setup again');
      }
      print('reloaded the server configuration');
    }
  }
  const restartNeeded = plan.apply === 'restart';
  if (restartNeeded) print(`${options.apply ? '' : 'then '}RESTART NEEDED: wal_level and archive_mode take effect when PostgreSQL restarts (e.g. systemctl restart postgresql)`);
  const installs = wrapperChanges || Boolean(agent.copy?.changes);
  if (!restartNeeded && plan.changes.length === 0 && !installs) print('nothing to do: this server archives WAL through coldseal');
  if (!options.apply && (plan.changes.length > 0 || installs)) print('nothing was changed: run again with --apply');
  options.log.info('pitr setup', { source: source.name, applied: options.apply, changes: plan.changes.map((c) => c.name), restartNeeded, wrapper });
  return { exitCode: EXIT.OK, plan, wrapper, restartNeeded };
}

export interface AgentCopy {
  /** Where the copy goes, in the state directory. */
  readonly path: string;
  /** What is copied: the bundle, or the self-contained executable. */
  readonly from: string;
  /** False when `path` already holds the same bytes. */
  readonly changes: boolean;
}

/** The copies' names in <state dir>/agent/ (the bundle and the executable may both have been installed there, one after the other). */
export const AGENT_COPY_NAMES = { bundle: 'coldseal-agent.js', executable: 'coldseal-agent' } as const;

/**
 * What the wrapper runs. From the self-contained executable (what hosts run) or the bundle (what
 * laptops run), a copy of it in the state directory: the SSM document keeps only the newest
 * version and deletes the others at each stack update, which would break archive_command in
 * between; and there, owned by the server's user, the loader may keep its code cache for that
 * user (scripts/code-cache.ts), which takes ~0.1 s off each start. From a source checkout
 * (development, tests): this very command line.
 */
export async function agentToInstall(stateDir: string, runtime: AgentRuntime = currentRuntime()): Promise<{ words: string[]; copy?: AgentCopy }> {
  const words = selfInvocation(runtime);
  if (runtime.executable) {
    const path = join(stateDir, 'agent', AGENT_COPY_NAMES.executable);
    return { words: [path], copy: { path, from: runtime.execPath, changes: !(await sameBytes(runtime.execPath, path)) } };
  }
  const script = runtime.script;
  // Joined here so that the bundle's own text holds the loader's marker only once (build-agent.ts checks).
  const marker = ['/*', 'coldseal', 'agent', 'follows'].join(' ');
  if (runtime.execArgv.length > 0 || !script) return { words };
  const bundle = await readFile(script).catch(() => undefined);
  if (!bundle?.includes(marker)) return { words };
  const path = join(stateDir, 'agent', AGENT_COPY_NAMES.bundle);
  return { words: [runtime.execPath, path], copy: { path, from: resolve(script), changes: !(await sameBytes(script, path)) } };
}

/** Whether `copy` holds the bytes of `original`: by size, then by SHA-256, read as streams (the executable is ~130 MB). */
async function sameBytes(original: string, copy: string): Promise<boolean> {
  const [a, b] = await Promise.all([stat(original), stat(copy).catch(() => undefined)]);
  if (!b || a.size !== b.size) return false;
  const digest = async (path: string) => {
    const hash = createHash('sha256');
    await pipeline(createReadStream(path), hash);
    return hash.digest('hex');
  };
  const [x, y] = await Promise.all([digest(original), digest(copy)]);
  return x === y;
}

/**
 * Writes the wrapper (0755, by rename: the archiver never runs a half-written one), the state
 * directory and the agent's copy, these two owned by the server's user.
 */
async function installWrapper(path: string, script: string, stateDir: string, dataDirectory: string | null, agent: AgentCopy | undefined): Promise<void> {
  const mkdirOnce = (dir: string, mode: number) =>
    mkdir(dir, { mode }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  try {
    // Parents stay traversable: the server's user must reach the state directory.
    await mkdir(dirname(stateDir), { recursive: true, mode: 0o755 });
    await mkdirOnce(stateDir, 0o700);
    // archive_command runs as the data directory's owner; only root can hand the directory over.
    const owner = dataDirectory && process.getuid?.() === 0 ? await stat(dataDirectory) : undefined;
    if (owner) await chown(stateDir, owner.uid, owner.gid);
    // What the wrapper calls is in place before the wrapper names it.
    if (agent) await writeAgentCopy(agent, owner);
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, script, { mode: 0o755 });
    await rename(temporary, path);
  } catch (error) {
    throw new ColdsealError(EXIT.FAILURE, `installing ${path} or ${stateDir} failed: ${(error as Error).message}`, 'Run pitr setup as root (or as a user who may write there), or choose --install-dir and --state-dir');
  }
}

/**
 * Writes the agent's copy, streamed into a temporary file then renamed over the copy (a running
 * command never sees half of it), owned by `owner` when given.
 */
export async function writeAgentCopy(agent: AgentCopy, owner?: { uid: number; gid: number }): Promise<void> {
  const dir = dirname(agent.path);
  await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  const temporary = `${agent.path}.${process.pid}.tmp`;
  try {
    await pipeline(createReadStream(agent.from), createWriteStream(temporary, { mode: 0o755 }));
    if (owner) {
      await chown(dir, owner.uid, owner.gid);
      await chown(temporary, owner.uid, owner.gid);
    }
    await rename(temporary, agent.path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
