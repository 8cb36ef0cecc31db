import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchWork } from './common';
import { commandLabel } from './pitr-contender';

/**
 * coldseal on the binary log bench's source, as a user runs it: `backup` for the dump (which
 * records its binlog coordinates), `pitr binlog-push` on the timer, `restore --to-latest --target
 * mysql://…/new` for the dump plus the replay. The configuration is a `mysql` source "shop" read
 * over the scratch server's socket as root, pitr enabled, the bucket moto's. What this build lacks
 * is said in the report, never measured with a stand-in.
 */
export const PUSH_UNAVAILABLE = 'coldseal pitr binlog-push not available in this build';
export const RESTORE_UNAVAILABLE = 'coldseal restore of a MySQL/MariaDB source to a point in time (--to-gtid/--to-position/--to-latest on a mysql source) not available in this build';

export interface ColdsealBinlog {
  readonly pushUnavailable?: string;
  readonly restoreUnavailable?: string;
  readonly config: string;
  label(argv: readonly string[]): string | undefined;
  backup(): Promise<AgentRun>;
  push(): Promise<AgentRun>;
  /** The newest dump restored into `database`, with the binary logs replayed to the end when `toLatest`. */
  restore(database: string, toLatest: boolean, tmpDir: string): Promise<AgentRun>;
}

export interface LogLine {
  time: string;
  level: string;
  message: string;
}

export interface AgentRun {
  /** Its JSON log lines (the agent logs JSON to stderr when that is not a terminal). */
  log: LogLine[];
  endedAt: number;
}

/** Runs the agent; resolves with its log, or rejects with its own error line (not every line before it). */
function runAgent(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<AgentRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const endedAt = Date.now();
      const log = stderr.split('\n').flatMap((line) => {
        try {
          const l = JSON.parse(line) as LogLine;
          return typeof l.message === 'string' ? [l] : [];
        } catch {
          return [];
        }
      });
      if (code === 0) return resolve({ log, endedAt });
      const error = log.filter((l) => l.level === 'error').pop()?.message ?? stderr.trim().slice(-800);
      reject(new Error(`coldseal ${args.slice(1, 3).join(' ')} (exit ${code}): ${error}`));
    });
  });
}

function helpText(bundle: string, args: string[]): string | undefined {
  const r = spawnSync(process.execPath, [bundle, ...args, '--help'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : undefined;
}

export function coldsealBinlog(options: { bundle: string; work: BenchWork; endpoint: string; bucket: string; socket: string; targetPort: number; env: NodeJS.ProcessEnv }): ColdsealBinlog {
  const { bundle, env } = options;
  const config = join(options.work.dir, 'coldseal-mysql.json');
  writeFileSync(
    config,
    JSON.stringify({
      group: 'bench',
      host: 'bench',
      bucket: options.bucket,
      endpoint: options.endpoint,
      recipients: { file: options.work.recipientPublicFile },
      signingKey: { file: options.work.signingPrivateFile },
      sources: [{ name: 'shop', type: 'mysql', databases: ['shop'], socket: options.socket, user: 'root', inventory: false, pitr: { enabled: true, intervalMinutes: 1 } }],
    }),
    { mode: 0o600 },
  );
  const agent = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => runAgent(process.execPath, [bundle, ...args, '--config', config], { ...env, ...extraEnv });
  const restoreHelp = helpText(bundle, ['restore']) ?? '';
  return {
    config,
    // `pitr <unknown> --help` prints pitr's own help and exits 0: the command list must name it.
    pushUnavailable: /^\s+binlog-push\b/m.test(helpText(bundle, ['pitr']) ?? '') ? undefined : PUSH_UNAVAILABLE,
    // --to-latest exists for PostgreSQL already; the MySQL targets (--to-gtid, --to-position) say the MySQL replay is in.
    restoreUnavailable: /--to-gtid|--to-position/.test(restoreHelp) ? undefined : RESTORE_UNAVAILABLE,
    label(argv) {
      const at = argv.indexOf(bundle);
      return at >= 0 ? commandLabel('coldseal', argv, at + 1) : undefined;
    },
    backup: () => agent(['backup', '--source', 'shop', '--tier', 'daily']),
    // Its state, lock and spool in the bench's directory, never the host's /var/lib/coldseal.
    push: () => agent(['pitr', 'binlog-push', '--source', 'shop', '--state-dir', join(options.work.dir, 'binlog-push-state')]),
    restore: (database, toLatest, tmpDir) =>
      agent(
        ['restore', '--source', 'shop', '--host', 'bench', '--key', options.work.recipientPrivateFile, ...(toLatest ? ['--to-latest'] : []), '--target', `mysql://root@127.0.0.1:${options.targetPort}/${database}`, '--yes'],
        // Where the restore spools (os.tmpdir() follows TMPDIR): the bench samples its size.
        { TMPDIR: tmpDir },
      ),
  };
}
