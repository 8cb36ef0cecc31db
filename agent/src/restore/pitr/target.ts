import { formatLsn, parseLsn, type Lsn } from '../../../../format/wal';
import { ColdsealError, EXIT } from '../../errors';

/**
 * Where a point-in-time restore stops: a moment, a WAL position, or the end of the archive; and
 * on which timeline. Pure: parsed from the command line, written into postgresql.auto.conf.
 */
export type RecoveryTarget =
  | { readonly kind: 'time'; /** Microseconds since the Unix epoch (PostgreSQL keeps µs; a Date only ms). */ readonly micros: bigint; /** As PostgreSQL reads it, in UTC. */ readonly text: string }
  | { readonly kind: 'lsn'; readonly lsn: Lsn }
  | { readonly kind: 'latest' };

/** recovery_target_timeline: a timeline ID, or 'latest' (PostgreSQL's default since 12). */
export type TargetTimeline = number | 'latest';

export interface TargetOptions {
  readonly toTime?: string;
  readonly toLsn?: string;
  readonly toLatest?: boolean;
  readonly targetTimeline?: string;
}

/** True when any of the point-in-time options is given (the restore is then a PITR restore). */
export function wantsPitr(options: TargetOptions & { readonly dataDir?: string; readonly prepareOnly?: boolean; readonly port?: string }): boolean {
  return [options.toTime, options.toLsn, options.toLatest || undefined, options.targetTimeline, options.dataDir, options.prepareOnly || undefined, options.port].some((v) => v !== undefined);
}

export function parseRecoveryTarget(options: TargetOptions): { target: RecoveryTarget; timeline: TargetTimeline } {
  const given = [options.toTime !== undefined && '--to-time', options.toLsn !== undefined && '--to-lsn', options.toLatest && '--to-latest'].filter(Boolean);
  if (given.length !== 1) {
    throw new ColdsealError(
      EXIT.USAGE,
      given.length ? `give one recovery target, not ${given.join(' and ')}` : 'a point-in-time restore needs a target',
      "Use --to-time '2026-12-06 10:15:00+01', --to-lsn 16/B374D848 or --to-latest",
    );
  }
  let target: RecoveryTarget;
  if (options.toTime !== undefined) target = { kind: 'time', ...parseTargetTime(options.toTime) };
  else if (options.toLsn !== undefined) {
    try {
      target = { kind: 'lsn', lsn: parseLsn(options.toLsn) };
    } catch (error) {
      throw new ColdsealError(EXIT.USAGE, `--to-lsn: ${(error as Error).message}`, 'Take it from pg_current_wal_lsn() or coldseal list');
    }
  } else target = { kind: 'latest' };
  return { target, timeline: parseTargetTimeline(options.targetTimeline) };
}

export function parseTargetTimeline(text: string | undefined): TargetTimeline {
  if (text === undefined || text === 'latest') return 'latest';
  if (!/^\d{1,10}$/.test(text) || Number(text) < 1 || Number(text) > 0xffffffff) {
    throw new ColdsealError(EXIT.USAGE, `--target-timeline "${text}" is neither "latest" nor a timeline ID (1, 2, …)`, 'Timelines are listed by coldseal list; PostgreSQL shows the current one in pg_control_checkpoint()');
  }
  return Number(text);
}

const TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * A time with its zone: "2026-12-06 10:15:00+01", "2026-12-06T09:15:00.250Z", "… 10:15 UTC".
 * A time without a zone is refused: the restored server would read it in its own TimeZone
 * setting, which is not necessarily the one the user thinks in.
 */
export function parseTargetTime(text: string): { micros: bigint; text: string } {
  const m = TIME.exec(text.trim());
  const refuse = (why: string) =>
    new ColdsealError(EXIT.USAGE, `--to-time "${text}" ${why}`, "Use a date, a time and a time zone: '2026-12-06 10:15:00+01', '2026-12-06T09:15:00Z' or '2026-12-06 09:15:00 UTC'");
  if (!m) throw refuse('is not a time with a time zone');
  const [year, month, day, hour, minute] = m.slice(1, 6).map(Number);
  const second = Number(m[6] ?? '0');
  const fraction = BigInt((m[7] ?? '').padEnd(6, '0'));
  const zone = m[8].toUpperCase();
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'UTC') {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
    offsetMinutes = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] ?? '0'));
    if (Math.abs(offsetMinutes) > 15 * 60) throw refuse(`has a time zone offset of more than 15 hours (${zone})`);
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) throw refuse('is not a real date and time');
  const micros = (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1000n + fraction;
  return { micros, text: formatMicros(micros) };
}

/** "2026-12-06 09:15:00.250000+00": ISO 8601 as PostgreSQL prints and reads a timestamptz, in UTC. */
export function formatMicros(micros: bigint): string {
  const ms = Number(micros / 1000n);
  const iso = new Date(ms).toISOString();
  const fraction = (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${fraction}+00`;
}

export function microsOf(date: Date): bigint {
  return BigInt(date.getTime()) * 1000n;
}

export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time':
      return `time ${target.text}`;
    case 'lsn':
      return `LSN ${formatLsn(target.lsn)}`;
    case 'latest':
      return 'the end of the archive (latest)';
  }
}
