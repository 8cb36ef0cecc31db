import { join } from 'node:path';
import type { PostgresSourceConfig } from '../../../../format/agent-config';
import { openPgSnapshotInventory } from '../../inventory/postgres';
import { asUser } from '../../db/as-user';
import { postgresMajor } from '../../../../format/host-tools';
import { MissingToolError, postgresToolTooOld } from '../../host-tools';
import { PG_BASEBACKUP_ARGS, planBaseBackup, type BaseBackupPlan } from './pg-base-backup';
import { parseSizes, runCapture, toolVersion, type DumpStep, type PreparedSource } from './source';

/**
 * PostgreSQL: one pg_dump custom-format archive per database (so a single table can be restored
 * with pg_restore), plus the cluster's roles and tablespaces from pg_dumpall --globals-only when
 * all databases are dumped. pg_dump's own compression is off: the pipeline compresses faster.
 * The password reaches the tools through PGPASSWORD in their environment, never argv.
 */
export function diagnosePostgres(stderr: string): { message: string; hint: string } | undefined {
  const missing = /database "(.*)" does not exist/.exec(stderr);
  if (missing) return { message: `database "${missing[1]}" does not exist`, hint: "Fix the source's databases list, or use \"all\"" };
  // Before the "unreachable" patterns: libpq reports a refused login as "connection to server … failed: FATAL: role … does not exist".
  const role = /role "(.*)" does not exist/.exec(stderr);
  if (role) return { message: `the server has no role "${role[1]}"`, hint: "Fix the source's user (or runAs), or create the role on the server" };
  if (/password authentication failed|no password supplied|fe_sendauth/i.test(stderr)) {
    return { message: `authentication failed (${firstMeaningful(stderr)})`, hint: "Check the source's user and password parameter, or use runAs with peer authentication" };
  }
  if (/could not connect|connection to server .* failed|Connection refused|could not translate host name|timeout expired/i.test(stderr)) {
    return { message: `the database server is unreachable (${firstMeaningful(stderr)})`, hint: "Check that PostgreSQL is running and that the source's host and port are right" };
  }
  if (/server version mismatch|aborting because of server version mismatch/i.test(stderr)) {
    return { message: firstMeaningful(stderr), hint: "Install a pg_dump at least as new as the server, and point the source's binDir at it" };
  }
  return undefined;
}

function firstMeaningful(stderr: string): string {
  return (stderr.split('\n').map((l) => l.replace(/^(pg_dump|pg_dumpall|psql): (error: )?/, '').trim()).find(Boolean) ?? '').slice(0, 300);
}

export async function preparePostgres(source: PostgresSourceConfig, password: string | undefined): Promise<PreparedSource> {
  const bin = (tool: string) => (source.binDir ? join(source.binDir, tool) : tool);
  const env: Record<string, string> = { PGPORT: String(source.port), PGCONNECT_TIMEOUT: '15', PGAPPNAME: 'coldseal' };
  if (source.host) env.PGHOST = source.host;
  if (source.user) env.PGUSER = source.user;
  if (password !== undefined) env.PGPASSWORD = password;

  const psql = (sql: string, what: string) => {
    const { command, args } = asUser(source.runAs, bin('psql'), ['-X', '-w', '-At', '-d', 'postgres', '-c', sql]);
    return runCapture(command, args, env, `source ${source.name}: ${what}`, diagnosePostgres);
  };

  const withGlobals = source.globals ?? source.databases === 'all';
  // Independent look-ups, started at once: each is a process start before the first dump byte.
  // They are awaited in order, so an unreachable server is reported by the first.
  const versionQuery = psql('show server_version', 'reading the server version');
  const listQuery = source.databases === 'all' ? psql('select datname from pg_database where datallowconn and not datistemplate order by datname', 'listing databases') : undefined;
  const sizeQuery = psql('select datname, pg_database_size(datname) from pg_database where datallowconn', 'reading database sizes');
  const pgDumpVersionRun = runCapture(bin('pg_dump'), ['--version'], {}, `source ${source.name}: pg_dump --version`);
  const pgDumpallVersionRun = withGlobals ? runCapture(bin('pg_dumpall'), ['--version'], {}, `source ${source.name}: pg_dumpall --version`) : undefined;
  // A PITR source's physical base backup, looked at now, taken after the dumps (its wait for the
  // archive then delays no dump).
  const baseBackupPlan: Promise<BaseBackupPlan> | undefined =
    source.pitr?.enabled && source.pitr.baseBackup
      ? runCapture(bin('pg_basebackup'), ['--version'], {}, `source ${source.name}: pg_basebackup --version`).then((version) =>
          planBaseBackup({
            source,
            // The slot's session connects to "postgres" (libpq would default to a database named after the user).
            conn: { env: { ...env, PGDATABASE: 'postgres' }, runAs: source.runAs, binDir: source.binDir },
            psql,
            command: asUser(source.runAs, bin('pg_basebackup'), PG_BASEBACKUP_ARGS),
            toolVersion: toolVersion(version),
            diagnose: diagnosePostgres,
          }),
        )
      : undefined;
  for (const later of [listQuery, sizeQuery, pgDumpVersionRun, pgDumpallVersionRun, baseBackupPlan]) later?.catch(() => undefined);

  const serverVersion = (await versionQuery).trim();
  // A tool found missing before the server's version was read is reported with it: the install line names the major.
  const serverMajor = postgresMajor(serverVersion);
  const withMajor = (error: unknown) => {
    throw error instanceof MissingToolError && serverMajor !== undefined ? error.with({ postgresMajor: Math.ceil(serverMajor) }) : error;
  };
  const databases = source.databases === 'all' ? (await listQuery!).split('\n').filter(Boolean).filter((d) => !source.excludeDatabases.includes(d)) : source.databases;
  const sizes = parseSizes(await sizeQuery, '|');
  const pgDumpVersion = toolVersion(await pgDumpVersionRun.catch(withMajor));
  const pgDumpallVersion = pgDumpallVersionRun && toolVersion(await pgDumpallVersionRun.catch(withMajor));
  // Refused before anything is dumped: pg_dump itself would refuse a newer server only after the dump began.
  for (const [tool, version] of [[bin('pg_dump'), pgDumpVersion], [bin('pg_dumpall'), pgDumpallVersion]] as const) {
    const tooOld = version ? postgresToolTooOld(`source ${source.name}`, tool, version, serverVersion) : undefined;
    if (tooOld) throw tooOld;
  }

  const steps: DumpStep[] = [];
  if (withGlobals) {
    const args = ['--globals-only', '--no-password'];
    const run = asUser(source.runAs, bin('pg_dumpall'), args);
    steps.push({
      name: 'globals',
      kind: 'globals',
      contentFormat: 'sql',
      extension: 'sql',
      command: run.command,
      args: run.args,
      env,
      tool: { name: 'pg_dumpall', version: pgDumpallVersion! },
      completion: { method: 'marker', marker: '-- PostgreSQL database cluster dump complete' },
      diagnose: diagnosePostgres,
    });
  }
  for (const database of databases) {
    // The database goes in PGDATABASE: as --dbname, a name holding "=" would be read as a connection string.
    const args = ['--format=custom', '--compress=0', '--no-password', ...source.excludeTables.map((t) => `--exclude-table=${t}`)];
    const run = asUser(source.runAs, bin('pg_dump'), args);
    steps.push({
      name: database,
      kind: 'database',
      contentFormat: 'pg-custom',
      extension: 'pgdump',
      command: run.command,
      args: run.args,
      env: { ...env, PGDATABASE: database },
      estimatedBytes: sizes.get(database),
      stillExists:
        source.databases === 'all'
          ? async () => (await psql(`select count(*) from pg_database where datname = '${database.replace(/'/g, "''")}'`, `checking that database ${database} still exists`)).trim() === '1'
          : undefined,
      tool: { name: 'pg_dump', version: pgDumpVersion },
      // The custom format has no trailer; pg_dump exits 0 only after writing the whole archive.
      completion: { method: 'exit-status' },
      diagnose: diagnosePostgres,
      // Row counts and schema fingerprint from the very snapshot pg_dump dumps (--snapshot).
      inventory: source.inventory
        ? async () => {
            const session = await openPgSnapshotInventory({ env: { ...env, PGDATABASE: database }, runAs: source.runAs, binDir: source.binDir }, source.excludeTables);
            return { args: [`--snapshot=${session.snapshot}`], inventory: session.inventory, close: session.close };
          }
        : undefined,
    });
  }
  const baseBackup = await baseBackupPlan?.catch(withMajor);
  if (baseBackup && 'step' in baseBackup) steps.push(baseBackup.step);
  return { engine: { kind: 'postgres', version: serverVersion }, steps, ...(baseBackup && 'refused' in baseBackup ? { refused: [baseBackup.refused] } : {}), cleanup: async () => {} };
}
