import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { walObjectKey } from '../../format/layout';
import type { AgentSandbox } from './agent';
import type { PgCluster } from './pg-cluster';

/** Runs a command as the postgres user (the scratch clusters' owner). */
export function asPostgres(command: string, args: readonly string[]): string {
  return execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

export interface WalArchiveStub {
  /** Makes archive_command fail (exit 1, as when S3 is unreachable) until repair(). */
  break(): void;
  repair(): void;
}

/**
 * A test-only archive_command for tests of what waits on the WAL archive (a base backup waiting for
 * its last segment) that need archiving broken and repaired at will: each WAL file is PUT as is to
 * the sandbox's bucket under its WAL object key, by curl with SigV4 (moto checks no signature, but
 * maps the access key to the sandbox's account). Not the agent's archive-push (no encryption, no
 * signed record): that one has its own tests. Turns archiving on with ALTER SYSTEM and restarts the
 * scratch cluster (archive_mode needs a restart). The cluster stays on timeline 1 here.
 */
export function archiveToMoto(cluster: PgCluster, sandbox: AgentSandbox, source: string): WalArchiveStub {
  const placeholder = '000000010000000000000001';
  const key = walObjectKey('testgroup', 'testhost', source, placeholder).replace(placeholder, '$2');
  const flag = join(cluster.socketDir, 'archive-broken');
  const { accessKeyId, secretAccessKey } = sandbox.account.credentials;
  const script = join(cluster.socketDir, 'archive.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      '# $1 = %p (path from the data directory), $2 = %f (file name)',
      `if [ -e '${flag}' ]; then echo "test archive_command: broken on purpose" >&2; exit 1; fi`,
      `exec curl -sSf --aws-sigv4 'aws:amz:${sandbox.account.clientConfig.region}:s3' --user '${accessKeyId}:${secretAccessKey}' -T "$1" "${sandbox.account.clientConfig.endpoint}/${sandbox.bucket}/${key}"`,
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  cluster.psql('postgres', 'alter system set archive_mode = on');
  cluster.psql('postgres', `alter system set archive_command = '${script} "%p" "%f"'`);
  cluster.restart();
  return {
    break: () => writeFileSync(flag, ''),
    repair: () => (existsSync(flag) ? rmSync(flag) : undefined),
  };
}
