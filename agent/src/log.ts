import { formatBytes } from '../../runtime/byte-size';

/**
 * Two audiences: a person at a terminal sees one progress line that rewrites itself; SSM (stdout
 * not a TTY) gets one JSON object per line, which its output capture and CloudWatch Logs keep
 * searchable. Nothing secret is ever passed here.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Log {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A progress tick: a rewritten line on a TTY, a JSON line at most every `jsonEverySeconds` otherwise. */
  progress(fields: ProgressFields): void;
  /** Ends a progress line so the next message starts on a fresh line. */
  endProgress(): void;
}

export interface ProgressFields {
  readonly label: string;
  readonly bytes: number;
  readonly elapsedSeconds: number;
  readonly detail?: string;
}

export function createLog(options: { json?: boolean; verbose?: boolean; stream?: NodeJS.WriteStream; jsonEverySeconds?: number } = {}): Log {
  const stream = options.stream ?? process.stderr;
  const json = options.json ?? !stream.isTTY;
  const jsonEvery = (options.jsonEverySeconds ?? 30) * 1000;
  let progressShown = false;
  let lastJsonProgress = 0;

  const write = (level: Level, message: string, fields?: Record<string, unknown>) => {
    if (level === 'debug' && !options.verbose) return;
    if (json) {
      stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields })}\n`);
      return;
    }
    if (progressShown) {
      stream.write('\n');
      progressShown = false;
    }
    const extra = fields && Object.keys(fields).length ? ` ${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}` : '';
    stream.write(`${level === 'info' ? '' : `${level.toUpperCase()}: `}${message}${extra}\n`);
  };

  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    progress(p) {
      const rate = p.elapsedSeconds > 0 ? p.bytes / p.elapsedSeconds : 0;
      if (json) {
        const now = Date.now();
        if (now - lastJsonProgress < jsonEvery) return;
        lastJsonProgress = now;
        write('info', 'progress', { label: p.label, bytes: p.bytes, bytesPerSecond: Math.round(rate), elapsedSeconds: Math.round(p.elapsedSeconds), ...(p.detail ? { detail: p.detail } : {}) });
        return;
      }
      stream.write(`\r\x1b[K${p.label}: ${formatBytes(p.bytes)} at ${formatBytes(rate)}/s, ${Math.round(p.elapsedSeconds)} s${p.detail ? `, ${p.detail}` : ''}`);
      progressShown = true;
    },
    endProgress() {
      if (progressShown) {
        stream.write('\n');
        progressShown = false;
      }
    },
  };
}

/** For tests and library use: drops everything. */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {}, progress() {}, endProgress() {} };
