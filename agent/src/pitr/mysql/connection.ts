import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MysqlSourceConfig } from '../../../../format/agent-config';
import type { AgentClients } from '../../aws';
import type { MysqlConnection } from '../../db/mysql';
import { resolveSecret } from '../../secrets';

/**
 * How the binary log commands reach a MySQL/MariaDB source: as the backup does
 * (backup/sources/mysql.ts), a 0600 option file holding the connection and the password, named on
 * argv by path only (--defaults-extra-file), readable by the `runAs` user when running as root,
 * removed by `close()`. Both the mysql client and mariadb-binlog/mysqlbinlog read its [client] group.
 */
export interface PitrMysqlConnection {
  readonly conn: MysqlConnection;
  close(): Promise<void>;
}

function optionValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export async function openPitrMysqlConnection(source: MysqlSourceConfig, clients: AgentClients): Promise<PitrMysqlConnection> {
  const password = source.password ? await resolveSecret(clients.ssm, source.password, `source ${source.name} password`) : undefined;
  const lines = ['[client]', `port=${source.port}`];
  if (source.host) lines.push(`host=${optionValue(source.host)}`);
  if (source.socket) lines.push(`socket=${optionValue(source.socket)}`);
  if (source.user) lines.push(`user=${optionValue(source.user)}`);
  if (password !== undefined) lines.push(`password=${optionValue(password)}`);
  const file = join(tmpdir(), `coldseal-binlog-${randomBytes(6).toString('hex')}.cnf`);
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  const root = process.getuid?.() === 0;
  const runAs = root ? source.runAs : undefined;
  if (runAs) await chown(file, Number(execFileSync('id', ['-u', runAs]).toString().trim()), -1);
  return {
    conn: { args: [`--defaults-extra-file=${file}`], runAs, binDir: source.binDir },
    close: () => rm(file, { force: true }),
  };
}
