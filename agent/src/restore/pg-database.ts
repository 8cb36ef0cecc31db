import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { ColdsealError, EXIT } from '../errors';
import { hostOsRelease, MissingToolError } from '../host-tools';
import { installAdvice } from '../../../format/host-tools';
import { pgCommand, pgIdent, psqlRun, type PgConnection } from '../db/postgres';
import { keepTail, lastLines } from '../process-output';
import { runTool } from '../pipeline/sink';

/**
 * A new PostgreSQL database made the way the archive describes it: encoding, locale, owner,
 * `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET` settings, comment, security labels
 * and privileges, under the target's name. pg_restore
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
  /** The archive's database-level statements. */
  readonly database: DatabaseScript;
}

/** Reads the archive's head through pg_restore's script output; the stream is handed back whole. */
export async function readArchiveHead(conn: PgConnection, plaintext: Readable): Promise<ArchiveHead> {
  const run = pgCommand(conn, 'pg_restore', ['--create', '--section=pre-data', '--no-tablespaces', '-f', '-']);
  const child = spawn(run.command, run.args, { env: { ...process.env, ...conn.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr = keepTail(child.stderr, 4096);
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (error) =>
      reject(
        (error as NodeJS.ErrnoException).code === 'ENOENT'
          ? new MissingToolError('reading the archive head', { tool: conn.binDir ? run.command : 'pg_restore' }, EXIT.CONFIG, conn.binDir ? "or set the source's binDir" : 'or put it on PATH')
          : new ColdsealError(EXIT.FAILURE, `pg_restore could not be started (${error.message})`, installAdvice(hostOsRelease(), { tool: 'pg_restore' })),
      ),
    );
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
  return { plaintext: whole, database: databaseScript(Buffer.concat(out).toString('latin1')) };
}

/**
 * The database-level part of a pg_restore --create script, as pg_restore runs it: CREATE DATABASE
 * and its owner from the maintenance database, then, in the new database, its comment, security
 * labels, `ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET` and grants. Each part runs
 * with the archive's client encoding: the shared catalogs hold whatever bytes the session that
 * wrote them sent (a LATIN1 database commented from a UTF-8 session holds UTF-8 bytes), pg_dump
 * writes them as they are, and only in the new database, whose encoding is the archive's, do they
 * reach the catalog unconverted. Text is the latin1 string of the script's bytes, kept as they are.
 */
export interface DatabaseScript {
  /** The archive's `SET client_encoding = '…';`, if any. */
  readonly clientEncoding?: string;
  /** The archive's name for the database, as the script writes it (quoted if it must be). */
  readonly name: string;
  /** From the maintenance database, before pg_restore's \connect. */
  readonly create: readonly string[];
  /** In the new database, after it. */
  readonly inDatabase: readonly string[];
}

const DATABASE_STATEMENT = /^(CREATE DATABASE |ALTER DATABASE |COMMENT ON DATABASE |(?:GRANT|REVOKE) .* ON DATABASE |SECURITY LABEL .* ON DATABASE |ALTER ROLE .* IN DATABASE )/;

export function databaseScript(script: string): DatabaseScript {
  const lines = script.split('\n');
  const create = lines.find((l) => l.startsWith('CREATE DATABASE '));
  if (!create) throw new ColdsealError(EXIT.INTEGRITY, 'format check failed: the archive has no database entry (not made by pg_dump -Fc?)', 'Restore it with --output FILE and look at it');
  const name = /^CREATE DATABASE ("(?:[^"]|"")+"|\S+)/.exec(create)![1];
  const clientEncoding = lines.find((l) => /^SET client_encoding = '[^']*';$/.test(l));
  const parts: { create: string[]; inDatabase: string[] } = { create: [], inDatabase: [] };
  let connected = false;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('\\connect ')) connected = true;
    if (!DATABASE_STATEMENT.test(lines[i])) continue;
    // A statement ends at a semicolon outside quotes (a comment may hold ; and line breaks).
    let statement = lines[i];
    while (!endsOutsideQuotes(statement) && i + 1 < lines.length) statement += `\n${lines[++i]}`;
    (connected ? parts.inDatabase : parts.create).push(statement);
  }
  return { clientEncoding, name, ...parts };
}

/** Whether SQL text ends with a semicolon that is outside '…' and "…" (standard_conforming_strings: no backslash escapes). */
function endsOutsideQuotes(text: string): boolean {
  let quote: string | undefined;
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
  }
  return !quote && text.trimEnd().endsWith(';');
}

/** `DATABASE <name>` at its first place outside quotes, with `target` (bytes as a latin1 string) instead. */
function renamed(statement: string, name: string, target: string): string {
  const find = `DATABASE ${name}`;
  let quote: string | undefined;
  for (let i = 0; i < statement.length; i++) {
    const c = statement[i];
    if (quote) {
      if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      continue;
    }
    if (statement.startsWith(find, i) && (i === 0 || /\s/.test(statement[i - 1])) && /^[\s;]/.test(statement.slice(i + find.length, i + find.length + 1))) {
      return `${statement.slice(0, i)}DATABASE ${target}${statement.slice(i + find.length)}`;
    }
  }
  return statement;
}

/**
 * The target's quoted name as each part of the script must send it (bytes as a latin1 string).
 * From the maintenance database, in the archive's client encoding: the server converts it into
 * its own encoding and stores those bytes in pg_database. In the new database, whose encoding is
 * the client encoding, nothing is converted: the name must be sent as those stored bytes. ASCII
 * is the same in every encoding a server runs in; other names the server converts.
 */
async function targetIdents(conn: PgConnection, target: string, clientEncoding: string | undefined): Promise<{ create: string; inDatabase: string }> {
  const ident = pgIdent(target);
  // ASCII: every character is one byte in UTF-8.
  if (Buffer.byteLength(ident, 'utf8') === ident.length) return { create: ident, inDatabase: ident };
  const encoding = /'([^']*)'/.exec(clientEncoding ?? '')?.[1] ?? 'UTF8';
  const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
  const query = `select encode(convert_to(${literal(ident)}, ${literal(encoding)}), 'hex') || ' ' || encode(convert_to(${literal(ident)}, current_setting('server_encoding')), 'hex');`;
  const out = await runTool({ ...psqlRun(conn, 'postgres'), env: { ...conn.env, PGCLIENTENCODING: 'UTF8' } }, `writing the name ${target} in the archive's encoding ${encoding}`, Buffer.from(query, 'utf8')).catch((error: Error) => {
    throw new ColdsealError(EXIT.USAGE, `the database name "${target}" cannot be written in the backup's encoding ${encoding}: ${error.message}`, `Restore under a name that ${encoding} can hold`);
  });
  const [create, stored] = out.trim().split(' ').map((hex) => Buffer.from(hex, 'hex').toString('latin1'));
  return { create, inDatabase: stored };
}

/**
 * Creates the database as pg_restore --create would, under `database` (owner, grants and role
 * settings left out with noOwner: those roles may not exist here).
 */
export async function pgCreateDatabaseAs(conn: PgConnection, database: string, script: DatabaseScript, noOwner: boolean): Promise<void> {
  const roles = (s: string) => / OWNER TO |^(GRANT|REVOKE) |^ALTER ROLE /.test(s);
  const target = await targetIdents(conn, database, script.clientEncoding);
  const sql = (statements: readonly string[], name: string) => {
    const kept = statements.map((s) => renamed(s, script.name, name));
    return Buffer.from(`${[...(script.clientEncoding ? [script.clientEncoding] : []), ...kept].join('\n')}\n`, 'latin1');
  };
  const kept = (statements: readonly string[]) => statements.filter((s) => !(noOwner && roles(s)));
  await runTool(psqlRun(conn, 'postgres'), `creating database ${database} as the backup describes it`, sql(kept(script.create), target.create));
  const inDatabase = kept(script.inDatabase);
  if (inDatabase.length) await runTool(psqlRun(conn, database), `setting the comment, settings and grants of database ${database} as the backup has them`, sql(inDatabase, target.inDatabase));
}
