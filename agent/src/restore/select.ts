import { readFile } from 'node:fs/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { judgeLocation } from '../../../format/backup-judgement';
import { dateOfStamp, manifestKey, parseKey } from '../../../format/layout';
import type { Artifact, Manifest } from '../../../format/manifest';
import { groupParameters } from '../../../format/parameters';
import { encryptionKeyIds, KeyError, readPrivateKey, readPublicKeys, type PrivateKey, type PublicKey } from '../../../runtime/pgp';
import { openManifest, SignedDocumentError } from '../../../runtime/signed-document';
import type { AgentClients } from '../aws';
import { latestOf } from '../catalog/latest';
import { listBackups, storageError, type BackupEntry } from '../catalog/listing';
import type { AgentConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';
import { readParameter, resolvePublicKeys, resolveSecret } from '../secrets';

/** Which backup: latest, a stamp, a time (the last backup at or before it), or an S3 key. */
export interface BackupSelector {
  readonly group: string;
  readonly host?: string;
  readonly source?: string;
  /** "latest" | 20261122T005849Z | 2026-11-22T01:00:00Z | backups/…/….manifest.json (or an artifact key) */
  readonly at: string;
}

/** newest: whether the chosen backup is its source's newest (unknown when --at names a key: nothing is listed). */
export async function resolveManifestKey(s3: S3Client, bucket: string, selector: BackupSelector): Promise<{ key: string; entry?: BackupEntry; newest?: boolean }> {
  const at = selector.at.trim();
  if (at.includes('/')) {
    const parsed = parseKey(at.replace(/^s3:\/\/[^/]+\//, ''));
    if (!parsed || parsed.kind === 'drill-receipt' || parsed.kind === 'wal' || parsed.kind === 'binlog') throw new ColdsealError(EXIT.USAGE, `--at "${at}" is not the key of a backup manifest or artifact`, 'Copy a key from coldseal list');
    return { key: manifestKey(parsed, parsed.stamp) };
  }
  if (!selector.source) throw new ColdsealError(EXIT.USAGE, 'which source? --source is required unless --at names a key', 'Add --source NAME');
  const entries = await listBackups(s3, bucket, { group: selector.group, host: selector.host, source: selector.source });
  if (at === 'latest') {
    const latest = latestOf(entries, { group: selector.group, host: selector.host, source: selector.source });
    return { key: manifestKey(latest, latest.stamp), entry: latest, newest: true };
  }
  let until: Date;
  if (/^\d{8}T\d{6}Z$/.test(at)) until = dateOfStamp(at);
  else {
    until = new Date(at);
    if (Number.isNaN(until.getTime())) throw new ColdsealError(EXIT.USAGE, `--at "${at}" is neither "latest", a stamp (20261122T005849Z), a time (2026-11-22T01:00:00Z) nor a key`, 'See coldseal list for what exists');
  }
  const before = entries.filter((e) => dateOfStamp(e.stamp).getTime() <= until.getTime());
  const chosen = latestOf(before, { group: selector.group, host: selector.host, source: selector.source });
  if (/^\d{8}T\d{6}Z$/.test(at) && chosen.stamp !== at) {
    throw new ColdsealError(EXIT.NOT_FOUND, `no complete backup of "${selector.source}" has the stamp ${at} (the last before it is ${chosen.stamp})`, 'Use --at with a stamp from coldseal list, or a time to take the last backup before it');
  }
  return { key: manifestKey(chosen, chosen.stamp), entry: chosen, newest: chosen.stamp === latestOf(entries, { group: selector.group, host: chosen.host, source: selector.source }).stamp };
}

/**
 * Reads a manifest and proves it: signed by a trusted key of the group, valid against the schema,
 * and describing the place it was found at (a manifest copied to another host's or tier's prefix
 * is refused: its signature is fine but it would lie about what it is).
 */
export async function loadVerifiedManifest(s3: S3Client, bucket: string, key: string, trusted: readonly PublicKey[]): Promise<{ manifest: Manifest; signer: string }> {
  const where = `s3://${bucket}/${key}`;
  let text: string;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = await object.Body!.transformToString('utf8');
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'NoSuchKey' || name === 'NotFound') {
      throw new ColdsealError(EXIT.NOT_FOUND, `manifest ${where} does not exist: that backup was never committed (its upload did not finish) or its manifest was removed`, 'A dump without its signed manifest cannot be trusted; pick another backup (coldseal list)');
    }
    throw storageError(error, `reading ${where}`);
  }
  let opened;
  try {
    opened = await openManifest(text, trusted);
  } catch (error) {
    if (error instanceof SignedDocumentError) {
      throw new ColdsealError(EXIT.INTEGRITY, `signature check failed for ${where}: ${error.message}`, 'Do not restore it: the manifest was altered or signed by a key this group does not trust. Pick another backup, and find out who wrote it');
    }
    throw error;
  }
  const manifest = opened.document;
  for (const judged of judgeLocation(manifest, key)) {
    if (judged.check === 'manifest-location' && judged.verdict === 'fail') {
      throw new ColdsealError(EXIT.INTEGRITY, `location check failed for ${where}: it is signed as ${judged.signedFor}`, 'The manifest was copied from elsewhere; do not trust this location');
    }
    if (judged.check === 'artifact-location') {
      throw new ColdsealError(EXIT.INTEGRITY, `location check failed for ${where}: artifact ${judged.artifact.name} points outside its backup (${judged.key})`);
    }
  }
  return { manifest, signer: opened.signerFingerprint };
}

export function pickArtifact(manifest: Manifest, name: string | undefined, accept: (a: Artifact) => boolean = () => true): Artifact {
  const candidates = manifest.artifacts.filter(accept);
  if (name !== undefined) {
    const found = manifest.artifacts.find((a) => a.name === name);
    if (!found) throw new ColdsealError(EXIT.NOT_FOUND, `the backup holds no artifact "${name}"`, `It holds: ${manifest.artifacts.map((a) => a.name).join(', ')}`);
    return found;
  }
  if (candidates.length === 1) return candidates[0];
  throw new ColdsealError(EXIT.USAGE, `the backup holds ${manifest.artifacts.length} artifacts (${manifest.artifacts.map((a) => `${a.name} [${a.kind}]`).join(', ')})`, 'Say which one with --artifact NAME');
}

/**
 * The signing public keys that are trusted for the group: a file given by the user, else the
 * group's public-keys parameter (the stack writes it; several keys during a rotation), else the
 * public half of the signing key the configuration names (on a host of the group).
 */
export async function loadTrustedKeys(config: AgentConfig, clients: AgentClients, file?: string): Promise<PublicKey[]> {
  try {
    if (file) return await readPublicKeys(await readFile(file, 'utf8'), `signing public key file ${file}`);
    const parameter = groupParameters(config.group, config.parameterPrefix).signingPublicKeys;
    try {
      return await readPublicKeys(await readParameter(clients.ssm, parameter, 'trusted signing keys'), `parameter ${parameter}`);
    } catch (error) {
      if (error instanceof KeyError) throw error;
      try {
        const privateKey = await readPrivateKey(await resolveSecret(clients.ssm, config.signingKey, 'signing key'), 'signing key', process.env.COLDSEAL_KEY_PASSPHRASE);
        return [privateKey.toPublic()];
      } catch {
        throw new ColdsealError(EXIT.KEYS, `no trusted signing key for group ${config.group}: parameter ${parameter} is unreadable (${(error as Error).message}) and the configured signing key is not available here`, 'Give the group\'s signing public key with --signing-public-key FILE');
      }
    }
  } catch (error) {
    if (error instanceof KeyError) throw new ColdsealError(EXIT.KEYS, error.message, 'Give the signing PUBLIC key (.pub.asc) of the group');
    if (error instanceof ColdsealError) throw error;
    throw new ColdsealError(EXIT.KEYS, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/**
 * The recipient private key, from a file or stdin ("-"); its passphrase from
 * COLDSEAL_KEY_PASSPHRASE or a file. Never from argv.
 */
export async function loadPrivateKey(keyArg: string, passphraseFile: string | undefined, stdin: NodeJS.ReadableStream = process.stdin): Promise<PrivateKey> {
  let armored: string;
  const what = keyArg === '-' ? 'the private key on stdin' : `private key ${keyArg}`;
  try {
    if (keyArg === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
      armored = Buffer.concat(chunks).toString('utf8');
    } else armored = await readFile(keyArg, 'utf8');
  } catch (error) {
    throw new ColdsealError(EXIT.KEYS, `cannot read ${what}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'Give the recipient private key file (recipient.key.asc) with --key FILE, or --key - to read it from stdin');
  }
  let passphrase = process.env.COLDSEAL_KEY_PASSPHRASE;
  if (passphraseFile) {
    try {
      passphrase = (await readFile(passphraseFile, 'utf8')).replace(/\r?\n$/, '');
    } catch (error) {
      throw new ColdsealError(EXIT.KEYS, `cannot read passphrase file ${passphraseFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  try {
    return await readPrivateKey(armored, what, passphrase);
  } catch (error) {
    if (error instanceof KeyError) throw new ColdsealError(EXIT.KEYS, error.message, 'Use the recipient private key (recipient.key.asc from coldseal keys generate)');
    throw error;
  }
}

/** The recipients' key ids the configuration names, when they can be read here; undefined otherwise. */
export async function configuredRecipientKeyIds(config: AgentConfig, clients: AgentClients): Promise<string[] | undefined> {
  try {
    return await encryptionKeyIds(await readPublicKeys(await resolvePublicKeys(clients.ssm, config.recipients, 'recipients'), 'recipients'));
  } catch {
    return undefined;
  }
}
