import { ColdsealError, EXIT } from '../../errors';
import { mysqlCommand, mysqlDatabaseExists, mysqlDropDatabase, mysqlSafetyDumpRun, type MysqlConnection } from '../../db/mysql';
import { toolSink, type Sink } from '../../pipeline/sink';
import { MysqlDumpRenamer } from '../mysql-rename';
import { mysqlFreshName, mysqlReplaceWithStaging, MysqlSwapFailed } from '../mysql-staging';
import { writeSafetyDump } from '../safety-dump';
import { parseTargetUrl, type Plan, type TargetContext } from './target';

/** A MySQL/MariaDB database, restored into a staging database that replaces it after every check. */
export interface MysqlRestoreTarget {
  readonly kind: 'mysql';
  readonly target: MysqlTarget;
  /**
   * Runs on the checked staging database before it replaces the target (a point-in-time restore
   * replays the binary logs here, restore/binlog/): a failure drops the staging database, and the
   * target stays as it was.
   */
  readonly beforeSwap?: (staging: string) => Promise<void>;
}

export interface MysqlTarget {
  readonly conn: MysqlConnection;
  readonly database?: string;
}

export function parseMysqlUrl(text: string): MysqlTarget {
  const url = parseTargetUrl(text, { schemes: ['mysql:', 'mariadb:'], engine: 'MySQL', example: 'mysql://user@host:3306/database', envName: 'MYSQL_PWD', fileHint: 'an option file (~/.my.cnf, [client] password=…)' });
  const args: string[] = [];
  if (url.hostname) args.push(`--host=${decodeURIComponent(url.hostname)}`);
  if (url.port) args.push(`--port=${url.port}`);
  if (url.username) args.push(`--user=${decodeURIComponent(url.username)}`);
  for (const [name, value] of url.searchParams) {
    if (name === 'socket') args.push(`--socket=${value}`);
    else throw new ColdsealError(EXIT.USAGE, `URL parameter "${name}" is not supported`, 'Supported: socket');
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
  return { conn: { args }, database };
}

export function mysqlRestoreSink(conn: MysqlConnection, database: string): Sink {
  // The dump names its database (DROP/CREATE DATABASE, USE, code) and MysqlDumpRenamer points it at the target.
  const run = mysqlCommand(conn, 'mysql', ['--default-character-set=utf8mb4', '--binary-mode']);
  return toolSink(run, `mysql into ${database}`);
}

export async function planMysql(context: TargetContext, target: MysqlRestoreTarget): Promise<Plan> {
  const { manifest, artifact } = context;
  const database = target.target.database ?? artifact.name;
  const conn = target.target.conn;
  const exists = await mysqlDatabaseExists(conn, database);
  const destination = `MySQL database "${database}"`;
  if (exists) await context.confirmReplace(`${destination} exists: it will be replaced by backup ${manifest.stamp} of ${manifest.host}/${manifest.source}/${artifact.name} (its tables, views, triggers, routines and events; the database itself and its grants stay). A safety dump is taken first.`);
  // MySQL DDL cannot be rolled back: the dump goes into a staging database that replaces the target after every check.
  const staging = await mysqlFreshName(conn, database, 'staging');
  let swapped = false;
  return {
    destination,
    safety: exists ? () => writeSafetyDump(mysqlSafetyDumpRun(conn, database), `safety dump of ${database}`, database, 'sql', context.safety) : undefined,
    sink: () => mysqlRestoreSink(conn, staging),
    transform: () => new MysqlDumpRenamer(artifact.name, staging),
    finish: async () => {
      await target.beforeSwap?.(staging);
      await mysqlReplaceWithStaging(conn, staging, database, exists);
      swapped = true;
      await mysqlDropDatabase(conn, staging).catch((error: Error) => {
        throw new ColdsealError(EXIT.FAILURE, `${destination} is restored, but removing the staging database failed: ${error.message}`, `Drop database ${staging} by hand`);
      });
    },
    undo: () => mysqlDropDatabase(conn, staging),
    // Until the swap, only the staging database was written; a failed swap puts the target back or says what it could not.
    outcome: (error, undone) => {
      if (swapped || (error instanceof MysqlSwapFailed && !error.putBack)) return undefined;
      const target = exists ? `${destination} is as it was before the restore` : `${destination} was not created`;
      return undone ? `${target}, and no staging database is left` : `${target}, but the staging database ${staging} is left: drop it by hand`;
    },
  };
}
