import type { Readable, Transform } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { Artifact, Manifest } from '../../../../format/manifest';
import { ColdsealError, EXIT } from '../../errors';
import type { PgConnection } from '../../db/postgres';
import type { Sink } from '../../pipeline/sink';
import type { DatabaseScript } from '../pg-database';
import type { SafetyDump, SafetyDumpPolicy } from '../safety-dump';

/**
 * A restore target, one file per kind (like backup's sources/): each checks its destination
 * before the long read, asks before replacing, and says how the plaintext goes in, how the restore
 * takes effect after every check and how a failure is undone.
 */
export interface TargetContext {
  readonly manifest: Manifest;
  readonly artifact: Artifact;
  readonly safety: SafetyDumpPolicy;
  /** Asks before replacing `what` (unless --yes); throws when not confirmed. */
  confirmReplace(what: string): Promise<void>;
  /** A new database's statements, from a read of the archive's head ahead of the real pass. */
  readHeadAhead(conn: PgConnection): Promise<DatabaseScript | undefined>;
}

export interface Plan {
  readonly destination: string;
  /** Runs once the plaintext's head is available (before the sink starts); returns the plaintext, whole. */
  readonly fromHead?: (plaintext: Readable) => Promise<Readable>;
  /** Undoes a failed restore (drops a database created for it, removes a staging area or a partial file). */
  readonly undo?: () => Promise<void>;
  /** What the target is after a failure and its undo (`undone`: the undo succeeded), when the plan can say. */
  readonly outcome?: (error: unknown, undone: boolean) => string | undefined;
  readonly safety?: () => Promise<SafetyDump>;
  readonly prepare?: () => Promise<void>;
  /** Where the plaintext goes (unless `file`). */
  readonly sink: () => Sink;
  /** The sink reads zstd's output itself (it reads to the end of its input; no transform, no trailer). */
  readonly direct?: boolean;
  readonly transform?: () => Transform;
  /** The plaintext goes to this file, written by the decompressor itself. */
  readonly file?: { open: () => Promise<FileHandle> };
  /** Runs after every check passed: puts the staged restore into place. */
  readonly finish?: () => Promise<void>;
  readonly listing?: () => string;
}

/**
 * A database target's URL, checked before anything connects: one of its engine's schemes and no
 * password in it (the password comes by `envName` or `fileHint`).
 */
export function parseTargetUrl(text: string, target: { schemes: readonly string[]; engine: string; example: string; envName: string; fileHint: string }): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ColdsealError(EXIT.USAGE, `"${text}" is not a URL`, `Use ${target.example}`);
  }
  if (!target.schemes.includes(url.protocol)) throw new ColdsealError(EXIT.USAGE, `"${url.protocol}" is not a ${target.engine} URL`, `Use ${target.example}`);
  rejectPassword(url, target.envName, target.fileHint);
  return url;
}

export function rejectPassword(url: URL, envName: string, fileHint: string): void {
  if (url.password) {
    throw new ColdsealError(
      EXIT.USAGE,
      `the target URL holds a password: anything on the command line is visible to every user (ps, /proc) and lands in shell history`,
      `Remove it from the URL and give it by ${envName} in the environment or in ${fileHint}`,
    );
  }
}
