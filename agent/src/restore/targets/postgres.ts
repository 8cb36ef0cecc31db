import { ColdsealError, EXIT } from '../../errors';
import { checkPgRestore } from '../../host-tools';
import type { Artifact } from '../../../../format/manifest';
import { pgCommand, pgCreateSchemas, pgDatabaseExists, pgDbname, pgDropDatabase, pgSafetyDumpRun, type PgConnection } from '../../db/postgres';
import { fileSink, toolSink, type Sink } from '../../pipeline/sink';
import { pgCreateDatabaseAs, readArchiveHead, type DatabaseScript } from '../pg-database';
import { pgApplyGlobals, stageGlobals } from '../pg-globals';
import { writeSafetyDump } from '../safety-dump';
import { parseTargetUrl, rejectPassword, type Plan, type TargetContext } from './target';

/** PostgreSQL targets: a database (pg_restore), the cluster's roles (globals) and --list (pg_restore --list). */
export interface PostgresRestoreTarget {
  readonly kind: 'postgres';
  readonly target: PgTarget;
  readonly tables?: readonly string[];
  readonly schemas?: readonly string[];
  readonly noOwner?: boolean;
}

export interface PgTarget {
  readonly conn: PgConnection;
  readonly database?: string;
}

export function parsePostgresUrl(text: string): PgTarget {
  const url = parseTargetUrl(text, { schemes: ['postgres:', 'postgresql:'], engine: 'PostgreSQL', example: 'postgres://user@host:5432/database', envName: 'PGPASSWORD', fileHint: '~/.pgpass' });
  const env: Record<string, string> = {};
  if (url.hostname) env.PGHOST = decodeURIComponent(url.hostname);
  if (url.port) env.PGPORT = url.port;
  if (url.username) env.PGUSER = decodeURIComponent(url.username);
  for (const [name, value] of url.searchParams) {
    const known: Record<string, string> = { host: 'PGHOST', port: 'PGPORT', user: 'PGUSER', sslmode: 'PGSSLMODE', sslrootcert: 'PGSSLROOTCERT', sslcert: 'PGSSLCERT', sslkey: 'PGSSLKEY', passfile: 'PGPASSFILE' };
    if (name === 'password') rejectPassword(new URL('x://u:p@h'), 'PGPASSWORD', '~/.pgpass');
    if (!known[name]) throw new ColdsealError(EXIT.USAGE, `URL parameter "${name}" is not supported`, `Supported: ${Object.keys(known).join(', ')}`);
    env[known[name]] = value;
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
  return { conn: { env }, database };
}

export interface PgRestoreOptions {
  /** Drop the objects before recreating them (restore into an existing database). */
  readonly clean: boolean;
  readonly schemas?: readonly string[];
  /** "table" or "schema.table" */
  readonly tables?: readonly string[];
  /** Skip ownership and grants (roles of the original cluster may not exist here). */
  readonly noOwner?: boolean;
}

/** pg_restore's -t takes a bare name and -n narrows it: "schema.table" pairs must share one schema. */
export function pgSelectionArgs(tables: readonly string[] = [], schemas: readonly string[] = []): string[] {
  const args: string[] = [];
  const tableSchemas = new Set<string>();
  for (const table of tables) {
    const dot = table.indexOf('.');
    if (dot > 0) {
      tableSchemas.add(table.slice(0, dot));
      args.push(`--table=${table.slice(dot + 1)}`);
    } else args.push(`--table=${table}`);
  }
  if (tableSchemas.size > 1) {
    throw new ColdsealError(EXIT.USAGE, `--table names tables of several schemas (${[...tableSchemas].join(', ')})`, 'pg_restore selects tables by name within the --schema given: restore one schema\'s tables at a time');
  }
  for (const schema of new Set([...schemas, ...tableSchemas])) args.push(`--schema=${schema}`);
  return args;
}

export function pgSelectedSchemas(tables: readonly string[] = [], schemas: readonly string[] = []): string[] {
  return [...new Set([...schemas, ...tables.filter((t) => t.indexOf('.') > 0).map((t) => t.slice(0, t.indexOf('.')))])];
}

export function pgRestoreSink(conn: PgConnection, database: string, options: PgRestoreOptions): Sink {
  const args = ['--no-password', '--exit-on-error', '--single-transaction', `--dbname=${pgDbname(database)}`];
  if (options.clean) args.push('--clean', '--if-exists');
  if (options.noOwner) args.push('--no-owner', '--no-privileges');
  args.push(...pgSelectionArgs(options.tables, options.schemas));
  const run = pgCommand(conn, 'pg_restore', args);
  return toolSink({ ...run, env: conn.env }, `pg_restore into ${database}`, { drain: true });
}

export function pgListSink(): Sink & { stdout(): string } {
  return toolSink({ command: 'pg_restore', args: ['--list'] }, 'pg_restore --list', { keepStdout: true, drain: true });
}

export async function planPostgres(context: TargetContext, target: PostgresRestoreTarget): Promise<Plan> {
  const { manifest, artifact } = context;
  const database = target.target.database ?? artifact.name;
  const conn = target.target.conn;
  if (artifact.contentFormat === 'pg-custom') await checkPgRestore(conn.binDir, artifact.tool);
  const exists = await pgDatabaseExists(conn, database);
  const destination = `PostgreSQL database "${database}"`;
  if (artifact.kind === 'globals') {
    await context.confirmReplace(`This runs the cluster-wide roles of ${manifest.host} (pg_dumpall --globals-only) against the server of "${database}": roles in the backup are created or get the backup's attributes, passwords and memberships; other roles are left alone.`);
    // Small: held in a 0600 file until every check passed, then applied in one transaction.
    const staged = await stageGlobals();
    return {
      destination: `the roles of the server of "${database}"`,
      sink: () => fileSink(staged.file),
      finish: () => pgApplyGlobals(conn, database, staged.file),
      undo: () => staged.remove(),
    };
  }
  const partial = Boolean(target.tables?.length || target.schemas?.length);
  if (exists) {
    await context.confirmReplace(`${destination} exists: ${partial ? 'the selected tables/schemas in it' : 'its objects'} will be dropped and replaced by backup ${manifest.stamp} of ${manifest.host}/${manifest.source}/${artifact.name}. A safety dump is taken first.`);
  }
  // pg_restore --schema/--table restore objects *in* a schema, not the schema itself.
  const schemas = partial ? pgSelectedSchemas(target.tables, target.schemas) : [];
  // A new database is created as the archive describes it, read from the archive's head.
  const databaseSql = exists ? undefined : await context.readHeadAhead(conn);
  // Known up front (an existing database, or a head read ahead): zstd can then feed pg_restore directly.
  const readyBeforeStream = exists || databaseSql !== undefined;
  const create = async (sql: DatabaseScript | undefined) => {
    if (sql) await pgCreateDatabaseAs(conn, database, sql, target.noOwner ?? false);
    if (schemas.length) await pgCreateSchemas(conn, database, schemas);
  };
  return {
    destination,
    // pg_restore runs in one transaction (--single-transaction): a failure rolls an existing database back.
    undo: exists ? undefined : () => pgDropDatabase(conn, database),
    safety: exists ? () => writeSafetyDump(pgSafetyDumpRun(conn, database), `safety dump of ${database}`, database, 'pgdump', context.safety) : undefined,
    direct: readyBeforeStream,
    prepare: readyBeforeStream ? () => create(databaseSql) : undefined,
    // Without the head read ahead, from the stream itself (its bytes then pass through Node).
    fromHead: readyBeforeStream
      ? undefined
      : async (plaintext) => {
          const head = await readArchiveHead(conn, plaintext);
          await create(head.database);
          return head.plaintext;
        },
    sink: () => pgRestoreSink(conn, database, { clean: exists, tables: target.tables, schemas: target.schemas, noOwner: target.noOwner }),
  };
}

export async function planList(artifact: Artifact): Promise<Plan> {
  await checkPgRestore(undefined, artifact.tool);
  let sink: ReturnType<typeof pgListSink> | undefined;
  return {
    destination: 'the table of contents',
    direct: true,
    sink: () => (sink = pgListSink()),
    listing: () => sink?.stdout() ?? '',
  };
}
