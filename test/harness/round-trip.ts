import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentConfigInput } from '../../format/agent-config';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox, type AgentSandbox } from './agent';
import { createMysqlFixture, createPgFixture, dropMysqlDatabase, dropPgDatabase, uniqueDbName } from '../../local-system/databases';

/**
 * What the backup→restore round-trip files set up alike: a sandbox (a moto account of its own, a
 * bucket, fresh keys), the fixture databases (local-system/databases.ts) and files tree a backup is made
 * of, the backup itself, and in after() the removal of all of it and of what the tests added
 * (restore targets, output directories).
 */
export interface RoundTrip {
  readonly sandbox: AgentSandbox;
  /** createPgFixture under this name (rows of its bulk table), dropped by cleanup(); returns the name. */
  pgFixture(name: string, rows: number): Promise<string>;
  /** createMysqlFixture under this name, dropped by cleanup(); returns the name. */
  mysqlFixture(name: string, rows: number): Promise<string>;
  /** A fresh database name for the test to create (a restore target), dropped by cleanup(). */
  newPgDatabase(prefix: string): string;
  newMysqlDatabase(prefix: string): string;
  /** A new temporary directory, removed by cleanup(). */
  tempDir(prefix: string): string;
  /** A new temporary directory holding the files tree (see writeFilesTree), removed by cleanup(). */
  filesTree(prefix: string, extra?: ExtraFiles): string;
  /** Writes the configuration and backs it up as a daily run, asserting that it succeeded; returns the configuration file. */
  backup(config: AgentConfigInput, args?: string[]): Promise<string>;
  cleanup(): Promise<void>;
}

/** Files at the top of the tree: name → content, or content and mode. */
export type ExtraFiles = Readonly<Record<string, string | Buffer | { readonly content: string; readonly mode: number }>>;

/**
 * A files tree that breaks naive backups: an empty directory, names with spaces and unicode, a
 * 0600 file, a symlink to a directory and a 0750 directory, plus `extra` files at its top.
 */
export function writeFilesTree(root: string, extra: ExtraFiles = {}): void {
  mkdirSync(join(root, 'empty dir'));
  mkdirSync(join(root, 'sub', 'déjà vu'), { recursive: true });
  writeFileSync(join(root, 'sub', 'déjà vu', 'naïve file ✓.txt'), 'hello 😀\n');
  writeFileSync(join(root, 'secret.conf'), 'x=1\n', { mode: 0o600 });
  for (const [name, file] of Object.entries(extra)) {
    if (typeof file === 'string' || Buffer.isBuffer(file)) writeFileSync(join(root, name), file);
    else writeFileSync(join(root, name), file.content, { mode: file.mode });
  }
  symlinkSync('sub/déjà vu', join(root, 'link to dir'));
  chmodSync(join(root, 'sub'), 0o750);
}

export async function createRoundTrip(): Promise<RoundTrip> {
  const sandbox = await createAgentSandbox();
  const pgDatabases: string[] = [];
  const mysqlDatabases: string[] = [];
  const dirs: string[] = [];
  const tempDir = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  const named = (list: string[], name: string) => {
    list.push(name);
    return name;
  };
  return {
    sandbox,
    pgFixture: async (name, rows) => {
      await createPgFixture(named(pgDatabases, name), rows);
      return name;
    },
    mysqlFixture: async (name, rows) => {
      await createMysqlFixture(named(mysqlDatabases, name), rows);
      return name;
    },
    newPgDatabase: (prefix) => named(pgDatabases, uniqueDbName(prefix)),
    newMysqlDatabase: (prefix) => named(mysqlDatabases, uniqueDbName(prefix)),
    tempDir,
    filesTree(prefix, extra) {
      const root = tempDir(prefix);
      writeFilesTree(root, extra);
      return root;
    },
    async backup(config, args = []) {
      const file = sandbox.writeConfig(config);
      const result = await sandbox.runCli(['backup', '--config', file, '--tier', 'daily', ...args]);
      assert.equal(result.code, EXIT.OK, result.log);
      return file;
    },
    async cleanup() {
      await Promise.all([...pgDatabases.map(dropPgDatabase), ...mysqlDatabases.map(dropMysqlDatabase)]);
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}
