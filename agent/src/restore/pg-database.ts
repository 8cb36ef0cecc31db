import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { ColdsealError, EXIT } from '../errors';
import { pgCommand, type PgConnection } from '../db/postgres';
import { keepTail, lastLines } from '../process-output';
import { pgIdent, psqlRun, runTool } from './targets';

/**
 * A new PostgreSQL database made the way the archive describes it: encoding, locale, owner,
 * `ALTER DATABASE … SET` settings, comment and privileges, under the target's name. pg_restore
 * only emits those database-level entries with --create, which would also pick the archive's own
 * database name, so they are read from the head of the stream instead: `pg_restore --create
 * --section=pre-data -f -` prints them after reading only the archive's table of contents (custom
 * format keeps it at the start), and the bytes it read are held and handed on to the real restore.
 */

/** The table of contents of a custom archive is small; a head this large is not one. */
const MAX_HEAD_BYTES = 256 * 1024 * 1024;

export interface ArchiveHead {
  /** The plaintext again, from its first byte (held head, then the rest). */
  readonly plaintext: Readable;
  /** Database-level statements of the archive, renamed to the target. */
  readonly databaseSql: readonly string[];
}

/** Reads the archive's head through pg_restore's script output; the stream is handed back whole. */
export async function readArchiveHead(conn: PgConnection, plaintext: Readable, database: string): Promise<ArchiveHead> {
  const run = pgCommand(conn, 'pg_restore', ['--create', '--section=pre-data', '--no-tablespaces', '-f', '-']);
  const child = spawn(run.command, run.args, { env: { ...process.env, ...conn.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr = keepTail(child.stderr, 4096);
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (error) => reject(new ColdsealError(EXIT.FAILURE, `pg_restore could not be started (${error.message})`, 'Install the PostgreSQL client tools on this machine')));
    child.once('close', (code) => resolve(code));
  });
  const iterator = plaintext[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const held: Buffer[] = [];
  let heldBytes = 0;
  let pending: Promise<IteratorResult<Buffer>> | undefined = iterator.next();
  const exit = exited.then(() => 'exit' as const);
  for (;;) {
    const step = await Promise.race([pending!, exit]);
    if (step === 'exit') break;
    if (step.done) {
      pending = undefined;
      child.stdin.end();
      await exited;
      break;
    }
    held.push(step.value);
    heldBytes += step.value.length;
    if (heldBytes > MAX_HEAD_BYTES) {
      child.kill('SIGKILL');
      throw new ColdsealError(EXIT.FAILURE, `the archive's table of contents is larger than ${MAX_HEAD_BYTES} bytes: not a pg_dump custom archive?`);
    }
    child.stdin.write(step.value);
    pending = iterator.next();
  }
  const code = await exited;
  if (code !== 0) throw new ColdsealError(EXIT.INTEGRITY, `decompression check failed: pg_restore cannot read the archive's table of contents: ${lastLines(stderr(), 1)}`, 'Restore an older backup');
  const rest = pending;
  const whole = Readable.from(
    (async function* () {
      yield* held;
      held.length = 0;
      if (!rest) return;
      for (let step = await rest; !step.done; step = await iterator.next()) yield step.value;
    })(),
    { objectMode: false },
  );
  // A failed read is reported by the plaintext's `finished`; don't let it crash the process here.
  whole.on('error', () => undefined);
  return { plaintext: whole, databaseSql: databaseStatements(Buffer.concat(out).toString('latin1'), database) };
}

/**
 * The database-level statements of a pg_restore --create script, for `target` instead of the
 * archive's name. The script is in the database's encoding; latin1 keeps its bytes as they are.
 */
export function databaseStatements(script: string, target: string): string[] {
  const lines = script.split('\n');
  const create = lines.find((l) => l.startsWith('CREATE DATABASE '));
  if (!create) throw new ColdsealError(EXIT.INTEGRITY, 'format check failed: the archive has no database entry (not made by pg_dump -Fc?)', 'Restore it with --output FILE and look at it');
  const name = /^CREATE DATABASE ("(?:[^"]|"")+"|\S+)/.exec(create)![1];
  const encoding = lines.find((l) => l.startsWith('SET client_encoding = '));
  const statements: string[] = encoding ? [encoding] : [];
  const starts = /^(CREATE DATABASE |ALTER DATABASE |COMMENT ON DATABASE |(?:GRANT|REVOKE) .* ON DATABASE |SECURITY LABEL .* ON DATABASE )/;
  for (let i = 0; i < lines.length; i++) {
    if (!starts.test(lines[i])) continue;
    const statement = [lines[i]];
    while (!statement[statement.length - 1].endsWith(';') && i + 1 < lines.length) statement.push(lines[++i]);
    statements.push(statement.join('\n').replace(new RegExp(`DATABASE ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[ ;])`, 'g'), `DATABASE ${pgIdent(target)}`));
  }
  return statements;
}

/** Creates the database from the archive's statements (owner and privileges left out with noOwner). */
export async function pgCreateDatabaseAs(conn: PgConnection, database: string, statements: readonly string[], noOwner: boolean): Promise<void> {
  const kept = noOwner ? statements.filter((s) => !/ OWNER TO |^(GRANT|REVOKE) /.test(s)) : statements;
  await runTool(psqlRun(conn, 'postgres'), `creating database ${database} as the backup describes it`, Buffer.from(`${kept.join('\n')}\n`, 'latin1'));
}
