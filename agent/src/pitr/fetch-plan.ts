import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { bucketNameSchema, nameSchema } from '../../../format/layout';
import { parseWalFileName, segmentFileName, segmentNumberOf, segmentOfLsn, type Lsn, type WalContinuity } from '../../../format/wal';
import { shellCommand, shellQuote, selfInvocation } from './self-invocation';

/**
 * The contract between `coldseal restore` (which writes it) and PostgreSQL's restore_command
 * (`coldseal pitr wal-fetch`, which reads it on every call): a JSON file in a spool directory that
 * says where the archive is, whose WAL it must be, which keys prove and open it, and for each
 * timeline on the target's history the range of segments the archive holds up to the target.
 *
 * The ranges are what let restore_command tell the normal end of recovery ("past the end of the
 * archive": exit 1) from a hole ("missing in the middle": exit 126, recovery stops instead of
 * promoting early because an object was deleted). Nothing secret is in it: the private key is
 * named by file, its passphrase by file or the environment (COLDSEAL_KEY_PASSPHRASE), and the
 * trusted signing keys are public keys, pinned here so that every call trusts exactly the keys
 * restore checked the base backup with (and needs no SSM call).
 *
 * The spool directory also holds the prefetch queue (wal-fetch.ts); PostgreSQL's OS user must be
 * able to read the plan and the key file and to write the spool.
 */
export const FETCH_PLAN_FILE = 'fetch-plan.json';
export const FETCH_PLAN_FORMAT_VERSION = 1;

const segmentName = z.string().refine((name) => {
  try {
    return parseWalFileName(name).kind === 'segment';
  } catch {
    return false;
  }
}, 'must be a WAL segment file name (24 upper-case hex digits)');
const historyName = z.string().regex(/^[0-9A-F]{8}\.history$/, 'must be a TTTTTTTT.history file name');
const absolutePath = z.string().refine((p) => isAbsolute(p), 'must be an absolute path (restore_command runs in the data directory)');

export const fetchRangeSchema = z
  .object({
    timeline: z.number().int().min(1).max(0xffffffff),
    /** The first segment recovery reads from this timeline. */
    firstSegment: segmentName,
    /** The last segment the archive holds on this timeline up to the target: a missing one up to here is a hole. */
    lastSegment: segmentName,
  })
  .strict();
export type FetchRange = z.infer<typeof fetchRangeSchema>;

export const fetchPlanSchema = z
  .object({
    formatVersion: z.literal(FETCH_PLAN_FORMAT_VERSION),
    group: nameSchema,
    host: nameSchema,
    source: nameSchema,
    /** Where the archive is read from: the configuration's bucket, or the replica restore read from. */
    storage: z.object({ bucket: bucketNameSchema, region: z.string().min(1), endpoint: z.url().optional() }).strict(),
    /** The base backup's cluster: a WAL record of another system identifier is refused. */
    systemIdentifier: z.string().regex(/^\d{1,20}$/),
    walSegmentSize: z.number().int().positive(),
    /** Armored public signing keys of the group (several during a rotation). */
    trustedSigningKeys: z.string().min(1),
    privateKey: z.object({ file: absolutePath, passphraseFile: absolutePath.optional() }).strict(),
    /** Oldest timeline first, along the target's history. */
    ranges: z.array(fetchRangeSchema).min(1),
    /** The .history files the archive holds for this recovery: asked for and missing, they are a hole too. */
    histories: z.array(historyName),
    /** Segments kept verified and decrypted ahead of recovery (0: no prefetch), and fetches in flight. */
    prefetch: z.number().int().min(0).max(256),
    concurrency: z.number().int().min(1).max(32),
    createdAt: z.iso.datetime(),
  })
  .strict()
  .superRefine((plan, context) => {
    plan.ranges.forEach((range, i) => {
      for (const field of ['firstSegment', 'lastSegment'] as const) {
        try {
          if (parseWalFileName(range[field]).timeline !== range.timeline) context.addIssue({ code: 'custom', path: ['ranges', i, field], message: `is not on timeline ${range.timeline}` });
          segmentNumberOf(range[field], plan.walSegmentSize);
        } catch (error) {
          context.addIssue({ code: 'custom', path: ['ranges', i, field], message: (error as Error).message });
        }
      }
    });
  });
export type FetchPlan = z.infer<typeof fetchPlanSchema>;

export class FetchPlanError extends Error {
  override readonly name = 'FetchPlanError';
}

export function fetchPlanPath(spool: string): string {
  return join(spool, FETCH_PLAN_FILE);
}

/** Writes the plan whole or not at all (temp file + rename), 0600 in a 0700 spool directory. */
export async function writeFetchPlan(spool: string, plan: FetchPlan): Promise<string> {
  const checked = fetchPlanSchema.parse(plan);
  await mkdir(spool, { recursive: true, mode: 0o700 });
  const path = fetchPlanPath(spool);
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(checked, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return path;
}

export async function readFetchPlan(spool: string): Promise<FetchPlan> {
  const path = fetchPlanPath(spool);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new FetchPlanError(`cannot read the fetch plan ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (restore_command's --spool must be the directory coldseal restore prepared, readable by PostgreSQL's OS user)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FetchPlanError(`the fetch plan ${path} is not JSON: ${(error as Error).message}`);
  }
  const parsed = fetchPlanSchema.safeParse(raw);
  if (!parsed.success) throw new FetchPlanError(`the fetch plan ${path} is invalid: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * The per-timeline ranges of a recovery along `continuity`'s history, from its start up to the
 * segment holding `target` (null: as far as the archive goes without a hole). Every segment in
 * them is archived (they lie inside `covered`); refused when the archive does not reach the target.
 */
export function fetchRangesFor(continuity: WalContinuity, target: Lsn | null, segSize: number): FetchRange[] {
  const covered = continuity.covered;
  if (!covered) throw new FetchPlanError('the archive does not hold the segment the recovery starts from');
  const startSeg = segmentOfLsn(covered.from.lsn, segSize);
  const coveredLast = segmentOfLsn(covered.to.lsn, segSize) - 1n;
  const targetSeg = target === null ? coveredLast : segmentOfLsn(target, segSize);
  if (targetSeg > coveredLast) throw new FetchPlanError(`the archive holds WAL without a hole only up to ${covered.to.segment}, before the target`);
  const ranges: FetchRange[] = [];
  continuity.history.forEach((span, i) => {
    const next = continuity.history[i + 1];
    const begin = segmentOfLsn(span.begin, segSize);
    const first = begin > startSeg ? begin : startSeg;
    const end = next ? segmentOfLsn(next.begin, segSize) - 1n : targetSeg;
    const last = end < targetSeg ? end : targetSeg;
    if (last < first) return;
    ranges.push({ timeline: span.timeline, firstSegment: segmentFileName(span.timeline, first, segSize), lastSegment: segmentFileName(span.timeline, last, segSize) });
  });
  return ranges;
}

/** Where a requested file stands against the plan. */
export type PlanPosition = 'planned' | 'beyond' | 'unplanned';

/**
 * 'planned': the archive held it when the plan was made (a miss is a hole). 'beyond': a segment
 * after the plan's end on its timeline, or a .history not planned (a miss is the end of the
 * archive). 'unplanned': on no planned timeline, or another kind of file (a miss is "not in the
 * archive": PostgreSQL probes other timelines' names as a matter of course).
 */
export function planPosition(plan: FetchPlan, walFile: string): PlanPosition {
  const parsed = parseWalFileName(walFile);
  if (parsed.kind === 'history') return plan.histories.includes(walFile) ? 'planned' : 'beyond';
  if (parsed.kind !== 'segment') return 'unplanned';
  const range = plan.ranges.find((r) => r.timeline === parsed.timeline);
  if (!range) return 'unplanned';
  const segno = segmentNumberOf(walFile, plan.walSegmentSize);
  if (segno > segmentNumberOf(range.lastSegment, plan.walSegmentSize)) return 'beyond';
  if (segno < segmentNumberOf(range.firstSegment, plan.walSegmentSize)) return 'unplanned';
  return 'planned';
}

/**
 * The segments recovery will ask for after `walFile`, up to `count`, along the plan's ranges
 * (what prefetch fetches). Ends at the plan's last segment.
 */
export function nextPlannedSegments(plan: FetchPlan, walFile: string, count: number): string[] {
  const parsed = parseWalFileName(walFile);
  if (parsed.kind !== 'segment' || count <= 0) return [];
  const seg = plan.walSegmentSize;
  const spans = plan.ranges.map((r) => ({ timeline: r.timeline, first: segmentNumberOf(r.firstSegment, seg), last: segmentNumberOf(r.lastSegment, seg) }));
  const result: string[] = [];
  let segno = segmentNumberOf(walFile, seg) + 1n;
  while (result.length < count) {
    // Recovery reads each position from the newest timeline whose range holds it.
    const span = [...spans].reverse().find((s) => segno >= s.first && segno <= s.last);
    if (!span) break;
    result.push(segmentFileName(span.timeline, segno, seg));
    segno++;
  }
  return result;
}

/**
 * The restore_command line for postgresql.auto.conf. A file the prefetcher already proved and
 * decrypted (wal-fetch.ts: `queue/<name>`, renamed there only once verified) is served by /bin/sh
 * alone: it records recovery's position for the prefetcher and moves the file to %p, so that
 * replaying a queued segment costs a few milliseconds instead of a Node start (0.2–0.3 CPU-s with
 * the bundle). Anything else runs this agent again (self-invocation.ts): `pitr wal-fetch`. A
 * queued file that cannot be moved is exit 126, never 1 (which would end recovery early).
 * PostgreSQL substitutes %f and %p before the shell sees the line (docs "Archive Recovery",
 * restore_command): %f is a WAL file name (hex digits, dots, letters) and %p a relative path,
 * nothing to quote; "%%" is a literal "%", so every "%" of our own is doubled.
 */
export function restoreCommandLine(options: { spool: string; self?: readonly string[] }): string {
  if (!isAbsolute(options.spool)) throw new FetchPlanError(`the spool directory "${options.spool}" must be an absolute path: restore_command runs in the data directory`);
  const ours = (text: string) => text.replace(/%/g, '%%');
  const spool = ours(shellQuote(options.spool));
  const queued = ours(shellQuote(join(options.spool, QUEUE_DIR)));
  const agent = ours(shellCommand([...(options.self ?? selfInvocation()), 'pitr', 'wal-fetch', '--spool', options.spool]));
  return [
    `if [ -f ${queued}/%f ]; then`,
    `echo %f > ${spool}/${LAST_SERVED_FILE}.$$ && mv -f ${spool}/${LAST_SERVED_FILE}.$$ ${spool}/${LAST_SERVED_FILE} && mv -f ${queued}/%f %p && exit 0;`,
    'exit 126;',
    'fi;',
    `exec ${agent} %f %p`,
  ].join(' ');
}

/** The spool's prefetch queue (verified, decrypted files only) and recovery's position, shared with wal-fetch.ts. */
export const QUEUE_DIR = 'queue';
export const LAST_SERVED_FILE = 'last-served';
