import type { S3Client } from '@aws-sdk/client-s3';
import type { PrivateKey, PublicKey } from '../../../runtime/pgp';
import type { AgentClients } from '../aws';
import { isComplete, listBackups, type BackupEntry } from '../catalog/listing';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';

/**
 * What a point-in-time restore starts from, PostgreSQL's (WAL) or MySQL's (binary logs): one
 * source's backups and log archive in the bucket, and the keys that open and trust them.
 */
export interface LogRestoreSource {
  readonly clients: AgentClients;
  readonly bucket: string;
  readonly log: Log;
  readonly group: string;
  /** Needed when several hosts of the group back up a source of this name (oneHostsBackups). */
  readonly host?: string;
  readonly source: string;
  /** The recipient private key that decrypts. */
  readonly key: PrivateKey;
  /** The signing keys manifests and log records must be signed with. */
  readonly trusted: readonly PublicKey[];
}

/**
 * The complete backups of one source and the host they come from: a source name can be backed up
 * by several hosts of a group, and a point-in-time restore follows one host's log, so several
 * hosts without `host` are refused, naming them.
 */
export async function oneHostsBackups(s3: S3Client, bucket: string, where: { readonly group: string; readonly host?: string; readonly source: string }): Promise<{ host: string; entries: BackupEntry[] }> {
  const entries = (await listBackups(s3, bucket, where)).filter(isComplete);
  const hosts = [...new Set(entries.map((e) => e.host))].sort();
  if (hosts.length > 1) throw new ColdsealError(EXIT.USAGE, `source "${where.source}" of group ${where.group} is backed up by several hosts (${hosts.join(', ')})`, 'Say which one with --host');
  if (hosts.length === 0) throw new ColdsealError(EXIT.NOT_FOUND, `no complete backup of source "${where.source}"${where.host ? ` on host ${where.host}` : ''} in group ${where.group}`, 'List what exists with: coldseal list');
  return { host: hosts[0], entries };
}
