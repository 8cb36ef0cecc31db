import type { PostgresSourceConfig } from '../../../format/agent-config';
import type { AgentClients } from '../aws';
import type { PgConnection } from '../db/postgres';
import { resolveSecret } from '../secrets';

/**
 * How the PITR commands reach the source's server: as the backup does (backup/sources/postgres.ts),
 * libpq settings in the environment and the password, if any, from its secret, never on argv.
 * `runAs` applies only when running as root: archive_command already runs as the server's own user,
 * who cannot (and need not) switch user.
 */
export async function pitrConnection(source: PostgresSourceConfig, clients: AgentClients, appName: string): Promise<PgConnection> {
  const env: Record<string, string> = { PGPORT: String(source.port), PGCONNECT_TIMEOUT: '10', PGAPPNAME: appName };
  if (source.host) env.PGHOST = source.host;
  if (source.user) env.PGUSER = source.user;
  if (source.password) env.PGPASSWORD = await resolveSecret(clients.ssm, source.password, `source ${source.name} password`);
  const root = process.getuid?.() === 0;
  return { env, runAs: root ? source.runAs : undefined, binDir: source.binDir };
}
