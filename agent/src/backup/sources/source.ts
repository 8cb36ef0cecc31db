import { execFile } from 'node:child_process';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SourceLocation } from '../../../../format/layout';
import type { Artifact, Engine, Inventory } from '../../../../format/manifest';
import type { Log } from '../../log';
import { ColdsealError, EXIT } from '../../errors';
import type { ToolNeed } from '../../../../format/host-tools';
import { MissingToolError, missingUnderRunuser } from '../../host-tools';

/**
 * What a source engine hands the pipeline: one dump step per artifact (database, globals,
 * directory tree), each a command with its environment. Secrets travel only in `env` or in 0600
 * files that `cleanup` removes; `args` are safe to record in the manifest and logs.
 */
export type CompletionCheck =
  | { readonly method: 'exit-status' }
  /** The tool writes this trailer near the end of its output; its absence means a truncated dump. */
  | { readonly method: 'marker'; readonly marker: string }
  | { readonly method: 'archive-end' };

export interface DumpStep {
  readonly name: string;
  readonly kind: 'database' | 'globals' | 'directory' | 'cluster';
  readonly contentFormat: 'pg-custom' | 'sql' | 'tar' | 'pg-base-tar';
  /** Extension of the plaintext; the compressor's is appended (e.g. "pgdump" → "pgdump.zst"). */
  readonly extension: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Written to the tool's stdin (names too many for a command line: tar's --files-from=-). Not secret: it may be logged. */
  readonly stdin?: string;
  readonly tool: { readonly name: string; readonly version: string };
  readonly completion: CompletionCheck;
  /**
   * For databases found by listing ("all"): whether it still exists when its turn comes. One dropped
   * during a long backup (a scratch database, say) is skipped with a warning instead of failing
   * every other database of the source.
   */
  readonly stillExists?: () => Promise<boolean>;
  /** Size hint (the database's on-disk size) so the upload's part size fits the dump in 10,000 parts. */
  readonly estimatedBytes?: number;
  /** Non-zero exit codes that still mean a complete dump, with the warning to record (GNU tar's 1). */
  readonly tolerableExitCodes?: ReadonlyMap<number, string>;
  /** What to tell the user when this step fails, by recognizable stderr text. */
  readonly diagnose?: (stderr: string) => { message: string; hint: string } | undefined;
  /**
   * Takes per-table row counts and a schema fingerprint for the manifest. Called just before the
   * dump tool starts; its `args` are appended to the tool's (pg_dump --snapshot=…), and `close` is
   * called once the tool has exited. A failure here is a warning: the dump goes on without inventory.
   */
  readonly inventory?: () => Promise<InventorySession>;
  /**
   * Work beside the tool that the artifact cannot do without (a base backup: the replication slot
   * that keeps its WAL, its backup_label read from the output, the wait for its WAL to be archived).
   * Opened just before the tool starts; unlike the inventory, any failure fails the artifact.
   */
  readonly companion?: (context: CompanionContext) => Promise<StepCompanion>;
}

export interface CompanionContext {
  /** The run's stamp (the base backup's label names it). */
  readonly stamp: string;
  readonly loc: SourceLocation;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly log: Log;
}

/** What a step records in its artifact beyond the common fields. */
export type ArtifactFacts = Pick<Artifact, 'baseBackup' | 'binlogPosition'>;

export interface StepCompanion {
  /** Appended to the tool's arguments (recorded in the manifest: nothing secret). */
  readonly args: readonly string[];
  /** Sees every chunk of the tool's stdout, in order; must not throw (settle reports problems). */
  observe(chunk: Buffer): void;
  /**
   * Called once the tool has exited cleanly and its output passed the completion check, before the
   * upload may complete; throws (a ColdsealError) to fail the artifact.
   */
  settle(tool: { readonly stderr: string }): Promise<ArtifactFacts>;
  /** Releases what it holds; always called, more than once is harmless. */
  close(): Promise<void>;
}

export interface InventorySession {
  readonly args: readonly string[];
  readonly inventory: Promise<Inventory>;
  close(): Promise<void>;
}

export interface PreparedSource {
  readonly engine: { readonly kind: Engine; readonly version: string | null };
  readonly steps: readonly DumpStep[];
  /**
   * Parts of the source refused before anything ran (a base backup of a cluster with tablespaces):
   * the steps are still backed up and committed, and the source is then reported failed with these.
   */
  readonly refused?: readonly Error[];
  /** Removes temporary credential files. Always called, success or not. */
  cleanup(): Promise<void>;
}

/**
 * Runs a short query-like command and returns stdout; failures become a SOURCE error with a hint.
 * A tool that does not exist (not on PATH, not in binDir; under runAs, runuser's status 127) is a
 * MissingToolError with the install line for this host; `need` says what more is known of it.
 */
export function runCapture(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  what: string,
  diagnose?: DumpStep['diagnose'],
  need?: Omit<ToolNeed, 'tool'>,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return reject(new MissingToolError(what, { ...need, tool: command }));
      const underRunuser = command === 'runuser' && (error as { code?: unknown }).code === 127 ? missingUnderRunuser(stderr) : undefined;
      if (underRunuser) return reject(new MissingToolError(what, { ...need, tool: underRunuser }));
      const known = diagnose?.(stderr);
      if (known) return reject(new ColdsealError(EXIT.SOURCE, `${what}: ${known.message}`, known.hint));
      reject(new ColdsealError(EXIT.SOURCE, `${what}: ${firstLines(stderr) || error.message}`));
    });
  });
}

export function firstLines(text: string, lines = 2): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, lines)
    .join(' / ');
}

export function toolVersion(output: string): string {
  return output.trim().split('\n')[0];
}

/** Temporary option-file paths change every run and say nothing useful; keep recorded args stable. */
export function recordableArgs(args: readonly string[]): string[] {
  // --snapshot=<id> names a transaction that no longer exists; inventory.consistency records that it was used.
  return args.filter((a) => !a.startsWith('--snapshot=')).map((a) => (a.startsWith('--defaults-extra-file=') ? '--defaults-extra-file=<0600 option file>' : a));
}

/** "name<sep>bytes" lines, as psql -At or mysql --batch print them, into a size hint per database. */
export function parseSizes(output: string, separator: string): Map<string, number> {
  return new Map(
    output
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [name, size] = line.split(separator);
        return [name, Number(size)] as const;
      }),
  );
}
