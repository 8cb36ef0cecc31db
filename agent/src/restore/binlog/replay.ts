import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline, Writable } from 'node:stream';
import type { PrivateKey } from '../../../../runtime/pgp';
import { mysqlCommand, runMysql, type MysqlConnection } from '../../db/mysql';
import { ColdsealError, EXIT } from '../../errors';
import type { Log } from '../../log';
import { requireDecompressor, startDecompression } from '../../pipeline/decompress';
import { chooseDecryption, decryptWithGpg, decryptWithOpenpgp, recipientKeyring, type CiphertextFeed, type Decryption } from '../../pipeline/decrypt';
import type { GpgHome } from '../../pipeline/encrypt';
import { toolSink, type Sink } from '../../pipeline/sink';
import { keepTail, lastLines } from '../../process-output';
import { Sha256Stream } from '../../../../runtime/digest';
import { BinlogPrefetcher, TAMPERED_HINT } from './fetch';
import type { BinlogRecord } from '../../../../format/binlog-record';
import type { ReplayStep } from './plan';
import { BinlogReplayStream, ReplayState, type ReplayProgress } from './replay-stream';

/**
 * Replays archived binary logs into a (staging) database through ONE `mariadb` client session:
 * its stdin stays open from the first file to the last, so a temporary table created in one log
 * file is still there when the next one uses it (the session is what mariadb-binlog's output
 * assumes, https://mariadb.com/kb/en/using-mariadb-binlog/#processing-multiple-binary-logs).
 *
 * For each file, in order: the prefetcher's verified ciphertext (size and SHA-256 matched the
 * signed record before this point) → decryption (gpg with one throwaway keyring for the whole
 * replay, openpgp.js without gpg) → decompression → plaintext SHA-256 → `mariadb-binlog -` (it
 * reads stdin) with --start-position on the first file and the stop option on the last,
 * --database=<source> and --rewrite-db='<source>-><staging>' → replay-stream.ts (drops the source's
 * GTID sequence numbers, follows progress) → the client. The plaintext's size and SHA-256 are
 * compared with the record once the file has been read to its end (mariadb-binlog may stop reading
 * early at the target: the rest is still read and hashed). Any failure kills the client, so its
 * open transaction is rolled back, and is thrown: the caller drops the staging database.
 *
 * MariaDB 10.11 filters --database on the name in the log, before the rewrite (tested); MySQL's
 * mysqlbinlog applies --rewrite-db first and filters on the new name.
 */
export interface ReplayRequest {
  readonly conn: MysqlConnection;
  /** The database replay writes into, and the source's own name in the log. */
  readonly staging: string;
  readonly sourceDatabase: string;
  readonly steps: readonly ReplayStep[];
  readonly prefetcher: BinlogPrefetcher;
  readonly key: PrivateKey;
  /** The GTID state at the dump's position (MariaDB list). */
  readonly gtidStart: string;
  readonly log: Log;
  /** Plaintext bytes read (for progress). */
  readonly onBytes?: (bytes: number) => void;
}

export interface ReplayOutcome extends ReplayProgress {
  /** GTID position after replay (newest per domain). */
  readonly gtid: string;
  readonly files: number;
  readonly plaintextBytes: number;
  readonly seconds: number;
}

/**
 * The tool and its flavour's options. MySQL 8 (not tested here: MariaDB only) has mysqlbinlog,
 * whose --skip-gtids leaves out the GTID_NEXT lines the MariaDB output's sequence numbers stand for,
 * and which applies --rewrite-db before --database, so it filters on the new name
 * (https://dev.mysql.com/doc/refman/8.0/en/mysqlbinlog.html#option_mysqlbinlog_rewrite-db).
 */
function binlogTool(conn: MysqlConnection, flavor: BinlogRecord['flavor'], source: string, staging: string): { command: string; args: string[] } {
  const tool = flavor === 'mysql' ? 'mysqlbinlog' : 'mariadb-binlog';
  const common = ['--no-defaults', `--rewrite-db=${source}->${staging}`];
  return {
    command: conn.binDir ? join(conn.binDir, tool) : tool,
    args: flavor === 'mysql' ? [...common, `--database=${staging}`, '--skip-gtids'] : [...common, `--database=${source}`],
  };
}

export async function replayBinlogs(request: ReplayRequest): Promise<ReplayOutcome> {
  const { conn, staging, sourceDatabase, steps, log } = request;
  // A host that cannot decompress the files is told so before the session starts.
  for (const compression of new Set(steps.map((step) => step.record.compression))) requireDecompressor(compression);
  const started = Date.now();
  const reached = new ReplayState(request.gtidStart);
  // --binary-mode: statement events may hold any bytes (https://mariadb.com/kb/en/mariadb-command-line-client/).
  const client: Sink = toolSink({ ...mysqlCommand(conn, 'mysql', ['--binary-mode', '--max-allowed-packet=1G']), env: {} }, `replaying the binary logs into ${staging}`);
  let clientFailure: unknown;
  let streamFailure: unknown;
  const clientDone = client.done.catch((error: unknown) => {
    clientFailure = error;
    throw error;
  });
  clientDone.catch(() => undefined);
  // A statement a file's stream refuses stops the session before it reaches the server.
  const onStreamError = (error: Error) => {
    streamFailure ??= new ColdsealError(EXIT.FAILURE, error.message, 'Restore to another server, or to a target before that statement');
    client.kill();
  };
  const failure = () => streamFailure ?? clientFailure;
  const engine = chooseDecryption(undefined);
  const keyring: Promise<GpgHome> | undefined = engine === 'gpg' && steps.length > 0 ? recipientKeyring(request.key) : undefined;
  keyring?.catch(() => undefined);
  let plaintextBytes = 0;
  let seen = 0;
  let lastTick = 0;
  // A progress line on a terminal (a JSON line every so often otherwise) while a file replays.
  const tick = (bytes: number) => {
    seen += bytes;
    const now = Date.now();
    if (now - lastTick < 500) return;
    lastTick = now;
    log.progress({ label: 'replaying binary logs', bytes: seen, elapsedSeconds: (now - started) / 1000, detail: `${reached.progress.transactions} transactions${reached.progress.lastCommitAt ? `, at ${reached.progress.lastCommitAt}` : ''}` });
  };
  const replayRequest = { ...request, onBytes: tick };
  try {
    for (let index = 0; index < steps.length; index++) {
      const step = steps[index];
      const path = await request.prefetcher.next(index);
      if (failure()) throw failure();
      const stream = new BinlogReplayStream(sourceDatabase, step.record.binlogFile, reached);
      stream.once('error', onStreamError);
      plaintextBytes += await replayFile(step, path, replayRequest, stream, keyring, client, failure);
      await request.prefetcher.done(index, path);
      log.endProgress();
      log.info(`replayed ${step.record.binlogFile}: ciphertext and plaintext SHA-256 as signed`, { binlogFile: step.record.binlogFile, transactions: reached.progress.transactions, position: reached.progress.position });
    }
    client.input.end();
    await clientDone.catch((error: unknown) => {
      throw failure() ?? error;
    });
    if (failure()) throw failure();
  } catch (error) {
    client.kill();
    throw await explained(conn, failure() ?? error);
  } finally {
    log.endProgress();
    await keyring?.then((home) => home.close()).catch(() => undefined);
  }
  return { ...reached.progress, gtid: reached.gtidPosition(), files: steps.length, plaintextBytes, seconds: (Date.now() - started) / 1000 };
}

/**
 * mariadb-binlog prints all row events of one statement as one BINLOG statement, which the server
 * refuses beyond max_allowed_packet by closing the connection ("MySQL server has gone away",
 * https://mariadb.com/kb/en/server-system-variables/#max_allowed_packet; the session value is read-only).
 */
async function explained(conn: MysqlConnection, error: unknown): Promise<unknown> {
  const message = error instanceof Error ? error.message : String(error);
  if (!/gone away|max_allowed_packet|Lost connection/i.test(message)) return error;
  const current = await runMysql(conn, 'select @@global.max_allowed_packet;', 'reading max_allowed_packet').then((lines) => lines[0], () => undefined);
  return new ColdsealError(
    EXIT.FAILURE,
    `${message} (a replayed statement may be larger than the server's max_allowed_packet${current ? `, ${current} bytes` : ''}: mariadb-binlog prints each statement's row events as one BINLOG statement)`,
    'Raise it on the server you restore to (SET GLOBAL max_allowed_packet = 1073741824, or max_allowed_packet in its configuration) and restore again',
    { cause: error },
  );
}

/** One file through decryption, decompression and mariadb-binlog into the session; returns its plaintext size. */
async function replayFile(step: ReplayStep, path: string, request: ReplayRequest, stream: BinlogReplayStream, keyring: Promise<GpgHome> | undefined, client: Sink, clientFailure: () => unknown): Promise<number> {
  const { record } = step;
  const file = createReadStream(path);
  const feed: CiphertextFeed = {
    done: Promise.resolve(null),
    start(into) {
      pipeline(file, into, () => undefined);
    },
    stop: () => file.destroy(),
  };
  const decryption: Decryption = keyring ? await decryptWithGpg(feed, keyring, { shared: true }) : await decryptWithOpenpgp(feed, request.key);
  const decompression = startDecompression(record.compression, decryption, undefined, undefined);
  const tool = binlogTool(request.conn, record.flavor, request.sourceDatabase, request.staging);
  const args = [
    ...tool.args,
    ...(step.startPosition !== undefined ? [`--start-position=${step.startPosition}`] : []),
    ...(step.stopDatetime !== undefined ? [`--stop-datetime=${step.stopDatetime}`] : []),
    ...(step.stopPosition !== undefined ? [`--stop-position=${step.stopPosition}`] : []),
    '-',
  ];
  // TZ=UTC: mariadb-binlog reads --stop-datetime and prints event times in its local zone.
  const binlog = spawn(tool.command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
  const stderr = keepTail(binlog.stderr, 4096);
  const exited = new Promise<string | null>((resolve) => {
    binlog.once('error', (error) => resolve(`mariadb-binlog could not be started (${error.message}): install the MariaDB client tools`));
    binlog.once('close', (code, signal) => resolve(code === 0 ? null : `mariadb-binlog failed on ${record.binlogFile} (${signal ?? `status ${code}`}): ${lastLines(stderr(), 2)}`));
  });
  binlog.stdin.on('error', () => undefined);
  const hashing = new Sha256Stream();
  hashing.on('data', (chunk: Buffer) => request.onBytes?.(chunk.length));
  // mariadb-binlog stops reading at the target: the rest of the plaintext is still read to its end and hashed.
  const rest = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  decompression.plaintext.pipe(hashing);
  hashing.pipe(binlog.stdin);
  binlog.stdin.once('close', () => {
    hashing.unpipe(binlog.stdin);
    hashing.pipe(rest);
  });
  const hashed = new Promise<void>((resolve) => hashing.once('end', () => resolve()));
  binlog.stdout.pipe(stream);
  stream.pipe(client.input, { end: false });
  // This file's output is in the session (the stream's end) before the next file's starts.
  const outputEnded = new Promise<void>((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
  const stop = () => {
    decryption.kill();
    decompression.kill();
    binlog.kill('SIGKILL');
  };
  // The client died (an SQL error): stop this file at once; its message is the root cause.
  const watch = setInterval(() => {
    if (clientFailure()) stop();
  }, 200);
  let outcome: [string | null, string | null, string | null];
  try {
    outcome = await Promise.all([decryption.done, decompression.decompressed, exited]);
    await Promise.race([Promise.all([hashed, outputEnded]), client.done.catch(() => undefined)]);
  } finally {
    clearInterval(watch);
  }
  if (clientFailure()) throw clientFailure();
  const [decryptFailure, decompressFailure, binlogFailure] = outcome;
  const where = `binary log ${record.binlogFile}`;
  if (decryptFailure) throw new ColdsealError(EXIT.INTEGRITY, `${where}: ${decryptFailure === 'MDC' ? 'the OpenPGP integrity check (MDC) failed' : `decryption failed: ${decryptFailure}`}`, TAMPERED_HINT);
  if (decompressFailure) throw new ColdsealError(EXIT.INTEGRITY, `${where}: ${decompressFailure}`, TAMPERED_HINT);
  const got = hashing.digest();
  if (got.bytes !== record.plaintextBytes || got.sha256 !== record.plaintextSha256) {
    throw new ColdsealError(EXIT.INTEGRITY, `${where} failed its integrity check: its plaintext (${got.bytes} bytes, SHA-256 ${got.sha256}) is not what the signed record says (${record.plaintextBytes} bytes, ${record.plaintextSha256})`, TAMPERED_HINT);
  }
  if (binlogFailure) throw new ColdsealError(EXIT.FAILURE, binlogFailure);
  return got.bytes;
}
