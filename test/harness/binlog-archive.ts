import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { canonicalGtidState, formatMariadbGtid, mariadbStateAfter, parseMariadbGtid, parseMariadbGtidList } from '../../format/binlog';
import { BINLOG_RECORD_FORMAT_VERSION, type BinlogRecord } from '../../format/binlog-record';
import { artifactKey, binlogObjectKey, manifestKey, stampOf } from '../../format/layout';
import type { BinlogPositionRecord, Manifest } from '../../format/manifest';
import { signBinlogRecord } from '../../runtime/binlog-record';
import { DigestStream } from '../../runtime/digest';
import { encryptionKeyIds, fingerprintOf, PGP_CONFIG, readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { signManifest } from '../../runtime/signed-document';
import type { AgentSandbox } from './agent';
import type { BinlogSource } from './binlog-source';

/**
 * Binary log objects and dump manifests in the archive contract (format/binlog-record.ts,
 * format/manifest.ts binlogPosition), written the way `coldseal pitr binlog-push` and a PITR
 * source's `coldseal backup` write them: for restore tests that must not depend on those commands.
 * The record's fields are read from the file with mariadb-binlog (TZ=UTC).
 */
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** The record fields a binary log file gives (everything but the sealing). */
export function describeBinlogFile(path: string): Pick<BinlogRecord, 'binlogFile' | 'flavor' | 'serverVersion' | 'serverId' | 'gtidStart' | 'gtidEnd' | 'openedAt' | 'closedAt' | 'endsWith' | 'transactions' | 'firstCommitAt' | 'lastCommitAt'> {
  const text = execFileSync('mariadb-binlog', ['--no-defaults', '--base64-output=never', '--skip-print-row-count', path], { env: { ...process.env, TZ: 'UTC' }, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] }).toString('latin1');
  const headers = [...text.matchAll(/^#(\d{2})(\d{2})(\d{2}) +(\d{1,2}):(\d{2}):(\d{2}) server id (\d+) +end_log_pos \d+ .*?\t(.*)$/gm)];
  const iso = (m: RegExpMatchArray) => `20${m[1]}-${m[2]}-${m[3]}T${m[4].padStart(2, '0')}:${m[5]}:${m[6]}.000Z`;
  const start = /server v (\S+)/.exec(headers[0][8])![1];
  const list = /Gtid list \[([^\]]*)\]/.exec(text)?.[1] ?? '';
  let state = parseMariadbGtidList(list.replace(/\s/g, ''));
  const commits: string[] = [];
  for (const h of headers) {
    const g = /^GTID (\d+-\d+-\d+)/.exec(h[8]);
    if (g) {
      state = mariadbStateAfter(state, parseMariadbGtid(g[1]));
      commits.push(iso(h));
    }
  }
  const last = headers[headers.length - 1];
  return {
    binlogFile: path.split('/').pop()!,
    flavor: 'mariadb',
    serverVersion: start.slice(0, 60),
    serverId: Number(headers[0][7]),
    gtidStart: canonicalGtidState(list.replace(/\s/g, ''), 'mariadb'),
    gtidEnd: canonicalGtidState(state.map(formatMariadbGtid).join(','), 'mariadb'),
    openedAt: iso(headers[0]),
    closedAt: iso(last),
    endsWith: /^Stop/.test(last[8]) ? 'stop' : 'rotate',
    transactions: commits.length,
    firstCommitAt: commits[0] ?? null,
    lastCommitAt: commits[commits.length - 1] ?? null,
  };
}

export async function sealBinlog(sandbox: AgentSandbox, source: string, path: string): Promise<{ body: Uint8Array; metadata: Record<string, string>; record: BinlogRecord }> {
  const plaintext = readFileSync(path);
  const compressed = execFileSync('zstd', ['-3', '-c', '-q'], { input: plaintext, maxBuffer: 1 << 30 });
  const recipients = await readPublicKeys(sandbox.recipient.publicKey, 'recipient');
  const body = (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: compressed }), encryptionKeys: recipients, format: 'binary', config: PGP_CONFIG })) as Uint8Array;
  const signingKey = await readPrivateKey(sandbox.signing.privateKey, 'test signing key');
  const record: BinlogRecord = {
    formatVersion: BINLOG_RECORD_FORMAT_VERSION,
    kind: 'binlog',
    group: 'testgroup',
    host: 'testhost',
    source,
    ...describeBinlogFile(path),
    plaintextBytes: plaintext.length,
    plaintextSha256: sha256(plaintext),
    ciphertextBytes: body.length,
    ciphertextSha256: sha256(body),
    compression: 'zstd',
    recipientKeyIds: await encryptionKeyIds(recipients),
    signingKeyFingerprint: fingerprintOf(signingKey),
    archivedAt: new Date().toISOString(),
    agentVersion: 'test-harness',
  };
  return { body, metadata: await signBinlogRecord(record, signingKey), record };
}

/** FLUSH BINARY LOGS, then every closed file not archived yet; returns the names archived. */
export async function archiveClosedBinlogs(source: BinlogSource, archived: Set<string> = new Set()): Promise<string[]> {
  source.flush();
  const files = source.server.sql('SHOW BINARY LOGS').split('\n').map((l) => l.split('\t')[0]);
  const closed = files.slice(0, -1).filter((f) => !archived.has(f));
  for (const file of closed) {
    const { body, metadata } = await sealBinlog(source.sandbox, source.name, join(source.server.binlogDir, file));
    const key = binlogObjectKey('testgroup', 'testhost', source.name, file);
    await source.sandbox.s3.send(new PutObjectCommand({ Bucket: source.sandbox.bucket, Key: key, Body: body, Metadata: metadata, IfNoneMatch: '*' }));
    archived.add(file);
  }
  return closed;
}

/**
 * A committed dump of `database` with its binary log position (mariadb-dump --single-transaction
 * --master-data=2 --gtid), as a PITR source's backup makes it. Returns the manifest key.
 */
export async function putDumpWithPosition(source: BinlogSource, database = 'shop'): Promise<{ manifestKey: string; position: BinlogPositionRecord }> {
  const sandbox = source.sandbox;
  const startedAt = new Date();
  const sql = execFileSync('mariadb-dump', ['--no-defaults', '-uroot', `--socket=${source.server.socket}`, '--single-transaction', '--master-data=2', '--gtid', '--routines', '--triggers', '--events', '--hex-blob', '--default-character-set=utf8mb4', '--add-drop-database', '--databases', database], { maxBuffer: 1 << 30 });
  const readAt = new Date().toISOString();
  const head = sql.subarray(0, 4096).toString('utf8');
  const change = /CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)/.exec(head)!;
  const gtid = /SET GLOBAL gtid_slave_pos='([^']*)'/.exec(head)?.[1] ?? '';
  const position: BinlogPositionRecord = { file: change[1], position: Number(change[2]), gtid: canonicalGtidState(gtid, 'mariadb'), flavor: 'mariadb', readAt };
  const compressed = execFileSync('zstd', ['-3', '-c', '-q'], { input: sql, maxBuffer: 1 << 30 });
  const recipients = await readPublicKeys(sandbox.recipient.publicKey, 'recipient');
  const ciphertext = (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: compressed }), encryptionKeys: recipients, format: 'binary', config: PGP_CONFIG })) as Uint8Array;
  const digest = new DigestStream(8 * 1024 * 1024);
  digest.update(ciphertext);
  const d = digest.finish();
  const loc = { tier: 'daily', group: 'testgroup', host: 'testhost', source: source.name } as const;
  const finishedAt = new Date();
  const stamp = stampOf(finishedAt);
  const key = artifactKey(loc, stamp, database, 'sql.zst');
  const signingKey = await readPrivateKey(sandbox.signing.privateKey, 'test signing key');
  const manifest: Manifest = {
    formatVersion: 2,
    ...loc,
    stamp,
    engine: { kind: 'mysql', version: '10.11' },
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    compression: { algorithm: 'zstd', level: 3, implementation: 'test' },
    encryption: { standard: 'openpgp', packet: 'seipd-v1', cipher: 'aes256', recipientFingerprints: recipients.map(fingerprintOf), recipientKeyIds: await encryptionKeyIds(recipients) },
    signingKeyFingerprint: fingerprintOf(signingKey),
    artifacts: [
      {
        name: database,
        kind: 'database',
        key,
        contentFormat: 'sql',
        tool: { name: 'mariadb-dump', version: '10.11', args: ['--single-transaction', '--master-data=2', '--gtid'] },
        exitCode: 0,
        warnings: [],
        completion: { method: 'exit-status', detail: 'mariadb-dump exited 0' },
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        uncompressedBytes: sql.length,
        compressedBytes: compressed.length,
        ciphertextBytes: d.bytes,
        ciphertextSha256: d.sha256,
        parts: { size: d.partSize, sha256: d.partSha256 },
        segments: [{ key, bytes: d.bytes, sha256: d.sha256, parts: d.partSha256.length }],
        binlogPosition: position,
      },
    ],
    agent: { version: 'test-harness', node: process.version },
  };
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: key, Body: ciphertext }));
  const mKey = manifestKey(loc, stamp);
  await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: mKey, Body: await signManifest(manifest, signingKey) }));
  return { manifestKey: mKey, position };
}
