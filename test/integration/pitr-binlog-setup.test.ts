import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import { silentLog } from '../../agent/src/log';
import { loadAgentConfig } from '../../agent/src/commands/options';
import { runMysqlPitrSetup } from '../../agent/src/pitr/mysql/setup';
import { systemScheduler, type Scheduler } from '../../agent/src/pitr/mysql/setup-timer';
import type { MysqlSourceConfig } from '../../format/agent-config';
import { binlogPrefix } from '../../format/layout';
import { buildAgent } from '../../scripts/build-agent';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';
import { startMariadbServer, type MariadbServer } from '../harness/mariadb-server';

/**
 * `coldseal pitr setup --source shop` on a MySQL/MariaDB source, against scratch MariaDB servers:
 * what it reports and prints for the configuration file, what --apply changes at run time (and
 * only that), the binlog-push timer's units, systemctl when systemd runs the machine (a recorded
 * stand-in) and the plain instructions when it does not (this machine).
 */
let source: BinlogSource;
let nolog: MariadbServer;
const scratch = mkdtempSync(join(tmpdir(), 'coldseal-binsetup-'));

before(async () => {
  [source, nolog] = await Promise.all([
    // MIXED and a one-hour expiry: what --apply may fix at run time.
    startBinlogSource({ server: { settings: { 'binlog-format': 'MIXED', 'binlog-expire-logs-seconds': '3600' } } }),
    startMariadbServer({ binlog: false }),
  ]);
  source.sql('CREATE TABLE shop_after (id int primary key)');
  source.server.sql("CREATE USER 'backup'@'localhost' IDENTIFIED BY ''; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO 'backup'@'localhost'");
});

after(async () => {
  await Promise.all([source?.close(), nolog?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

function variables(server: MariadbServer): string {
  return server.sql('SELECT @@global.binlog_format, @@global.binlog_expire_logs_seconds');
}

test('binary log off: CONFIGURE with the exact [mariadbd] lines and a restart, nothing changed, exit SOURCE', async () => {
  const config = source.sandbox.config({ sources: [{ name: 'nolog', type: 'mysql', databases: ['mysql'], socket: nolog.socket, user: 'root', pitr: { enabled: true } }] });
  const result = await source.sandbox.runCli(['pitr', 'setup', '--source', 'nolog', '--apply', '--config', source.sandbox.writeConfig(config), '--unit-dir', join(scratch, 'units-nolog'), '--state-dir', join(scratch, 'state-nolog')]);
  assert.equal(result.code, EXIT.SOURCE, result.stdout + result.log);
  assert.match(result.stdout, /^CONFIGURE log_bin = OFF: the binary log is off/m);
  assert.match(result.stdout, /put these lines in \/etc\/mysql\/mariadb\.conf\.d\/60-coldseal\.cnf \(create it\)/);
  assert.match(result.stdout, /^ {4}\[mariadbd\]\n {4}log_bin = \/var\/log\/mysql\/mariadb-bin\n {4}binlog_format = ROW$/m);
  assert.match(result.stdout, /^RESTART NEEDED: then restart the server/m);
  assert.doesNotMatch(result.stdout, /^done /m, 'no statement ran');
  assert.equal(nolog.sql('SELECT @@global.log_bin, @@global.binlog_format'), '0\tMIXED');
});

test('without --apply: reports what it would set and install, changes nothing, exit OK (only --apply work is left)', async () => {
  const units = join(scratch, 'units-dry');
  const result = await source.cli(['pitr', 'setup', '--source', 'shop', '--unit-dir', units, '--state-dir', join(scratch, 'state-dry')]);
  assert.equal(result.code, EXIT.OK, result.stdout + result.log);
  assert.match(result.stdout, /^set {7}binlog_format = MIXED: must be ROW; .* would run: SET GLOBAL binlog_format = 'ROW'$/m);
  assert.match(result.stdout, /^set {7}binlog_expire_logs_seconds = 1 h: logs are kept 1 h, less than the push interval \(5 min\) plus a 1 d margin.* would run: SET GLOBAL binlog_expire_logs_seconds = 604800$/m);
  assert.match(result.stdout, /^advice {4}gtid_strict_mode = OFF/m);
  assert.match(result.stdout, /would install coldseal-binlog-push-shop\.service and coldseal-binlog-push-shop\.timer/);
  assert.match(result.stdout, /nothing was changed: run again with --apply/);
  assert.equal(variables(source.server), 'MIXED\t3600');
  assert.throws(() => readFileSync(join(units, 'coldseal-binlog-push-shop.timer')), /ENOENT/);
});

test('an account without BINLOG MONITOR and RELOAD: the exact GRANTs, and the statements left for an administrator; exit SOURCE', async () => {
  const config = source.sandbox.config({ sources: [{ name: 'shop', type: 'mysql', databases: ['shop'], socket: source.server.socket, user: 'backup', pitr: { enabled: true } }] });
  const result = await source.sandbox.runCli(['pitr', 'setup', '--source', 'shop', '--apply', '--config', source.sandbox.writeConfig(config), '--unit-dir', join(scratch, 'units-backup'), '--state-dir', join(scratch, 'state-backup')]);
  assert.equal(result.code, EXIT.SOURCE, result.stdout + result.log);
  assert.match(result.stdout, /an administrator runs: GRANT BINLOG MONITOR ON \*\.\* TO `backup`@`localhost`/);
  assert.match(result.stdout, /an administrator runs: GRANT RELOAD ON \*\.\* TO `backup`@`localhost`/);
  assert.match(result.stdout, /SHOW SLAVE STATUS needs SLAVE MONITOR/, 'it cannot tell whether this is a replica, so the format is left to the configuration file');
  assert.match(result.stdout, /not run: the statements above need BINLOG ADMIN \(or SUPER\)/);
  assert.equal(variables(source.server), 'MIXED\t3600');
});

test('--apply: SET GLOBAL what is safe, the agent copy and the units written; no systemd here, so the cron line instead', async () => {
  const units = join(scratch, 'units');
  const stateDir = join(scratch, 'state');
  const result = await source.cli(['pitr', 'setup', '--source', 'shop', '--apply', '--unit-dir', units, '--state-dir', stateDir]);
  assert.equal(variables(source.server), 'ROW\t604800');
  assert.match(result.stdout, /^done {6}SET GLOBAL binlog_format = 'ROW'$/m);
  assert.match(result.stdout, /^keep +put these lines in .*so a restart keeps what was set:\n {4}\[mariadbd\]\n {4}binlog_format = ROW\n {4}binlog_expire_logs_seconds = 604800$/m);
  const service = readFileSync(join(units, 'coldseal-binlog-push-shop.service'), 'utf8');
  const timer = readFileSync(join(units, 'coldseal-binlog-push-shop.timer'), 'utf8');
  assert.match(service, new RegExp(`^ExecStart=\\S+ .* pitr binlog-push --source shop --state-dir ${stateDir} --config ${source.configPath}$`, 'm'));
  assert.match(timer, /^OnUnitActiveSec=5min$/m);
  assert.match(result.stdout, /NOT SCHEDULED: systemd is not running this machine/);
  assert.match(result.stdout, new RegExp(`^ {4}\\*/5 \\* \\* \\* \\* root .* pitr binlog-push --source shop --state-dir ${stateDir} --config ${source.configPath}$`, 'm'));
  // Nothing else on this machine would run it unless a cron daemon is installed.
  assert.equal(result.code, systemScheduler.cronAvailable() ? EXIT.OK : EXIT.CONFIG, result.stdout + result.log);
  if (!systemScheduler.cronAvailable()) assert.match(result.stdout, /no cron daemon was found either/);

  // What the timer runs works: binlog-push (its own branch's command) archives the closed files.
  const words = /^ExecStart=(.*)$/m.exec(service)![1].split(' ');
  const push = spawnSync(words[0], words.slice(1), { env: { ...process.env, ...source.sandbox.account.env, NODE_NO_WARNINGS: '1' }, encoding: 'utf8', timeout: 120_000 });
  assert.equal(push.status, EXIT.OK, `${push.stdout}${push.stderr}`);
  assert.ok((await source.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'))).length > 0, 'binary logs archived by the command the timer runs');

  // Again: nothing left to set, the units unchanged.
  const again = await source.cli(['pitr', 'setup', '--source', 'shop', '--apply', '--unit-dir', units, '--state-dir', stateDir]);
  assert.match(again.stdout, /ready: the server is set for binlog-push every 5 min/);
  assert.doesNotMatch(again.stdout, /^installed .*coldseal-binlog-push-shop/m);
});

test('systemd as PID 1 (a recorded systemctl): daemon-reload, then enable --now the timer; a failing systemctl fails setup', async () => {
  const { config, clients } = await loadAgentConfig({ config: source.configPath });
  const calls: string[][] = [];
  const scheduler = (code: number): Scheduler => ({
    unitDir: join(scratch, `units-systemd-${code}`),
    booted: () => true,
    cronAvailable: () => false,
    systemctl: async (args) => (calls.push([...args]), { code, output: code ? 'Failed to connect to bus' : '' }),
  });
  const lines: string[] = [];
  const run = (code: number) =>
    runMysqlPitrSetup({ config, clients, log: silentLog, source: config.sources[0] as MysqlSourceConfig, apply: true, stateDir: join(scratch, 'state'), configOrigin: { config: source.configPath }, print: (l) => lines.push(l), scheduler: scheduler(code) });
  const result = await run(0);
  assert.equal(result.exitCode, EXIT.OK, lines.join('\n'));
  assert.equal(result.timerEnabled, true);
  assert.deepEqual(calls, [['daemon-reload'], ['enable', '--now', 'coldseal-binlog-push-shop.timer']]);
  assert.ok(lines.some((l) => /^scheduled: coldseal-binlog-push-shop\.timer runs binlog-push every 5 min/.test(l)), lines.join('\n'));
  await assert.rejects(run(1), /systemctl daemon-reload failed \(exit 1\): Failed to connect to bus/);
});

test('from the bundle (what hosts run): the timer runs a copy of it in the state directory, which archives', async () => {
  const bundle = join(scratch, 'coldseal-agent.js');
  copyFileSync(await buildAgent(), bundle);
  const units = join(scratch, 'units-bundle');
  const stateDir = join(scratch, 'state-bundle');
  const env = { ...process.env, ...source.sandbox.account.env, NODE_PATH: '', NODE_NO_WARNINGS: '1' };
  const setup = spawnSync(process.execPath, [bundle, 'pitr', 'setup', '--source', 'shop', '--apply', '--config', source.configPath, '--unit-dir', units, '--state-dir', stateDir], { cwd: tmpdir(), env, encoding: 'utf8', timeout: 120_000 });
  assert.match(setup.stdout, new RegExp(`^installed ${stateDir}/agent/coldseal-agent\\.js \\(the agent the timer runs\\)$`, 'm'), setup.stdout + setup.stderr);
  const copy = join(stateDir, 'agent', 'coldseal-agent.js');
  assert.ok(readFileSync(copy).equals(readFileSync(bundle)), 'the copy is the bundle');
  const words = /^ExecStart=(.*)$/m.exec(readFileSync(join(units, 'coldseal-binlog-push-shop.service'), 'utf8'))![1].split(' ');
  assert.deepEqual(words.slice(0, 2), [process.execPath, copy], 'the timer runs the copy, not the bundle the SSM document may replace');
  rmSync(bundle);
  source.sql('INSERT INTO shop_after VALUES (1)');
  const before = (await source.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'))).length;
  const push = spawnSync(words[0], words.slice(1), { cwd: tmpdir(), env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(push.status, EXIT.OK, `${push.stdout}${push.stderr}`);
  assert.ok((await source.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'))).length > before, 'the copy archived the file closed since');
});
