import { z } from 'zod';
import { isBinlogFileName } from './binlog';
import { historyFileName, parseWalFileName } from './wal';
/**
 * The S3 key layout shared by the agent, the Lambdas and the stack's lifecycle rules.
 *
 * backups/<tier>/<group>/<host>/<source>/<stamp>.<artifact>.<ext>.pgp   ciphertext
 * backups/<tier>/<group>/<host>/<source>/<stamp>.manifest.json          signed manifest (commit point)
 * drills/<group>/<host>/<stamp>.drill.json                              signed drill receipt
 * wal/<group>/<host>/<source>/<TTTTTTTT>/<WAL file name>.pgp           PostgreSQL WAL archive (PITR)
 * wal/<group>/<host>/<source>/binlog/<binlog file name>.pgp             MySQL/MariaDB binary log archive (PITR)
 * reports/<YYYY-MM-DD>/verification.{json,html}                         verifier output
 * state/alerts/…, state/verified/…                                       the Lambdas' working state
 *
 * The tier is the first path segment so that a lifecycle rule (and an Object Lock default) can
 * target a tier by prefix alone.
 */

export const TIERS = ['daily', 'weekly', 'monthly', 'yearly'] as const;
export type Tier = (typeof TIERS)[number];

export const BACKUPS_PREFIX = 'backups/';
export const DRILLS_PREFIX = 'drills/';
export const REPORTS_PREFIX = 'reports/';
/**
 * The log archive of point-in-time recovery, outside backups/: PostgreSQL WAL and MySQL/MariaDB
 * binary logs, which serve backups of several tiers. One prefix for both, so one lifecycle rule,
 * one write-once host statement and one verifier grant cover every PITR source.
 */
export const WAL_PREFIX = 'wal/';
/** The key segment that holds a MySQL/MariaDB source's binary logs where a PostgreSQL source has its timelines (never 8 hex digits). */
export const BINLOG_DIR = 'binlog';
/** The Lambdas' working state (alert de-duplication, read-verification progress): overwritten often. */
export const STATE_PREFIX = 'state/';
/** The verifier's read-verification progress, one record per artifact. */
export const VERIFIED_PREFIX = `${STATE_PREFIX}verified/`;
/** Alert de-duplication: one object per open problem (see lambdas/shared/alerts.ts). */
export const ALERT_STATE_PREFIX = `${STATE_PREFIX}alerts/`;
/** The monitor's WAL watermarks: per PITR source and host, the newest archived WAL seen (lambdas/monitor/core/wal-check.ts). */
export const WAL_WATERMARK_PREFIX = `${STATE_PREFIX}wal-watermarks/`;
/** The Price List answer the verifier last got, per region, with its date (lambdas/shared/price-list.ts). */
export const PRICE_CACHE_PREFIX = `${STATE_PREFIX}prices/`;
/** One snapshot of stored bytes and cost a day, so the report can say what changed in 30 days (lambdas/verifier/core/storage-cost.ts). */
export const STORAGE_SNAPSHOT_PREFIX = `${STATE_PREFIX}storage/`;

/** Group, host and source names become key segments: keep them to a set that needs no escaping. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const NAME_RULE = '1-63 characters: letters, digits, "-" and "_", starting with a letter or digit';
/** A group, host or source name in a zod schema: NAME_PATTERN, refused with NAME_RULE. */
export const nameSchema = z.string().regex(NAME_PATTERN, `must be ${NAME_RULE}`);
/** The EC2 tag key that marks a group's hosts. */
export const tagKeySchema = z.string().regex(/^[A-Za-z0-9_.:/=+@-]{1,128}$/, 'must be an EC2 tag key');
/** The tag key whose value names a host's group, unless the deployment chooses another. */
export const DEFAULT_HOST_TAG_KEY = 'coldseal-group';
/** The tag key whose value (a group) marks the drill host, unless the deployment chooses another. */
export const DEFAULT_DRILL_TAG_KEY = 'coldseal-drill';
/** An S3 bucket name (the general-purpose bucket naming rules). */
export const bucketNameSchema = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name');

const STAMP_PATTERN = /^\d{8}T\d{6}Z$/;

export interface SourceLocation {
  readonly tier: Tier;
  readonly group: string;
  readonly host: string;
  readonly source: string;
}

export function isTier(value: string): value is Tier {
  return (TIERS as readonly string[]).includes(value);
}

export function assertName(kind: string, value: string): void {
  if (!NAME_PATTERN.test(value)) {
    throw new Error(`${kind} "${value}" is not a valid name: use ${NAME_RULE}`);
  }
}

/** A host name as the OS reports it may hold dots (FQDN); keep the first label, which is what people say. */
export function hostNameFrom(osHostname: string): string {
  const label = osHostname.split('.')[0].replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[-_]+/, '');
  return (label || 'host').slice(0, 63);
}

/** UTC, second precision, sortable as text: 20261122T005849Z. */
export function stampOf(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function dateOfStamp(stamp: string): Date {
  if (!STAMP_PATTERN.test(stamp)) throw new Error(`"${stamp}" is not a backup stamp (expected YYYYMMDDTHHMMSSZ)`);
  const iso = `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`;
  return new Date(iso);
}

export function sourcePrefix(loc: SourceLocation): string {
  for (const [kind, value] of [['group', loc.group], ['host', loc.host], ['source', loc.source]] as const) {
    assertName(kind, value);
  }
  return `${BACKUPS_PREFIX}${loc.tier}/${loc.group}/${loc.host}/${loc.source}/`;
}

/** Prefix a host group may write under, for any tier: used by IAM (one statement per tier). */
export function groupPrefix(tier: Tier, group: string): string {
  return `${BACKUPS_PREFIX}${tier}/${group}/`;
}

export function tierPrefix(tier: Tier): string {
  return `${BACKUPS_PREFIX}${tier}/`;
}

export function manifestKey(loc: SourceLocation, stamp: string): string {
  return `${sourcePrefix(loc)}${stamp}.manifest.json`;
}

/**
 * Artifact names are database names, which may hold any character; they are percent-encoded, and
 * dots too, so that the key splits unambiguously on ".".
 */
export function encodeArtifactName(name: string): string {
  return encodeURIComponent(name).replace(/\./g, '%2E').replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function decodeArtifactName(encoded: string): string {
  return decodeURIComponent(encoded);
}

export function artifactKey(loc: SourceLocation, stamp: string, artifactName: string, extension: string): string {
  if (!/^[a-z0-9]+(\.[a-z0-9]+)*$/.test(extension)) throw new Error(`bad artifact extension "${extension}"`);
  return `${sourcePrefix(loc)}${stamp}.${encodeArtifactName(artifactName)}.${extension}.pgp`;
}

/**
 * The key of segment `n` (1-based) of an artifact: the first segment is the artifact's own key, so
 * an unsegmented artifact looks as it always did; the next ones are <…>.<ext>.seg00002.pgp.
 */
export function segmentKey(artifactKeyValue: string, n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 99_999) throw new Error(`segment number ${n} is outside 1–99999`);
  if (n === 1) return artifactKeyValue;
  if (!artifactKeyValue.endsWith('.pgp')) throw new Error(`"${artifactKeyValue}" is not an artifact key`);
  return `${artifactKeyValue.slice(0, -'.pgp'.length)}.seg${String(n).padStart(5, '0')}.pgp`;
}

const SEGMENT_PATTERN = /^seg(\d{5})$/;

/**
 * Where one timeline's WAL of a source lives. The timeline is a key segment of its own so that a
 * restore lists only the timelines on its target's history, and a .history file sits beside the
 * segments it starts.
 */
export function walPrefix(group: string, host: string, source: string, timeline: number): string {
  for (const [kind, value] of [['group', group], ['host', host], ['source', source]] as const) {
    assertName(kind, value);
  }
  // historyFileName refuses a timeline outside 1..FFFFFFFF and spells it as PostgreSQL does.
  return `${WAL_PREFIX}${group}/${host}/${source}/${historyFileName(timeline).slice(0, 8)}/`;
}

/** The object of one archived WAL file (segment, .history, .backup or .partial), refused if the name is not one. */
export function walObjectKey(group: string, host: string, source: string, walFileName: string): string {
  const parsed = parseWalFileName(walFileName);
  return `${walPrefix(group, host, source, parsed.timeline)}${walFileName}.pgp`;
}

/** Where a MySQL/MariaDB source's binary logs live. */
export function binlogPrefix(group: string, host: string, source: string): string {
  for (const [kind, value] of [['group', group], ['host', host], ['source', source]] as const) {
    assertName(kind, value);
  }
  return `${WAL_PREFIX}${group}/${host}/${source}/${BINLOG_DIR}/`;
}

/**
 * The object of one archived binary log file. Names sort in sequence order while the server pads
 * them to the same width (6 digits: a million files), which the monitor's StartAfter listing uses.
 */
export function binlogObjectKey(group: string, host: string, source: string, binlogFile: string): string {
  if (!isBinlogFileName(binlogFile)) throw new Error(`"${binlogFile}" is not a binary log file name (<basename>.<6+ digits>)`);
  return `${binlogPrefix(group, host, source)}${binlogFile}.pgp`;
}

export function drillReceiptKey(group: string, host: string, stamp: string): string {
  assertName('group', group);
  assertName('host', host);
  return `${DRILLS_PREFIX}${group}/${host}/${stamp}.drill.json`;
}

export function reportKeys(date: Date): { json: string; html: string } {
  const day = date.toISOString().slice(0, 10);
  return { json: `${REPORTS_PREFIX}${day}/verification.json`, html: `${REPORTS_PREFIX}${day}/verification.html` };
}

export type ParsedKey =
  | ({ kind: 'manifest'; stamp: string } & SourceLocation)
  | ({ kind: 'artifact'; stamp: string; artifact: string; extension: string; /** 1-based; 1 for the artifact's own key. */ segment: number } & SourceLocation)
  | { kind: 'drill-receipt'; group: string; host: string; stamp: string }
  | { kind: 'wal'; group: string; host: string; source: string; timeline: number; walFile: string }
  | { kind: 'binlog'; group: string; host: string; source: string; binlogFile: string };

/** Reads a key back into its parts; null for anything that is not ours (so listings can skip it). */
export function parseKey(key: string): ParsedKey | null {
  const parts = key.split('/');
  if (parts[0] === 'backups' && parts.length === 6) {
    const [, tier, group, host, source, file] = parts;
    if (!isTier(tier) || ![group, host, source].every((n) => NAME_PATTERN.test(n))) return null;
    const segments = file.split('.');
    const stamp = segments[0];
    if (!STAMP_PATTERN.test(stamp)) return null;
    if (segments.length === 3 && segments[1] === 'manifest' && segments[2] === 'json') {
      return { kind: 'manifest', tier, group, host, source, stamp };
    }
    if (segments.length >= 4 && segments[segments.length - 1] === 'pgp') {
      const segment = SEGMENT_PATTERN.exec(segments[segments.length - 2]);
      if (segment && (segments.length < 5 || Number(segment[1]) < 2)) return null;
      return {
        kind: 'artifact',
        tier,
        group,
        host,
        source,
        stamp,
        artifact: decodeArtifactName(segments[1]),
        extension: segments.slice(2, segment ? -2 : -1).join('.'),
        segment: segment ? Number(segment[1]) : 1,
      };
    }
    return null;
  }
  if (parts[0] === 'wal' && parts.length === 6) {
    const [, group, host, source, timelineDir, file] = parts;
    if (![group, host, source].every((n) => NAME_PATTERN.test(n)) || !file.endsWith('.pgp')) return null;
    if (timelineDir === BINLOG_DIR) {
      const binlogFile = file.slice(0, -'.pgp'.length);
      return isBinlogFileName(binlogFile) ? { kind: 'binlog', group, host, source, binlogFile } : null;
    }
    const walFile = file.slice(0, -'.pgp'.length);
    try {
      const parsed = parseWalFileName(walFile);
      if (historyFileName(parsed.timeline).slice(0, 8) !== timelineDir) return null;
      return { kind: 'wal', group, host, source, timeline: parsed.timeline, walFile };
    } catch {
      return null;
    }
  }
  if (parts[0] === 'drills' && parts.length === 4) {
    const [, group, host, file] = parts;
    const match = /^(\d{8}T\d{6}Z)\.drill\.json$/.exec(file);
    if (!match || !NAME_PATTERN.test(group) || !NAME_PATTERN.test(host)) return null;
    return { kind: 'drill-receipt', group, host, stamp: match[1] };
  }
  return null;
}
