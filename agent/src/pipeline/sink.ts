import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { ColdsealError, EXIT } from '../errors';
import { installAdvice } from '../../../format/host-tools';
import { hostOsRelease } from '../host-tools';
import { keepTail } from '../process-output';

/**
 * Where plaintext goes: pg_restore, mysql, tar, or a file. Each sink is a child process with its
 * stdin open for the plaintext; `done` settles when it has exited (rejecting with its message).
 */
export interface Sink {
  readonly input: Writable;
  readonly done: Promise<void>;
  kill(): void;
}

export interface ToolRun {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

/** Spawns a tool that reads stdin; `what` names it in errors. Stdout is kept (for --list) when asked. */
export function toolSink(run: ToolRun, what: string, options: { keepStdout?: boolean; earlyExitOk?: boolean; drain?: boolean } = {}): Sink & { stdout(): string } {
  // drain: a tool that succeeds before the end of its input (pg_restore of some tables, tar at its
  // end record) must not break the pipe of a decompressor writing into it directly, which would
  // then fail instead of checking the rest: the shell reads what is left (names stay in "$@").
  const [command, args] = options.drain ? ['/bin/sh', ['-c', '"$0" "$@"; s=$?; if [ $s -eq 0 ]; then cat > /dev/null; fi; exit $s', run.command, ...run.args]] : [run.command, [...run.args]];
  const child = spawn(command, args, { env: { ...process.env, ...run.env }, stdio: ['pipe', options.keepStdout ? 'pipe' : 'ignore', 'pipe'] });
  let stdout = '';
  const stderr = keepTail(child.stderr!, 16384);
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stdin!.on('error', () => undefined);
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new ColdsealError(EXIT.FAILURE, `${what}: ${run.command} could not be started (${error.message})`, (error as NodeJS.ErrnoException).code === 'ENOENT' ? installAdvice(hostOsRelease(), { tool: run.command }) : undefined)));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      if (options.drain && code === 127) return reject(new ColdsealError(EXIT.FAILURE, `${what}: ${run.command} could not be started (not found)`, installAdvice(hostOsRelease(), { tool: run.command })));
      const lines = stderr().trim().split('\n').filter((l) => !/^\s*$/.test(l));
      const firstError = lines.find((l) => /error|ERROR|fatal|FATAL|Cannot|cannot/.test(l)) ?? lines[0] ?? '';
      // No hint: what the failure left behind is for the caller to say (a restore undoes it and says so).
      reject(new ColdsealError(EXIT.FAILURE, `${what} failed (${signal ?? `status ${code}`}): ${firstError.trim().slice(0, 600)}`));
    });
  });
  done.catch(() => undefined);
  return { input: child.stdin!, done, kill: () => child.kill('SIGKILL'), stdout: () => stdout };
}

/** Runs a tool to completion (no stdin payload) and returns stdout. */
export async function runTool(run: ToolRun, what: string, input: string | Buffer = ''): Promise<string> {
  const sink = toolSink(run, what, { keepStdout: true });
  sink.input.end(input);
  await sink.done;
  return sink.stdout();
}

/** A 0600 file, created new, as a sink (removed when the write fails). */
export function fileSink(path: string): Sink {
  const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  const done = new Promise<void>((resolvePromise, reject) => {
    out.once('finish', () => resolvePromise());
    out.once('error', (error) => reject(new ColdsealError(EXIT.FAILURE, `writing ${path} failed: ${error.message}`)));
  });
  done.catch(() => rm(path, { force: true }));
  return { input: out, done, kill: () => out.destroy(new Error('stopped')) };
}
