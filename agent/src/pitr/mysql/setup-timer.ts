import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The schedule of `coldseal pitr binlog-push` for one MySQL/MariaDB source: a systemd service and
 * timer (`coldseal-binlog-push-<source>.service/.timer`), enabled when systemd runs the machine.
 * Where it does not (a container), the units are still written, and the cron line that does the
 * same is printed. The unit directory, the probe for systemd and systemctl are injectable, so
 * tests run all of it without touching the machine's systemd.
 */

export interface Scheduler {
  /** Where unit files go (/etc/systemd/system). */
  readonly unitDir: string;
  /** Whether systemd is PID 1: sd_booted()'s test, /run/systemd/system exists (sd_booted(3)). */
  booted(): boolean;
  /** Whether cron can run a line instead (a cron.d directory and a cron daemon). */
  cronAvailable(): boolean;
  systemctl(args: readonly string[]): Promise<{ code: number; output: string }>;
}

export const systemScheduler: Scheduler = {
  unitDir: '/etc/systemd/system',
  booted: () => existsSync('/run/systemd/system'),
  cronAvailable: () => existsSync('/etc/cron.d') && ['/usr/sbin/cron', '/usr/sbin/crond', '/sbin/crond'].some((p) => existsSync(p)),
  systemctl: (args) =>
    new Promise((resolve) => {
      execFile('systemctl', [...args], { timeout: 60_000 }, (error, stdout, stderr) => {
        const code = error ? (typeof (error as NodeJS.ErrnoException).code === 'number' ? Number((error as NodeJS.ErrnoException).code) : 1) : 0;
        resolve({ code, output: `${stdout}${stderr}`.trim() });
      });
    }),
};

export function unitNames(source: string): { service: string; timer: string } {
  return { service: `coldseal-binlog-push-${source}.service`, timer: `coldseal-binlog-push-${source}.timer` };
}

/**
 * One word of ExecStart= as systemd reads it (systemd.service, "Command lines"): double-quoted
 * when it has anything but safe characters, with \ and " escaped; % is a specifier and $ a
 * variable reference, doubled to stay literal.
 */
export function systemdWord(word: string): string {
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_./=:@+,-]+$/.test(literal) ? literal : `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export interface UnitTexts {
  readonly service: string;
  readonly timer: string;
}

/**
 * The two units. OnUnitActiveSec repeats the run every interval after the last one started;
 * since it counts from the service's last activation, which a new timer has none of, OnActiveSec
 * and OnBootSec start the first run. Persistent= only acts on OnCalendar= timers (systemd.timer):
 * it is kept for when an operator adds one; after downtime OnBootSec runs the push within a
 * minute, and each push takes every closed file not yet archived, so nothing missed stays behind.
 * binlog-push takes a lock of its own, and systemd never starts a oneshot service that is still
 * running, so a slow push delays the next instead of overlapping it.
 */
export function binlogPushUnits(args: { source: string; intervalMinutes: number; command: readonly string[] }): UnitTexts {
  const { source, intervalMinutes, command } = args;
  const names = unitNames(source);
  const service = [
    '# Written by coldseal pitr setup; run it again to change it.',
    '[Unit]',
    `Description=coldseal: archive the closed binary logs of source ${source} (pitr binlog-push)`,
    'Wants=network-online.target',
    'After=network-online.target mariadb.service mysql.service',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${command.map(systemdWord).join(' ')}`,
    // A push that hangs (an unreachable S3 endpoint) must not hold the schedule for ever.
    `TimeoutStartSec=${Math.max(10, intervalMinutes * 6)}min`,
    'Nice=5',
    'IOSchedulingClass=best-effort',
    'IOSchedulingPriority=6',
    '',
  ].join('\n');
  const timer = [
    '# Written by coldseal pitr setup; run it again to change it.',
    '[Unit]',
    `Description=coldseal: binlog-push of source ${source} every ${intervalMinutes} min`,
    '',
    '[Timer]',
    'OnActiveSec=30s',
    'OnBootSec=1min',
    `OnUnitActiveSec=${intervalMinutes}min`,
    'AccuracySec=10s',
    'Persistent=true',
    `Unit=${names.service}`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
  return { service, timer };
}

/** The /etc/cron.d line that does what the timer does, for machines without systemd. */
export function cronLine(intervalMinutes: number, command: readonly string[], shellQuote: (w: string) => string): string {
  // cron treats % as a newline unless escaped (crontab(5)).
  return `*/${intervalMinutes} * * * * root ${command.map(shellQuote).join(' ').replace(/%/g, '\\%')}`;
}

export interface InstallOutcome {
  /** Unit files written (absent or different before). */
  readonly written: readonly string[];
  /** systemctl calls made and what they said. */
  readonly systemctl: readonly string[];
  readonly enabled: boolean;
}

async function writeIfChanged(path: string, text: string): Promise<boolean> {
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing === text) return false;
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o644 });
  await rename(temporary, path);
  return true;
}

/** Writes the units; when systemd runs the machine, reloads it and enables and starts the timer. */
export async function installUnits(args: { scheduler: Scheduler; source: string; units: UnitTexts }): Promise<InstallOutcome> {
  const { scheduler, source, units } = args;
  const names = unitNames(source);
  await mkdir(scheduler.unitDir, { recursive: true, mode: 0o755 });
  const written: string[] = [];
  for (const [name, text] of [[names.service, units.service], [names.timer, units.timer]] as const) {
    const path = join(scheduler.unitDir, name);
    if (await writeIfChanged(path, text)) written.push(path);
  }
  if (!scheduler.booted()) return { written, systemctl: [], enabled: false };
  const calls: string[] = [];
  for (const call of [['daemon-reload'], ['enable', '--now', names.timer]]) {
    const result = await scheduler.systemctl(call);
    calls.push(`systemctl ${call.join(' ')}: ${result.code === 0 ? 'ok' : `exit ${result.code}`}${result.output ? ` (${result.output.split('\n')[0]})` : ''}`);
    if (result.code !== 0) throw new Error(`systemctl ${call.join(' ')} failed (exit ${result.code}): ${result.output || 'no output'}`);
  }
  return { written, systemctl: calls, enabled: true };
}
