import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Command } from 'commander';
import { assertName } from '../../../format/layout';
import { DEFAULT_PARAMETER_PREFIX, deploymentInfoSchema, deploymentParameter, groupParameters } from '../../../format/parameters';
import { generateKeyPair, KeyError, readPrivateKey, type GeneratedKey } from '../../../runtime/pgp';
import { ColdsealError, EXIT } from '../errors';
import { checkKeyFilesFree, writeKeyFiles } from '../keys/key-files';
import { configuredRecipients, refuseUnpublishable } from '../keys/publish-checks';
import type { RunAction } from './options';

/**
 * Keys: the recipient pair (its private half is the only way to read a backup: keep it offline,
 * out of AWS) and one sign-only signing pair per host group (private half in SSM SecureString, read by the
 * agent at run time; public half given to the stack, which hands it to the verifier).
 */
export interface GenerateOptions {
  readonly out: string;
  readonly group?: string;
  readonly only?: 'recipient' | 'signing';
  readonly passphraseFile?: string;
  readonly force?: boolean;
}

export interface GeneratedFiles {
  readonly files: { path: string; fingerprint: string; secret: boolean }[];
}

export async function runKeysGenerate(options: GenerateOptions): Promise<GeneratedFiles> {
  if (options.only !== undefined && options.only !== 'recipient' && options.only !== 'signing') {
    throw new ColdsealError(EXIT.USAGE, `--only "${options.only}" is not a key kind`, 'Use recipient or signing');
  }
  const wantSigning = options.only !== 'recipient';
  const wantRecipient = options.only !== 'signing';
  if (wantSigning) {
    if (!options.group) throw new ColdsealError(EXIT.USAGE, 'a signing key belongs to a host group: --group is required', 'Add --group NAME, or --only recipient');
    assertName('group', options.group);
  }
  const passphrase = options.passphraseFile ? (await readFile(options.passphraseFile, 'utf8')).replace(/\r?\n$/, '') : undefined;
  await mkdir(options.out, { recursive: true, mode: 0o700 });
  const recipientBase = join(options.out, 'recipient');
  const signingBase = join(options.out, `${options.group}-signing`);
  const bases = [...(wantRecipient ? [recipientBase] : []), ...(wantSigning ? [signingBase] : [])];
  // Every file of every pair is checked before any key is made: a refusal leaves no half pair.
  await checkKeyFilesFree(bases.flatMap((b) => [`${b}.key.asc`, `${b}.pub.asc`]), options.force);
  const files: GeneratedFiles['files'] = [];
  const write = async (base: string, pair: GeneratedKey) => {
    await writeKeyFiles([{ path: `${base}.key.asc`, content: pair.privateKey, mode: 0o600 }, { path: `${base}.pub.asc`, content: pair.publicKey, mode: 0o644 }], options.force);
    files.push({ path: `${base}.key.asc`, fingerprint: pair.fingerprint, secret: true }, { path: `${base}.pub.asc`, fingerprint: pair.fingerprint, secret: false });
  };
  if (wantRecipient) await write(recipientBase, await generateKeyPair({ name: 'coldseal recipient' }, passphrase));
  if (wantSigning) {
    // The agent must sign unattended: the signing key carries no passphrase; SSM SecureString (KMS) protects it.
    // Sign-only: nothing can be encrypted to a key whose private half is in AWS.
    await write(signingBase, await generateKeyPair({ name: `coldseal signing ${options.group}` }, undefined, { signOnly: true }));
  }
  return { files };
}

export interface PublishOptions {
  readonly group: string;
  readonly signingKey: string;
  readonly prefix?: string;
  readonly region?: string;
  readonly kmsKeyId?: string;
  readonly withPublic?: boolean;
  readonly overwrite?: boolean;
}

export async function runKeysPublish(options: PublishOptions, ssm = new SSMClient({ ...(options.region ? { region: options.region } : {}) })): Promise<{ secureParameter: string; publicParameter?: string; fingerprint: string }> {
  assertName('group', options.group);
  let key;
  try {
    key = await readPrivateKey(await readFile(options.signingKey, 'utf8'), `signing key ${options.signingKey}`);
  } catch (error) {
    if (error instanceof KeyError) throw new ColdsealError(EXIT.KEYS, error.message, 'Give the .key.asc file that coldseal keys generate wrote for this group');
    throw new ColdsealError(EXIT.KEYS, `cannot read ${options.signingKey}: ${(error as Error).message}`);
  }
  const prefix = options.prefix ?? DEFAULT_PARAMETER_PREFIX;
  const names = groupParameters(options.group, prefix);
  refuseUnpublishable(key, options.signingKey, await configuredRecipients(ssm, names.recipients), names.recipients);
  const kmsKeyId = options.kmsKeyId ?? (await deployedSigningKey(ssm, options.group, prefix));
  try {
    await ssm.send(
      new PutParameterCommand({
        Name: names.signingKey,
        Type: 'SecureString',
        Value: key.armor(),
        Overwrite: Boolean(options.overwrite),
        Description: `coldseal signing key of group ${options.group} (fingerprint ${key.getFingerprint()})`,
        KeyId: kmsKeyId,
      }),
    );
    if (options.withPublic) {
      await ssm.send(new PutParameterCommand({ Name: names.signingPublicKeys, Type: 'String', Value: key.toPublic().armor(), Overwrite: true }));
    }
  } catch (error) {
    if ((error as { name?: string }).name === 'ParameterAlreadyExists') {
      throw new ColdsealError(EXIT.REFUSED, `${names.signingKey} already holds a signing key`, 'Pass --overwrite to rotate it (add the new public key to the stack first, so the verifier trusts both)');
    }
    throw new ColdsealError(EXIT.STORAGE, `cannot write ${names.signingKey}: ${(error as Error).message}`, 'Check your AWS credentials and region');
  }
  return { secureParameter: names.signingKey, publicParameter: options.withPublic ? names.signingPublicKeys : undefined, fingerprint: key.getFingerprint() };
}

/**
 * The group's signing-key KMS key, as the deployed stack recorded it. Never aws/ssm: every host
 * of every group may decrypt with that one (AmazonSSMManagedInstanceCore allows GetParameter on
 * every parameter), so a signing key under it is every group's signing key.
 */
async function deployedSigningKey(ssm: SSMClient, group: string, prefix: string): Promise<string> {
  const name = deploymentParameter(prefix);
  const refuse = (why: string) =>
    new ColdsealError(
      EXIT.CONFIG,
      `no KMS key for the signing key of group ${group}: ${why}`,
      `Deploy the stack first (it makes one key per group and records it in ${name}), or pass --kms-key-id with a key only this group's hosts may decrypt with; aws/ssm is refused because every host can decrypt with it`,
    );
  let text: string | undefined;
  try {
    text = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (error) {
    if ((error as { name?: string }).name === 'ParameterNotFound') throw refuse(`${name} does not exist`);
    throw new ColdsealError(EXIT.STORAGE, `cannot read ${name}: ${(error as Error).message}`, 'Check your AWS credentials and region');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text ?? '');
  } catch {
    throw refuse(`${name} is not the deployment information the stack writes`);
  }
  const parsed = deploymentInfoSchema.safeParse(raw);
  const key = parsed.success ? parsed.data.signingKeys?.[group] : undefined;
  if (!key) throw refuse(`${name} names none for it`);
  return key;
}

export function defineKeysCommand(program: Command, run: RunAction): void {
  const keys = program.command('keys').description('generate and publish OpenPGP keys');
  keys
    .command('generate')
    .description('write a recipient key pair (keep recipient.key.asc offline!) and a signing key pair for a host group')
    .requiredOption('--out <dir>', 'directory for the armored key files (private files are written 0600)')
    .option('--group <name>', 'host group the signing key belongs to')
    .option('--only <kind>', 'only one pair: recipient or signing')
    .option('--passphrase-file <file>', 'protect the recipient private key with the passphrase in this file')
    .option('--force', 'replace existing key files (atomically, written 0600 then renamed: a symlink is replaced, never followed)')
    .action((options: GenerateOptions) =>
      run(async () => {
        const result = await runKeysGenerate(options);
        for (const f of result.files) console.log(`${f.secret ? 'PRIVATE' : 'public '}  ${f.path}  ${f.fingerprint}`);
        if (result.files.some((f) => f.path.endsWith('recipient.key.asc'))) {
          console.log('Move recipient.key.asc off this machine (password manager, offline media): it is the only key that decrypts backups, and it must never be stored in AWS.');
        }
        return EXIT.OK;
      }),
    );
  keys
    .command('publish')
    .description("store a group's signing private key as an SSM SecureString parameter for the agent")
    .requiredOption('--group <name>', 'host group')
    .requiredOption('--signing-key <file>', 'the group signing private key (.key.asc)')
    .option('--prefix <prefix>', 'parameter prefix', DEFAULT_PARAMETER_PREFIX)
    .option('--region <region>', 'AWS region (default: AWS_REGION)')
    .option('--kms-key-id <id>', "KMS key for the SecureString (default: the group's key from the deployed stack; aws/ssm is refused)")
    .option('--with-public', 'also write the public half to the String parameter (only without the stack, which owns it)')
    .option('--overwrite', 'replace an existing signing key (rotation)')
    .action((options: PublishOptions) =>
      run(async () => {
        const result = await runKeysPublish(options);
        console.log(`signing key ${result.fingerprint} stored in ${result.secureParameter} (SecureString)`);
        if (result.publicParameter) console.log(`public half in ${result.publicParameter}`);
        return EXIT.OK;
      }),
    );
}
