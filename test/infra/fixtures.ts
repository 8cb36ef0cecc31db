import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { AGENT_PLATFORMS, compressedExecutableName, executableName, type AgentExecutable } from '../../format/agent-executables';

/** Shared inputs of the infra tests: a context like cdk.json's, with two groups. */
export const ROOT = join(__dirname, '..', '..');
export const EXAMPLE_RECIPIENT = readFileSync(join(ROOT, 'infra', 'example-keys', 'escrow.pub.asc'), 'utf8');
export const EXAMPLE_SIGNING = readFileSync(join(ROOT, 'infra', 'example-keys', 'db-signing.pub.asc'), 'utf8');

/**
 * A recipient public key of the tests' own (its private half was thrown away): synth refuses the
 * committed example key, so the sample context gets this one instead.
 */
export const TEST_RECIPIENT_FILE = 'test/infra/keys/recipient.pub.asc';

/** cdk.json's context with the tests' own recipient key in place of the example one (which synth refuses). */
export function sampleContext(): Record<string, unknown> {
  const context = JSON.parse(JSON.stringify(JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context.coldseal)) as Record<string, unknown>;
  context.recipients = [TEST_RECIPIENT_FILE];
  return context;
}

/**
 * Two groups, so that one group's access can be checked against the other's prefix. Group db's
 * PostgreSQL source has point-in-time recovery (a WAL archive, archive_timeout 60 s), group web has
 * none: the WAL grants, alarms and schedule exist for db only.
 */
export function twoGroupContext(): Record<string, unknown> {
  const context = sampleContext();
  const groups = context.groups as Record<string, { sources: Record<string, unknown>[] }>;
  const postgres = groups.db.sources.find((s) => s.type === 'postgres');
  if (!postgres) throw new Error("cdk.json's group db has no PostgreSQL source to enable PITR on");
  postgres.pitr = { enabled: true };
  (groups as Record<string, unknown>).web = {
    schedule: 'cron(0 3 ? * MON-FRI *)',
    timeZone: 'America/New_York',
    signingPublicKeys: EXAMPLE_SIGNING,
    sources: [{ name: 'www', type: 'files', paths: ['/var/www'] }],
  };
  return context;
}

/**
 * Template tests do not run the agent: small stand-ins, one per architecture, with their
 * SHA-256s, keep them from racing the real build (made once per process).
 */
let standIns: AgentExecutable[] | undefined;
export function standInExecutables(): AgentExecutable[] {
  if (standIns) return standIns;
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-infra-'));
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  standIns = AGENT_PLATFORMS.map(({ arch }) => {
    const bytes = Buffer.from(`#!/bin/sh\necho "stand-in ${arch} executable for template tests" >&2\nexit 1\n`);
    const compressed = gzipSync(bytes);
    const path = join(dir, executableName(arch));
    const compressedPath = join(dir, compressedExecutableName(arch));
    writeFileSync(path, bytes, { mode: 0o755 });
    writeFileSync(compressedPath, compressed);
    return { arch, path, sha256: sha256(bytes), bytes: bytes.length, compressedPath, compressedSha256: sha256(compressed), compressedBytes: compressed.length };
  });
  return standIns;
}

/**
 * A group of `count` database sources as a user with many small databases writes it: a few
 * databases and a few excluded tables each (40 of them make about 10 KB of configuration, over
 * any SSM parameter's 8 KB).
 */
export function manySources(count: number): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `app-${String(i + 1).padStart(2, '0')}`,
    type: i % 4 === 3 ? 'mysql' : 'postgres',
    host: `db-${String(i + 1).padStart(2, '0')}.prod.internal.example.com`,
    user: 'coldseal_backup',
    password: { parameter: `/coldseal/passwords/app-${String(i + 1).padStart(2, '0')}` },
    databases: ['orders', 'billing', 'inventory'],
    ...(i % 4 === 3 ? {} : { excludeTables: ['public.audit_log', 'public.sessions', 'public.events_archive'] }),
  }));
}

/** One source whose exclude list alone is `count` long table names (partitions, say). */
export function longExcludes(name: string, count: number): Record<string, unknown> {
  return {
    name,
    type: 'postgres',
    databases: ['telemetry'],
    excludeTables: Array.from({ length: count }, (_, i) => `measurements.readings_partition_${2020 + Math.floor(i / 365)}_day_${String(i % 365).padStart(3, '0')}`),
  };
}
