import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { mysqlPitrSchema, type AgentConfig, type MysqlSourceConfig } from '../../../../format/agent-config';
import type { AgentClients } from '../../aws';
import { runMysql, type MysqlConnection } from '../../db/mysql';
import { ColdsealError, EXIT, type ExitCode } from '../../errors';
import type { Log } from '../../log';
import type { ConfigOrigin } from '../../commands/options';
import { defaultStateDir } from '../push-plan';
import { shellQuote } from '../self-invocation';
import { agentToInstall, configArgs, writeAgentCopy } from '../setup';
import { openPitrMysqlConnection } from './connection';
import { planMysqlPitrSetup, type MysqlServerFacts, type MysqlSetupPlan, type SetupCheck } from './setup-plan';
import { binlogPushUnits, cronLine, installUnits, systemScheduler, unitNames, type Scheduler } from './setup-timer';

/**
 * `coldseal pitr setup --source <mysql source> [--apply]`: reads the server (variables, grants,
 * replica status), prints every check with what to do (setup-plan.ts), and with --apply runs the
 * run-time statements the plan allows, copies the agent into the state directory and installs the
 * binlog-push timer (setup-timer.ts). What needs the configuration file and a restart, or an
 * administrator's GRANT, is printed exactly and makes the exit status SOURCE: the source cannot
 * archive until someone does it.
 */
export interface MysqlPitrSetupOptions {
  readonly config: AgentConfig;
  readonly clients: AgentClients;
  readonly log: Log;
  readonly source: MysqlSourceConfig;
  readonly apply: boolean;
  readonly stateDir?: string;
  readonly configOrigin: ConfigOrigin;
  readonly print: (line: string) => void;
  readonly scheduler?: Scheduler;
}

export interface MysqlPitrSetupResult {
  readonly exitCode: ExitCode;
  readonly plan: MysqlSetupPlan;
  /** Checks still not satisfied after this run (apply items count as remaining without --apply). */
  readonly remaining: readonly SetupCheck[];
  readonly timerEnabled: boolean;
}

const VARIABLES = [
  'version',
  'log_bin',
  'log_bin_basename',
  'binlog_format',
  'server_id',
  'expire_logs_days',
  'binlog_expire_logs_seconds',
  'binlog_checksum',
  'gtid_binlog_pos',
  'gtid_strict_mode',
  'gtid_mode',
  'enforce_gtid_consistency',
  'wsrep_on',
];

async function readFacts(conn: MysqlConnection, source: string): Promise<MysqlServerFacts> {
  const fail = (error: Error) => {
    throw new ColdsealError(EXIT.SOURCE, `source ${source}: ${error.message}`, "Check that the server runs and that the source's host/port/socket, user and password reach it");
  };
  const variableLines = await runMysql(conn, `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${VARIABLES.map((v) => `'${v}'`).join(', ')});`, 'reading the server\'s variables').catch(fail);
  const variables = new Map(variableLines.map((l) => l.split('\t')).map(([k, ...rest]) => [k.toLowerCase(), rest.join('\t')] as const));
  const grants = await runMysql(conn, 'SHOW GRANTS;', 'reading the account\'s grants').catch(fail);
  const mariadb = /mariadb/i.test(variables.get('version') ?? '');
  // SHOW REPLICA STATUS since MySQL 8.0.22 (SHOW SLAVE STATUS is gone in 8.4); MariaDB keeps SLAVE.
  const statement = mariadb ? 'SHOW SLAVE STATUS;' : 'SHOW REPLICA STATUS;';
  const replica = await runMysql(conn, statement, 'asking whether the server replicates').then(
    (lines) => lines.length > 0,
    () => null,
  );
  return { variables, grants, replica };
}

const MARK: Record<SetupCheck['status'], string> = { ok: 'ok       ', apply: 'set      ', configure: 'CONFIGURE', grant: 'GRANT    ', advice: 'advice   ' };

export async function runMysqlPitrSetup(options: MysqlPitrSetupOptions): Promise<MysqlPitrSetupResult> {
  const { source, print, log } = options;
  if (!source.pitr?.enabled) {
    throw new ColdsealError(EXIT.CONFIG, `source ${source.name} does not have point-in-time recovery enabled`, `Add "pitr": { "enabled": true } to source ${source.name} in the configuration, then run pitr setup again`);
  }
  const pitr = mysqlPitrSchema.parse(source.pitr);
  const scheduler = options.scheduler ?? systemScheduler;
  const connection = await openPitrMysqlConnection(source, options.clients);
  let plan: MysqlSetupPlan;
  const applied = new Set<SetupCheck>();
  try {
    const facts = await readFacts(connection.conn, source.name);
    plan = planMysqlPitrSetup({ facts, pitr, source: source.name });
    print(`source ${source.name}: ${plan.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${facts.variables.get('version') ?? ''}`);
    for (const c of plan.checks) {
      const action = c.status === 'apply' ? `   ${options.apply && !plan.applyPrivilegeMissing ? '' : 'would run: '}${c.statement}` : c.status === 'grant' ? `   an administrator runs: ${c.grant}` : '';
      print(`${MARK[c.status]} ${c.name} = ${c.current}: ${c.message}${action}`);
    }
    if (options.apply) {
      const statements = plan.checks.filter((c) => c.status === 'apply');
      if (statements.length && plan.applyPrivilegeMissing) {
        print(`not run: the statements above need ${plan.applyPrivilegeMissing}, which the account lacks; run them as an administrator`);
      } else {
        for (const c of statements) {
          try {
            await runMysql(connection.conn, `${c.statement};`, `source ${source.name}: ${c.statement}`);
            applied.add(c);
            print(`done      ${c.statement}`);
          } catch (error) {
            print(`FAILED    ${c.statement}: ${(error as Error).message}`);
          }
        }
      }
    }
  } finally {
    await connection.close();
  }

  if (plan.configLines.length > 0) {
    print(`${plan.restartNeeded ? 'CONFIGURE' : 'keep     '} put these lines in ${plan.configFile} (create it) so ${plan.restartNeeded ? 'the server starts with them' : 'a restart keeps what was set'}:`);
    print(`    ${plan.configSection}`);
    for (const line of plan.configLines) print(`    ${line}`);
    if (plan.restartNeeded) print(`RESTART NEEDED: then restart the server (e.g. systemctl restart ${plan.flavor === 'mariadb' ? 'mariadb' : 'mysql'}), and run pitr setup again`);
  }

  const timer = await scheduleBinlogPush({ options, scheduler, intervalMinutes: pitr.intervalMinutes });
  const remaining = plan.checks.filter((c) => (c.status === 'apply' && !applied.has(c)) || c.status === 'configure' || c.status === 'grant');
  if (!options.apply && remaining.length > 0) print('nothing was changed: run again with --apply (the CONFIGURE and GRANT items are for you)');
  if (remaining.length === 0) print(`ready: the server is set for binlog-push every ${pitr.intervalMinutes} min`);
  log.info('pitr setup', { source: source.name, applied: options.apply, remaining: remaining.map((c) => c.name), timerEnabled: timer.enabled });
  // Without --apply, what --apply would do is not a failure; what needs a person is, either way,
  // and comes first: the server cannot archive whatever schedules binlog-push.
  const forSomeone = remaining.filter((c) => c.status !== 'apply' || options.apply);
  const exitCode = forSomeone.length > 0 ? EXIT.SOURCE : timer.schedulable ? EXIT.OK : EXIT.CONFIG;
  return { exitCode, plan, remaining, timerEnabled: timer.enabled };
}

/**
 * The agent's copy in the state directory (the SSM document replaces the bundle at each stack
 * update; the timer must not point at a file that goes away), then the units. Without --apply,
 * only what would be done is printed.
 */
async function scheduleBinlogPush(args: { options: MysqlPitrSetupOptions; scheduler: Scheduler; intervalMinutes: number }): Promise<{ enabled: boolean; schedulable: boolean }> {
  const { options, scheduler, intervalMinutes } = args;
  const name = options.source.name;
  const stateDir = resolve(options.stateDir ?? defaultStateDir(name));
  const agent = await agentToInstall(stateDir);
  const command = [...agent.words, 'pitr', 'binlog-push', '--source', name, '--state-dir', stateDir, ...configArgs(options.configOrigin)];
  const units = binlogPushUnits({ source: name, intervalMinutes, command });
  const names = unitNames(name);
  const booted = scheduler.booted();
  const cron = cronLine(intervalMinutes, command, shellQuote);
  if (!options.apply) {
    if (agent.copy) options.print(`would install ${agent.copy.path} (the agent the timer runs)`);
    options.print(`would install ${names.service} and ${names.timer} in ${scheduler.unitDir}${booted ? ', then systemctl daemon-reload and enable --now the timer' : ''}`);
    return { enabled: false, schedulable: true };
  }
  try {
    await mkdir(dirname(stateDir), { recursive: true, mode: 0o755 });
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    if (agent.copy?.changes) await writeAgentCopy(agent.copy);
    if (agent.copy) options.print(`${agent.copy.changes ? 'installed' : 'ok       '} ${agent.copy.path} (the agent the timer runs)`);
  } catch (error) {
    throw new ColdsealError(EXIT.FAILURE, `installing the agent's copy in ${stateDir} failed: ${(error as Error).message}`, 'Run pitr setup as root, or choose --state-dir');
  }
  let outcome: Awaited<ReturnType<typeof installUnits>>;
  try {
    outcome = await installUnits({ scheduler, source: name, units });
  } catch (error) {
    throw new ColdsealError(EXIT.FAILURE, `installing the binlog-push timer failed: ${(error as Error).message}`, `Run pitr setup as root; or run this every ${intervalMinutes} min by other means: ${cron}`);
  }
  for (const path of outcome.written) options.print(`installed ${path}`);
  for (const call of outcome.systemctl) options.print(`          ${call}`);
  if (outcome.enabled) {
    options.print(`scheduled: ${names.timer} runs binlog-push every ${intervalMinutes} min (systemctl list-timers ${names.timer})`);
    return { enabled: true, schedulable: true };
  }
  options.print(`NOT SCHEDULED: systemd is not running this machine (PID 1 is not systemd, e.g. a container), so the units in ${scheduler.unitDir} do nothing here.`);
  options.print(`Run binlog-push every ${intervalMinutes} min by other means, e.g. this line in /etc/cron.d/coldseal-binlog-push-${name}:`);
  options.print(`    ${cron}`);
  if (!scheduler.cronAvailable()) {
    options.print('no cron daemon was found either: nothing on this machine will run binlog-push; the recovery point grows until something does');
    return { enabled: false, schedulable: false };
  }
  return { enabled: false, schedulable: true };
}
