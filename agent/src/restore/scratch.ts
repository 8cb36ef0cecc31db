import { randomBytes } from 'node:crypto';
import { chown, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { AgentClients } from '../aws';
import type { AgentConfig } from '../../../format/agent-config';
import { resolveSecret } from '../secrets';
import { parseMysqlUrl } from './targets/mysql';
import { parsePostgresUrl } from './targets/postgres';
import type { ScratchServers } from './verify';

/**
 * Where deep verification and drills restore to: a server named by URL (--scratch-postgres,
 * --scratch-mysql), else the server of the first source of that engine in this host's
 * configuration, reached exactly as the backup reaches it (user, password parameter, runAs).
 * Scratch databases are created with a unique name and dropped after.
 */
export async function scratchServers(config: AgentConfig | undefined, clients: AgentClients, urls: { postgres?: string; mysql?: string }): Promise<{ servers: ScratchServers; cleanup: () => Promise<void> }> {
  const cleanups: (() => Promise<void>)[] = [];
  let postgres: ScratchServers['postgres'];
  let mysql: ScratchServers['mysql'];
  if (urls.postgres) postgres = parsePostgresUrl(urls.postgres).conn;
  else {
    const source = config?.sources.find((s) => s.type === 'postgres');
    if (source && source.type === 'postgres') {
      const env: Record<string, string> = { PGPORT: String(source.port) };
      if (source.host) env.PGHOST = source.host;
      if (source.user) env.PGUSER = source.user;
      if (source.password) env.PGPASSWORD = await resolveSecret(clients.ssm, source.password, `source ${source.name} password`);
      postgres = { env, runAs: source.runAs, binDir: source.binDir };
    }
  }
  if (urls.mysql) mysql = parseMysqlUrl(urls.mysql).conn;
  else {
    const source = config?.sources.find((s) => s.type === 'mysql');
    if (source && source.type === 'mysql') {
      const quote = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
      const lines = ['[client]', `port=${source.port}`];
      if (source.host) lines.push(`host=${quote(source.host)}`);
      if (source.socket) lines.push(`socket=${quote(source.socket)}`);
      if (source.user) lines.push(`user=${quote(source.user)}`);
      if (source.password) lines.push(`password=${quote(await resolveSecret(clients.ssm, source.password, `source ${source.name} password`))}`);
      const file = join(tmpdir(), `coldseal-${randomBytes(8).toString('hex')}.cnf`);
      await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
      cleanups.push(() => rm(file, { force: true }));
      if (source.runAs && userInfo().uid === 0) await chown(file, Number(execFileSync('id', ['-u', source.runAs]).toString().trim()), -1);
      mysql = { args: [`--defaults-extra-file=${file}`], runAs: source.runAs, binDir: source.binDir };
    }
  }
  return { servers: { postgres, mysql }, cleanup: async () => void (await Promise.all(cleanups.map((c) => c()))) };
}
