import type { Command } from 'commander';
import type { S3Client } from '@aws-sdk/client-s3';
import { manifestKey, parseKey } from '../../../format/layout';
import { isComplete, listBackups } from '../catalog/listing';
import { ColdsealError, EXIT } from '../errors';
import type { Log } from '../log';
import { scratchServers } from '../restore/scratch';
import { configuredRecipientKeyIds, loadPrivateKey, loadTrustedKeys, resolveManifestKey } from '../restore/select';
import { verifyBackup, type BackupVerification, type Check } from '../restore/verify';
import { readClients, readLocation, validateReplicaOptions, type ReplicaOptions } from '../replica';
import { GROUP_FLAG, JSON_FLAG, loadAgentConfig, PASSPHRASE_FILE_FLAG, scratchUrls, SIGNING_PUBLIC_KEY_FLAG, wantsJson, withConfigOptions, withFlags, withReplicaOptions, withScratchOptions, type ConfigOrigin, type GetLog, type KeyOptions, type RunAction, type ScratchOptions, type SelectionOptions } from './options';

export interface VerifyCommandOptions extends ConfigOrigin, ReplicaOptions, SelectionOptions, KeyOptions, ScratchOptions {
  readonly source?: string;
  readonly at?: string;
  readonly all?: boolean;
  readonly deep?: boolean;
}

export function defineVerifyCommand(program: Command, run: RunAction, log: GetLog): void {
  const command = withFlags(
    withReplicaOptions(withConfigOptions(program.command('verify').description('check backups from this machine: signature, completion, recipients and checksum; --deep also test-restores into a scratch database'))),
    { flags: '--source <name>', description: 'the source whose backups to check' },
    { flags: '--host <name>', description: 'the host that backed it up' },
    GROUP_FLAG,
    { flags: '--at <when>', description: 'one backup: latest (default), a stamp, a time or an S3 key' },
    { flags: '--all', description: 'every backup of the source' },
    { flags: '--deep', description: 'decrypt and test-restore into a scratch database (created and dropped), comparing row counts and schema with the manifest' },
    { flags: '--key <file>', description: 'recipient private key for --deep (or - for stdin)' },
    PASSPHRASE_FILE_FLAG,
    SIGNING_PUBLIC_KEY_FLAG,
  );
  withFlags(withScratchOptions(command), JSON_FLAG).action((options: VerifyCommandOptions, command: Command) =>
    run(async () => {
      const results = await runVerifyCommand(options, log());
      console.log(wantsJson(command) ? JSON.stringify(results, null, 2) : formatVerifications(results));
      return results.every((r) => r.ok) ? EXIT.OK : EXIT.INTEGRITY;
    }),
  );
}

export function validateVerifyOptions(options: VerifyCommandOptions): void {
  validateReplicaOptions(options);
  if (options.all && options.at) throw new ColdsealError(EXIT.USAGE, '--all and --at exclude each other', 'Use --all for every backup of the source, --at for one');
  if (options.deep && !options.key) throw new ColdsealError(EXIT.USAGE, '--deep decrypts and test-restores: it needs the recipient private key', 'Add --key FILE');
  if (!options.deep && options.key) throw new ColdsealError(EXIT.USAGE, '--key is only used with --deep', 'Add --deep, or drop --key');
  if (!options.source && !(options.at ?? '').includes('/')) throw new ColdsealError(EXIT.USAGE, 'which backups? --source is required unless --at names a key', 'Add --source NAME');
}

export async function runVerifyCommand(options: VerifyCommandOptions, log: Log): Promise<BackupVerification[]> {
  validateVerifyOptions(options);
  const { config, clients: configured } = await loadAgentConfig(options);
  const location = await readLocation(options, config, configured);
  const clients = readClients(configured, location);
  const bucket = location.bucket;
  const group = options.group ?? config.group;
  const trusted = await loadTrustedKeys(config, clients, options.signingPublicKey);
  const key = options.deep ? await loadPrivateKey(options.key!, options.passphraseFile) : undefined;
  // Each backup to verify, and whether it is its source's newest (held to today's recipients).
  let keys: { key: string; newest: boolean }[];
  if (options.all) {
    const entries = (await listBackups(clients.s3, bucket, { group, host: options.host, source: options.source })).filter(isComplete);
    const hosts = new Set(entries.map((e) => e.host));
    if (hosts.size > 1) throw new ColdsealError(EXIT.USAGE, `source "${options.source}" is backed up by several hosts (${[...hosts].join(', ')})`, 'Say which one with --host');
    if (entries.length === 0) throw new ColdsealError(EXIT.NOT_FOUND, `no complete backup of source "${options.source}" in group ${group}`, 'List what exists with: coldseal list');
    const newest = entries.reduce((a, e) => (e.stamp > a ? e.stamp : a), '');
    keys = entries.map((e) => ({ key: manifestKey(e, e.stamp), newest: e.stamp === newest }));
  } else {
    const resolved = await resolveManifestKey(clients.s3, bucket, { group, host: options.host, source: options.source, at: options.at ?? 'latest' });
    keys = [{ key: resolved.key, newest: resolved.newest ?? (await isNewest(clients.s3, bucket, resolved.key)) }];
  }
  const expectedRecipientKeyIds = await configuredRecipientKeyIds(config, clients);
  const scratch = key ? await scratchServers(config, clients, scratchUrls(options)) : undefined;
  try {
    const results: BackupVerification[] = [];
    for (const k of keys) {
      results.push(await verifyBackup(k.key, { clients, bucket, log, trusted, expectedRecipientKeyIds, newest: k.newest, objectLock: config.objectLock, deep: key && scratch ? { key, scratch: scratch.servers } : undefined }));
    }
    return results;
  } finally {
    await scratch?.cleanup();
  }
}

/**
 * Whether the backup at this manifest key is the newest of its source (a listing of the source);
 * true when the listing is not allowed here, which holds it to today's recipients as before.
 */
async function isNewest(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  const parsed = parseKey(key);
  if (!parsed || parsed.kind !== 'manifest') return true;
  try {
    const entries = (await listBackups(s3, bucket, { group: parsed.group, host: parsed.host, source: parsed.source })).filter(isComplete);
    return entries.every((e) => e.stamp <= parsed.stamp);
  } catch {
    return true;
  }
}

const mark = (c: Check): string => (!c.ok ? 'FAIL' : c.skipped ? 'skip' : c.warn ? 'WARN' : 'ok  ');

export function formatVerifications(results: readonly BackupVerification[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const warned = [...r.checks, ...r.artifacts.flatMap((a) => a.checks)].some((c) => c.warn);
    lines.push(`${!r.ok ? 'FAILED' : warned ? 'WARN  ' : 'OK    '}  ${r.manifestKey}`);
    for (const c of r.checks) lines.push(`  ${mark(c)}  ${c.name}: ${c.detail}`);
    for (const a of r.artifacts) {
      lines.push(`  ${a.artifact}:`);
      for (const c of a.checks) lines.push(`    ${mark(c)}  ${c.name}: ${c.detail}`);
    }
  }
  return lines.join('\n');
}
