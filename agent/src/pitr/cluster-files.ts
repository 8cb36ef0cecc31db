import { endianness } from 'node:os';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_WAL_SEGMENT_SIZE, MIN_WAL_SEGMENT_SIZE } from '../../../format/wal';
import { ColdsealError, EXIT } from '../errors';

/**
 * What the archive side reads from the data directory itself, without a database connection
 * (archive_command runs with the data directory as its working directory: PostgreSQL docs,
 * "Setting Up WAL Archiving"): the cluster's system identifier and its WAL segment size.
 *
 * From PostgreSQL's source (src/include/catalog/pg_control.h, src/include/access/xlog_internal.h):
 * - global/pg_control begins with `uint64 system_identifier`, in the machine's byte order;
 * - the first page of every WAL segment is an XLogLongPageHeaderData: the 24-byte standard header
 *   (MAXALIGNed XLogPageHeaderData), then `uint64 xlp_sysid` at byte 24 and `uint32 xlp_seg_size` at
 *   byte 32, also in the machine's byte order. xlp_magic (the first uint16) differs per major
 *   version and is not checked.
 */
export interface ClusterIdentity {
  /** Decimal, as pg_controldata and pg_control_system() print it. */
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
}

const LONG_HEADER_BYTES = 40;
const SYSID_OFFSET = 24;
const SEG_SIZE_OFFSET = 32;
const SEGMENT_FILE = /^[0-9A-F]{24}$/;

const littleEndian = endianness() === 'LE';
const readU64 = (b: Buffer, at: number): bigint => (littleEndian ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at));
const readU32 = (b: Buffer, at: number): number => (littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at));

async function readHead(path: string, bytes: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    if (bytesRead < bytes) throw new Error(`${path} is shorter than ${bytes} bytes`);
    return buffer;
  } finally {
    await handle.close();
  }
}

/** pg_control's system identifier of the cluster in `dataDir`. */
export async function readSystemIdentifier(dataDir: string): Promise<string> {
  const path = join(dataDir, 'global', 'pg_control');
  try {
    return readU64(await readHead(path, 8), 0).toString();
  } catch (error) {
    throw new ColdsealError(EXIT.SOURCE, `cannot read the system identifier from ${path}: ${(error as Error).message}`, 'archive-push runs in the data directory (PostgreSQL starts archive_command there); run it from there or pass --pgdata');
  }
}

/** The system identifier and segment size a WAL segment (or .partial) file declares in its first page. */
export async function readSegmentHeader(path: string): Promise<ClusterIdentity> {
  const head = await readHead(path, LONG_HEADER_BYTES);
  const walSegmentSize = readU32(head, SEG_SIZE_OFFSET);
  if (walSegmentSize < MIN_WAL_SEGMENT_SIZE || walSegmentSize > MAX_WAL_SEGMENT_SIZE || (walSegmentSize & (walSegmentSize - 1)) !== 0) {
    throw new Error(`${path} does not start with a WAL long page header (segment size field reads ${walSegmentSize})`);
  }
  return { systemIdentifier: readU64(head, SYSID_OFFSET).toString(), walSegmentSize };
}

/**
 * The cluster's identity: pg_control's system identifier, and the segment size from a segment in
 * pg_wal whose header names that same cluster (there is always one: the server writes into it).
 */
export async function readClusterIdentity(dataDir: string): Promise<ClusterIdentity> {
  const systemIdentifier = await readSystemIdentifier(dataDir);
  const walDir = join(dataDir, 'pg_wal');
  const names = (await readdir(walDir).catch(() => [] as string[])).filter((n) => SEGMENT_FILE.test(n)).sort().reverse();
  for (const name of names) {
    const header = await readSegmentHeader(join(walDir, name)).catch(() => undefined);
    if (header?.systemIdentifier === systemIdentifier) return header;
  }
  throw new ColdsealError(EXIT.SOURCE, `no WAL segment of system ${systemIdentifier} in ${walDir} to read the segment size from`, 'Run archive-push as PostgreSQL does: from the data directory of a running cluster');
}
