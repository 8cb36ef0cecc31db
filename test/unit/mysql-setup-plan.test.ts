import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mysqlPitrSchema } from '../../format/agent-config';
import { EXPIRY_MARGIN_SECONDS, globalPrivileges, grantee, planMysqlPitrSetup, type MysqlServerFacts } from '../../agent/src/pitr/mysql/setup-plan';
import { binlogPushUnits, cronLine, systemdWord } from '../../agent/src/pitr/mysql/setup-timer';
import { shellQuote } from '../../agent/src/pitr/self-invocation';

const pitr = mysqlPitrSchema.parse({ enabled: true });

function mariadb(overrides: Record<string, string> = {}, grants = ['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION'], replica: boolean | null = false): MysqlServerFacts {
  const variables = new Map(
    Object.entries({
      version: '10.11.19-MariaDB-0+deb12u1-log',
      log_bin: 'ON',
      log_bin_basename: '/var/log/mysql/mariadb-bin',
      binlog_format: 'ROW',
      server_id: '1',
      expire_logs_days: '7.000000',
      binlog_expire_logs_seconds: '604800',
      binlog_checksum: 'CRC32',
      gtid_binlog_pos: '0-1-5',
      gtid_strict_mode: 'ON',
      wsrep_on: 'OFF',
      ...overrides,
    }),
  );
  return { variables, grants, replica };
}

const byName = (plan: ReturnType<typeof planMysqlPitrSetup>, name: string) => plan.checks.find((c) => c.name === name)!;

test('a ready MariaDB: every check ok, nothing to configure', () => {
  const plan = planMysqlPitrSetup({ facts: mariadb(), pitr, source: 'shop' });
  assert.deepEqual(plan.checks.filter((c) => c.status !== 'ok').map((c) => c.name), []);
  assert.equal(plan.restartNeeded, false);
  assert.deepEqual(plan.configLines, []);
  assert.equal(plan.configFile, '/etc/mysql/mariadb.conf.d/60-coldseal.cnf');
  assert.equal(plan.configSection, '[mariadbd]');
});

test('binary log off: log_bin, format, server_id and expiry go to the configuration file with a restart; nothing at run time', () => {
  const plan = planMysqlPitrSetup({ facts: mariadb({ log_bin: 'OFF', binlog_format: 'MIXED', server_id: '0', binlog_expire_logs_seconds: '3600', expire_logs_days: '0.041667' }), pitr, source: 'shop' });
  assert.equal(plan.restartNeeded, true);
  assert.deepEqual(plan.configLines, ['log_bin = /var/log/mysql/mariadb-bin', 'binlog_format = ROW', 'server_id = 1', 'binlog_expire_logs_seconds = 604800']);
  assert.ok(plan.checks.every((c) => c.status !== 'apply'), 'no SET GLOBAL while the log is off');
});

test('binlog_format and a short expiry are set at run time when safe, and kept in the configuration file (MariaDB has no SET PERSIST)', () => {
  const plan = planMysqlPitrSetup({ facts: mariadb({ binlog_format: 'MIXED', binlog_expire_logs_seconds: String(EXPIRY_MARGIN_SECONDS), expire_logs_days: '1' }), pitr, source: 'shop' });
  assert.equal(byName(plan, 'binlog_format').statement, "SET GLOBAL binlog_format = 'ROW'");
  assert.match(byName(plan, 'binlog_format').message, /reconnect/);
  const expiry = byName(plan, 'binlog_expire_logs_seconds');
  assert.equal(expiry.status, 'apply', 'one day is less than 5 min plus a day');
  assert.equal(expiry.statement, 'SET GLOBAL binlog_expire_logs_seconds = 604800');
  assert.deepEqual(plan.configLines, ['binlog_format = ROW', 'binlog_expire_logs_seconds = 604800']);
  assert.equal(plan.restartNeeded, false);
  assert.equal(plan.applyPrivilegeMissing, null);
});

test('binlog_format is not changed at run time on a replica, a Galera node, or when the account cannot tell', () => {
  for (const [facts, reason] of [
    [mariadb({ binlog_format: 'STATEMENT' }, undefined, true), /is a replica/],
    [mariadb({ binlog_format: 'STATEMENT', wsrep_on: 'ON' }), /Galera/],
    [mariadb({ binlog_format: 'STATEMENT' }, undefined, null), /SLAVE MONITOR/],
  ] as const) {
    const check = byName(planMysqlPitrSetup({ facts, pitr, source: 'shop' }), 'binlog_format');
    assert.equal(check.status, 'configure');
    assert.match(check.message, reason);
    assert.equal(check.statement, undefined);
  }
});

test('expiry: 0 (never) is advice about the disk; older MariaDB without binlog_expire_logs_seconds uses expire_logs_days', () => {
  const never = byName(planMysqlPitrSetup({ facts: mariadb({ binlog_expire_logs_seconds: '0', expire_logs_days: '0.000000' }), pitr, source: 'shop' }), 'binlog_expire_logs_seconds');
  assert.equal(never.status, 'advice');
  assert.match(never.message, /forever/);
  const facts = mariadb({ version: '10.5.22-MariaDB', expire_logs_days: '0.5' });
  (facts.variables as Map<string, string>).delete('binlog_expire_logs_seconds');
  const old = byName(planMysqlPitrSetup({ facts, pitr, source: 'shop' }), 'expire_logs_days');
  assert.equal(old.statement, 'SET GLOBAL expire_logs_days = 7');
});

test('privileges from SHOW GRANTS: each missing one is an exact GRANT; REPLICATION SLAVE only for read "server"', () => {
  const grants = ["GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO `backup`@`localhost` IDENTIFIED BY PASSWORD '*X'"];
  const plan = planMysqlPitrSetup({ facts: mariadb({}, grants), pitr: mysqlPitrSchema.parse({ enabled: true, read: 'server' }), source: 'shop' });
  assert.deepEqual(
    plan.checks.filter((c) => c.status === 'grant').map((c) => c.grant),
    ['GRANT BINLOG MONITOR ON *.* TO `backup`@`localhost`', 'GRANT RELOAD ON *.* TO `backup`@`localhost`', 'GRANT REPLICATION SLAVE ON *.* TO `backup`@`localhost`'],
  );
  const files = planMysqlPitrSetup({ facts: mariadb({}, ['GRANT RELOAD, BINLOG MONITOR ON *.* TO `b`@`%`']), pitr, source: 'shop' });
  assert.deepEqual(files.checks.filter((c) => c.status === 'grant'), []);
  assert.deepEqual([...globalPrivileges(['GRANT ALL PRIVILEGES ON *.* TO `r`@`l`', 'GRANT SELECT ON `shop`.* TO `r`@`l`'])], ['ALL']);
  assert.equal(grantee(["GRANT USAGE ON *.* TO 'app'@'10.0.0.%'"]), "'app'@'10.0.0.%'");
  const noAdmin = planMysqlPitrSetup({ facts: mariadb({ binlog_format: 'MIXED' }, ['GRANT RELOAD, BINLOG MONITOR ON *.* TO `b`@`%`']), pitr, source: 'shop' });
  assert.equal(noAdmin.applyPrivilegeMissing, 'BINLOG ADMIN (or SUPER)');
});

test('MySQL 8: [mysqld] section, SET PERSIST, gtid_mode and enforce_gtid_consistency, RELOAD and PROCESS for mysqldump', () => {
  const variables = new Map(Object.entries({ version: '8.0.35', log_bin: 'ON', binlog_format: 'MIXED', server_id: '1', binlog_expire_logs_seconds: '2592000', binlog_checksum: 'CRC32', gtid_mode: 'OFF', enforce_gtid_consistency: 'OFF' }));
  const plan = planMysqlPitrSetup({ facts: { variables, grants: ['GRANT SELECT, REPLICATION CLIENT ON *.* TO `b`@`%`', 'GRANT SYSTEM_VARIABLES_ADMIN ON *.* TO `b`@`%`'], replica: false }, pitr, source: 'shop' });
  assert.equal(plan.flavor, 'mysql');
  assert.equal(plan.configSection, '[mysqld]');
  assert.equal(byName(plan, 'binlog_format').statement, "SET PERSIST binlog_format = 'ROW'");
  assert.deepEqual(plan.configLines, ['gtid_mode = ON', 'enforce_gtid_consistency = ON'], 'SET PERSIST needs no line; GTIDs need the file');
  assert.deepEqual(plan.checks.filter((c) => c.status === 'grant').map((c) => c.grant), ['GRANT RELOAD ON *.* TO `b`@`%`', 'GRANT RELOAD ON *.* TO `b`@`%`', 'GRANT PROCESS ON *.* TO `b`@`%`']);
  assert.equal(plan.applyPrivilegeMissing, null);
});

test('units: a oneshot service with the quoted command, a timer every interval that also starts the first run', () => {
  const units = binlogPushUnits({ source: 'shop', intervalMinutes: 5, command: ['/usr/bin/node', '/var/lib/coldseal/pitr/shop/agent/coldseal-agent.js', 'pitr', 'binlog-push', '--source', 'shop', '--config', '/etc/coldseal/my config%.json'] });
  assert.match(units.service, /^Type=oneshot$/m);
  assert.match(units.service, /^ExecStart=\/usr\/bin\/node \/var\/lib\/coldseal\/pitr\/shop\/agent\/coldseal-agent\.js pitr binlog-push --source shop --config "\/etc\/coldseal\/my config%%\.json"$/m);
  assert.match(units.timer, /^OnUnitActiveSec=5min$/m);
  assert.match(units.timer, /^OnActiveSec=30s$/m);
  assert.match(units.timer, /^Persistent=true$/m);
  assert.match(units.timer, /^Unit=coldseal-binlog-push-shop\.service$/m);
  assert.match(units.timer, /^WantedBy=timers\.target$/m);
  assert.equal(systemdWord('a$b"c'), '"a$$b\\"c"');
  assert.equal(cronLine(5, ['/usr/bin/node', 'x y', '50%'], shellQuote), "*/5 * * * * root /usr/bin/node 'x y' 50\\%");
});
