import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { CreateBucketCommand, PutObjectCommand, PutObjectLockConfigurationCommand, S3Client, type StorageClass } from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { artifactKey, drillReceiptKey, manifestKey, stampOf, type Tier } from '../../format/layout';
import type { DrillReceipt, Manifest } from '../../format/manifest';
import { groupParameters } from '../../format/parameters';
import { DigestStream } from '../../runtime/digest';
import { encryptionKeyIds, fingerprintOf, generateKeyPair, PGP_CONFIG, readPrivateKey, readPublicKeys, type GeneratedKey, type PrivateKey } from '../../runtime/pgp';
import { signDrillReceipt, signManifest } from '../../runtime/signed-document';
import { settingsEnvironment } from '../../format/lambda-settings';
import type { Clock } from '../../lambdas/shared/ports';
import { newMotoAccount, uniqueName, type MotoAccount } from '../harness/aws';
import { createAlertInbox, type Alert, type AlertInbox } from '../../local-system/alerts';

/**
 * Backups built with the real format module (keys, OpenPGP encryption, DigestStream, signed
 * manifests) and stored in moto in the layout of format/layout.ts: the same contract the agent
 * writes to, without needing the agent.
 */

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const PREFIX = '/coldseal-test';

export class TestClock implements Clock {
  constructor(public ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface GroupKeysFixture {
  readonly signing: GeneratedKey;
  readonly signingKey: PrivateKey;
  readonly recipient: GeneratedKey;
}

export interface World {
  readonly account: MotoAccount;
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly bucket: string;
  readonly topicArn: string;
  /** The SQS subscription of the topic: what the functions published. */
  readonly inbox: AlertInbox;
  readonly keys: GroupKeysFixture;
  readonly env: Record<string, string>;
  readonly clock: TestClock;
}

let cachedKeys: Promise<GroupKeysFixture> | undefined;
export async function groupKeys(): Promise<GroupKeysFixture> {
  cachedKeys ??= (async () => {
    const signing = await generateKeyPair({ name: 'coldseal group web signing' }, undefined, { signOnly: true });
    const recipient = await generateKeyPair({ name: 'coldseal escrow' });
    return { signing, signingKey: await readPrivateKey(signing.privateKey, 'test signing key'), recipient };
  })();
  return cachedKeys;
}

export const GROUPS = [{ name: 'web', rpoHours: 26, sources: ['pg'], hosts: ['web-1', 'web-2'], retentionDays: { daily: 35 }, drillMaxAgeDays: 8 }];

export async function newWorld(options: { groups?: unknown[]; extraEnv?: Record<string, string>; account?: MotoAccount } = {}): Promise<World> {
  const account = options.account ?? (await newMotoAccount());
  const config = account.clientConfig;
  const { forcePathStyle: _f, ...plain } = config;
  const s3 = new S3Client(config);
  const ssm = new SSMClient(plain);
  const bucket = uniqueName('coldseal-data');
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  await s3.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }));
  const inbox = await createAlertInbox(account, { topicName: 'coldseal-alerts' });
  const topicArn = inbox.topicArn;
  const keys = await groupKeys();
  const names = groupParameters('web', PREFIX);
  await ssm.send(new PutParameterCommand({ Name: names.signingPublicKeys, Type: 'String', Value: keys.signing.publicKey, Overwrite: true }));
  await ssm.send(new PutParameterCommand({ Name: names.recipients, Type: 'String', Value: keys.recipient.publicKey, Overwrite: true }));
  const env = settingsEnvironment({ bucket, topicArn, parameterPrefix: PREFIX, groups: (options.groups ?? GROUPS) as never, documentName: 'coldseal-backup', extra: options.extraEnv as never });
  // Whole seconds: stamps have second precision and tests compare ages exactly.
  const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
  return { account, s3, ssm, bucket, topicArn, inbox, keys, env, clock };
}

export interface BackupSpec {
  host: string;
  source?: string;
  group?: string;
  tier?: Tier;
  finishedAt: Date;
  payloadBytes?: number;
  durationSeconds?: number;
  recipients?: string[];
  signingKey?: PrivateKey;
  partSize?: number;
  storageClass?: StorageClass;
  lock?: boolean;
  exitCode?: number;
  empty?: boolean;
}

export interface StoredBackup {
  readonly manifestKey: string;
  readonly artifactKey: string;
  readonly manifest: Manifest;
  readonly ciphertext: Uint8Array;
  readonly manifestText: string;
}

export async function encryptTo(payload: Uint8Array, armoredRecipients: string[]): Promise<Uint8Array> {
  const encryptionKeys = (await Promise.all(armoredRecipients.map((a) => readPublicKeys(a, 'recipient')))).flat();
  return (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: payload }), encryptionKeys, format: 'binary', config: PGP_CONFIG })) as Uint8Array;
}

export async function buildBackup(world: World, spec: BackupSpec): Promise<StoredBackup> {
  const loc = { tier: spec.tier ?? 'daily', group: spec.group ?? 'web', host: spec.host, source: spec.source ?? 'pg' } as const;
  const stamp = stampOf(spec.finishedAt);
  const payload = spec.empty ? new Uint8Array(0) : randomBytes(spec.payloadBytes ?? 20_000);
  const recipients = spec.recipients ?? [world.keys.recipient.publicKey];
  const recipientKeys = (await Promise.all(recipients.map((a) => readPublicKeys(a, 'recipient')))).flat();
  const ciphertext = await encryptTo(payload, recipients);
  const digest = new DigestStream(spec.partSize ?? 8 * 1024);
  digest.update(ciphertext);
  const d = digest.finish();
  const key = artifactKey(loc, stamp, 'app', 'dump');
  const startedAt = new Date(spec.finishedAt.getTime() - (spec.durationSeconds ?? 120) * 1000).toISOString();
  const signingKey = spec.signingKey ?? world.keys.signingKey;
  const manifest: Manifest = {
    formatVersion: 1,
    ...loc,
    stamp,
    engine: { kind: 'postgres', version: '16.4' },
    startedAt,
    finishedAt: spec.finishedAt.toISOString(),
    compression: { algorithm: 'none', level: 0, implementation: 'none' },
    encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', recipientFingerprints: recipientKeys.map(fingerprintOf), recipientKeyIds: await encryptionKeyIds(recipientKeys) },
    signingKeyFingerprint: fingerprintOf(signingKey),
    artifacts: [
      {
        name: 'app',
        kind: 'database',
        key,
        contentFormat: 'pg-custom',
        tool: { name: 'pg_dump', version: '16.4', args: ['--format=custom', '--dbname=app'] },
        exitCode: spec.exitCode ?? 0,
        warnings: [],
        completion: { method: 'exit-status', detail: 'pg_dump exited 0' },
        startedAt,
        finishedAt: spec.finishedAt.toISOString(),
        uncompressedBytes: payload.length,
        compressedBytes: payload.length,
        ciphertextBytes: d.bytes,
        ciphertextSha256: d.sha256,
        parts: { size: d.partSize, sha256: d.partSha256 },
      },
    ],
    agent: { version: '0.1.0', node: process.version },
  };
  const manifestText = await signManifest(manifest, signingKey);
  return { manifestKey: manifestKey(loc, stamp), artifactKey: key, manifest, ciphertext, manifestText };
}

export async function putObject(world: World, key: string, body: Uint8Array | string, options: { lock?: boolean; storageClass?: StorageClass } = {}): Promise<void> {
  const lock = options.lock ?? true;
  await world.s3.send(
    new PutObjectCommand({
      Bucket: world.bucket,
      Key: key,
      Body: body,
      StorageClass: options.storageClass,
      ObjectLockMode: lock ? 'GOVERNANCE' : undefined,
      ObjectLockRetainUntilDate: lock ? new Date(world.clock.ms + 400 * DAY) : undefined,
    }),
  );
}

export async function storeBackup(world: World, backup: StoredBackup, spec: Pick<BackupSpec, 'storageClass' | 'lock'> = {}, withManifest = true): Promise<StoredBackup> {
  await putObject(world, backup.artifactKey, backup.ciphertext, spec);
  if (withManifest) await putObject(world, backup.manifestKey, backup.manifestText, { lock: spec.lock });
  return backup;
}

export async function putBackup(world: World, spec: BackupSpec): Promise<StoredBackup> {
  return storeBackup(world, await buildBackup(world, spec), spec);
}

/** A healthy fleet: every expected host has `days` daily backups, the newest an hour old. */
export async function healthyFleet(
  world: World,
  options: { hosts?: string[]; days?: number; drill?: boolean; sizeOf?: (daysAgo: number, host: string) => number; durationOf?: (daysAgo: number, host: string) => number } = {},
): Promise<Map<string, StoredBackup[]>> {
  const byHost = new Map<string, StoredBackup[]>();
  const now = world.clock.ms;
  for (const host of options.hosts ?? ['web-1', 'web-2']) {
    const list: StoredBackup[] = [];
    for (let k = (options.days ?? 6) - 1; k >= 0; k--) {
      list.push(await putBackup(world, { host, finishedAt: new Date(now - HOUR - k * DAY), payloadBytes: options.sizeOf?.(k, host) ?? 20_000 + k * 100, durationSeconds: options.durationOf?.(k, host) ?? 100 + k }));
    }
    byHost.set(host, list);
  }
  if (options.drill ?? true) await putDrill(world, { host: 'web-1', finishedAt: new Date(now - 2 * DAY), ok: true });
  return byHost;
}

export async function putDrill(world: World, spec: { host: string; finishedAt: Date; ok: boolean; signingKey?: PrivateKey; readFrom?: DrillReceipt['readFrom']; results?: DrillReceipt['results'] }): Promise<string> {
  const stamp = stampOf(spec.finishedAt);
  const signingKey = spec.signingKey ?? world.keys.signingKey;
  const receipt: DrillReceipt = {
    formatVersion: 1,
    group: 'web',
    host: spec.host,
    stamp,
    startedAt: new Date(spec.finishedAt.getTime() - 60_000).toISOString(),
    finishedAt: spec.finishedAt.toISOString(),
    ok: spec.ok,
    results: spec.results ?? [
      {
        manifestKey: 'backups/daily/web/web-1/pg/x.manifest.json',
        source: 'pg',
        artifact: 'app',
        ok: spec.ok,
        durationMs: 4200,
        checks: [
          { name: 'pg_restore exit status', ok: true, detail: '0' },
          { name: 'row counts', ok: spec.ok, detail: spec.ok ? '12 tables match' : 'public.orders: 0 rows restored, 1234 dumped' },
        ],
      },
    ],
    signingKeyFingerprint: fingerprintOf(signingKey),
    agent: { version: '0.1.0', node: process.version },
    ...(spec.readFrom ? { readFrom: spec.readFrom } : {}),
  };
  const key = drillReceiptKey('web', spec.host, stamp);
  await putObject(world, key, await signDrillReceipt(receipt, signingKey), { lock: false });
  return key;
}

/** Everything published to the topic since the last call, read from the SQS subscription. */
export function drainInbox(world: World): Promise<Alert[]> {
  return world.inbox.receive();
}
