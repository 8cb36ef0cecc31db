import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { generateKeyPair, type GeneratedKey } from '../../runtime/pgp';
import type { AgentConfigInput } from '../../format/agent-config';
import { newMotoAccount, uniqueName, type MotoAccount } from './aws';

/**
 * A sandbox for running the real agent: an isolated moto account with a bucket, freshly generated
 * keys on disk, and helpers to write a configuration, run the CLI as a child process (as SSM would)
 * and look at what ended up in S3.
 */
export interface AgentSandbox {
  readonly account: MotoAccount;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly dir: string;
  readonly recipient: GeneratedKey & { publicFile: string; privateFile: string };
  readonly signing: GeneratedKey & { publicFile: string; privateFile: string };
  /** A complete configuration for this sandbox; override any part. */
  config(overrides: Partial<AgentConfigInput> & Pick<AgentConfigInput, 'sources'>): AgentConfigInput;
  writeConfig(config: AgentConfigInput): string;
  /** Runs the CLI; with `signal`, sends it once `when()` turns true (polled), as an operator or SSM would. */
  runCli(args: string[], env?: Record<string, string>, signal?: { name: NodeJS.Signals; when: () => Promise<boolean> }): Promise<CliResult>;
  listKeys(prefix?: string): Promise<string[]>;
  getObject(key: string): Promise<Buffer>;
  openMultipartUploads(): Promise<string[]>;
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The log as a person reads it: each JSON line's message, one per line. */
  readonly log: string;
}

/** The log as a person reads it: each JSON line's message, one per line. */
export function readableLog(stderr: string): string {
  return stderr
    .split('\n')
    .map((line) => {
      try {
        return (JSON.parse(line) as { message?: string }).message ?? line;
      } catch {
        return line;
      }
    })
    .join('\n');
}

const ROOT = join(__dirname, '..', '..');

/**
 * Runs an agent program (`program` is its command line before the agent's own arguments: node and
 * cli.ts through tsx, node and the bundle, the self-contained executable, or qemu and an aarch64
 * one) with exactly `env`; with `signal`, sends it once `when()` turns true (polled).
 */
export function runAgentProgram(
  program: readonly string[],
  args: readonly string[],
  options: { readonly env: NodeJS.ProcessEnv; readonly cwd?: string; readonly signal?: { name: NodeJS.Signals; when: () => Promise<boolean> } },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program[0]!, [...program.slice(1), ...args], { cwd: options.cwd ?? tmpdir(), env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const signal = options.signal;
    if (signal) {
      const poll = async () => {
        while (child.exitCode === null && !(await signal.when())) await new Promise((r) => setTimeout(r, 100));
        child.kill(signal.name);
      };
      void poll();
    }
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, log: readableLog(stderr) }));
  });
}

export async function createAgentSandbox(options: { objectLock?: boolean } = {}): Promise<AgentSandbox> {
  const account = await newMotoAccount();
  const s3 = new S3Client(account.clientConfig);
  const bucket = uniqueName('coldseal-test');
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-test-'));
  const keyFiles = (name: string, key: GeneratedKey) => {
    const privateFile = join(dir, `${name}.key.asc`);
    const publicFile = join(dir, `${name}.pub.asc`);
    writeFileSync(privateFile, key.privateKey, { mode: 0o600 });
    writeFileSync(publicFile, key.publicKey);
    return { ...key, privateFile, publicFile };
  };
  const recipient = keyFiles('recipient', await generateKeyPair({ name: 'test recipient' }));
  const signing = keyFiles('signing', await generateKeyPair({ name: 'test signing' }, undefined, { signOnly: true }));

  const sandbox: AgentSandbox = {
    account,
    s3,
    bucket,
    dir,
    recipient,
    signing,
    config: (overrides) => ({
      group: 'testgroup',
      host: 'testhost',
      bucket,
      region: account.clientConfig.region,
      endpoint: account.clientConfig.endpoint,
      recipients: { file: recipient.publicFile },
      signingKey: { file: signing.privateFile },
      ...overrides,
    }),
    writeConfig(config) {
      const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(path, JSON.stringify(config, null, 2));
      return path;
    },
    runCli: (args, env = {}, signal) =>
      runAgentProgram([process.execPath, '--import', 'tsx', join(ROOT, 'agent', 'src', 'cli.ts')], args, { cwd: ROOT, env: { ...process.env, ...account.env, NODE_NO_WARNINGS: '1', ...env }, signal }),
    async listKeys(prefix = '') {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).map((o) => o.Key!));
        token = page.NextContinuationToken;
      } while (token);
      return keys.sort();
    },
    async getObject(key) {
      const result = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await result.Body!.transformToByteArray());
    },
    async openMultipartUploads() {
      const result = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      return (result.Uploads ?? []).map((u) => u.Key!);
    },
  };
  return sandbox;
}
