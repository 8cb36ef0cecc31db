import { readdirSync, readFileSync } from 'node:fs';

/**
 * Peak memory and CPU of processes the bench does not start itself (PostgreSQL runs
 * archive_command and restore_command; pgBackRest forks its async workers), read from /proc.
 *
 * Every tick reads each process's command line, parent, CPU ticks and VmHWM (the high-water mark
 * of its resident set, kept by the kernel: a peak between two ticks is still seen, as long as the
 * process is alive at one tick). A process gets a label when `label(argv)` gives one, or the label
 * of its nearest labelled ancestor (the agent's zstd and gpg children count for the agent). What
 * is missed: processes that live less than one tick, and the CPU a process spends after its last
 * tick (at most one tick each): the CPU figures are a lower bound.
 */
export interface ProcessUsage {
  /** Largest VmHWM of one process with this label. */
  peakRssMb: number;
  /** Largest sum of VmRSS of all processes with this label at one tick. */
  peakTotalRssMb: number;
  /** CPU seconds (user + system) of the labelled processes, as last seen. */
  cpuSeconds: number;
  /** Distinct processes seen. */
  processes: number;
  /** The program (argv[0]'s base name) of the process with the largest VmHWM. */
  peakProgram: string;
  /** CPU seconds by program (node, zstd, gpg…): where the time went. */
  cpuByProgram: Record<string, number>;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux (getconf CLK_TCK)

interface Seen {
  label: string;
  program: string;
  cpuTicks: number;
  hwmKb: number;
}

export class ProcSampler {
  private readonly seen = new Map<string, Seen>(); // key: pid + start time (pids are reused)
  private readonly peakTotal = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly label: (argv: readonly string[]) => string | undefined,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    return this;
  }

  /** The usage so far; sampling stops (a second call only reads again). */
  stop(): Map<string, ProcessUsage> {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.tick();
    }
    const usage = new Map<string, ProcessUsage>();
    for (const s of this.seen.values()) {
      const u = usage.get(s.label) ?? { peakRssMb: 0, peakTotalRssMb: (this.peakTotal.get(s.label) ?? 0) / 1024, cpuSeconds: 0, processes: 0, peakProgram: '', cpuByProgram: {} };
      if (s.hwmKb / 1024 > u.peakRssMb) {
        u.peakRssMb = s.hwmKb / 1024;
        u.peakProgram = s.program;
      }
      u.cpuSeconds += s.cpuTicks / TICKS_PER_SECOND;
      u.cpuByProgram[s.program] = (u.cpuByProgram[s.program] ?? 0) + s.cpuTicks / TICKS_PER_SECOND;
      u.processes++;
      usage.set(s.label, u);
    }
    return usage;
  }

  private tick(): void {
    const procs = new Map<number, { ppid: number; key: string; argv: string[]; cpu: number; hwm: number; rss: number }>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
        // The command name in parentheses may hold spaces and parentheses: fields start after the last ')'.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').filter(Boolean);
        if (argv.length === 0) continue; // kernel thread or zombie
        const status = readFileSync(`/proc/${entry}/status`, 'latin1');
        const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
        procs.set(Number(entry), { ppid: Number(fields[1]), key: `${entry}@${fields[19]}`, argv, cpu: Number(fields[11]) + Number(fields[12]), hwm: kb('VmHWM'), rss: kb('VmRSS') });
      } catch {
        // gone between readdir and read
      }
    }
    const labels = new Map<number, string | undefined>();
    const labelOf = (pid: number, depth = 0): string | undefined => {
      if (labels.has(pid)) return labels.get(pid);
      const p = procs.get(pid);
      const l = p ? (this.label(p.argv) ?? (depth < 8 ? labelOf(p.ppid, depth + 1) : undefined)) : undefined;
      labels.set(pid, l);
      return l;
    };
    const totals = new Map<string, number>();
    for (const [pid, p] of procs) {
      const l = labelOf(pid);
      if (!l) continue;
      totals.set(l, (totals.get(l) ?? 0) + p.rss);
      const s = this.seen.get(p.key);
      if (s) {
        s.cpuTicks = Math.max(s.cpuTicks, p.cpu);
        // A forked shell that exec()s (aws, gzip) keeps its pid: the peak belongs to the program it became.
        if (p.hwm > s.hwmKb) s.program = p.argv[0].split('/').pop() ?? p.argv[0];
        s.hwmKb = Math.max(s.hwmKb, p.hwm);
      } else this.seen.set(p.key, { label: l, program: p.argv[0].split('/').pop() ?? p.argv[0], cpuTicks: p.cpu, hwmKb: p.hwm });
    }
    for (const [l, total] of totals) this.peakTotal.set(l, Math.max(this.peakTotal.get(l) ?? 0, total));
  }
}

/** Seconds of CPU the whole machine spent busy (all cores, /proc/stat), to see what else took the cores. */
export function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = cpu[3] + cpu[4];
  return (cpu.reduce((a, b) => a + b, 0) - idle) / TICKS_PER_SECOND;
}

/** CPU seconds of one process (e.g. moto_server) so far, children it waited for included. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}
