import { readFile, stat } from 'node:fs/promises';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { ColdsealError, EXIT } from './errors';
import type { PublicKeysRef, SecretRef } from '../../format/agent-config';

/**
 * Reads secrets named by the configuration: SSM SecureString parameters or local files. The values
 * go to the caller only; they are never logged and never put on a command line.
 */
export async function readParameter(ssm: SSMClient, name: string, what: string): Promise<string> {
  try {
    const result = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    const value = result.Parameter?.Value;
    if (!value) throw new ColdsealError(EXIT.CONFIG, `${what}: parameter ${name} is empty`);
    return value;
  } catch (error) {
    if (error instanceof ColdsealError) throw error;
    if ((error as { name?: string }).name === 'ParameterNotFound') {
      throw new ColdsealError(EXIT.CONFIG, `${what}: parameter ${name} does not exist`, 'Create it (coldseal keys publish for the signing key; aws ssm put-parameter --type SecureString for a password)');
    }
    throw new ColdsealError(EXIT.STORAGE, `${what}: cannot read parameter ${name}: ${(error as Error).message}`, 'Check the instance role allows ssm:GetParameter (and KMS decrypt) on it');
  }
}

async function readLocalFile(path: string, what: string, mustBePrivate: boolean): Promise<string> {
  try {
    if (mustBePrivate) {
      const info = await stat(path);
      if (info.mode & 0o077) {
        throw new ColdsealError(EXIT.CONFIG, `${what}: ${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)})`, `Run: chmod 600 ${path}`);
      }
    }
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    if (error instanceof ColdsealError) throw error;
    throw new ColdsealError(EXIT.CONFIG, `${what}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

export async function resolveSecret(ssm: SSMClient, ref: SecretRef, what: string): Promise<string> {
  return 'parameter' in ref ? readParameter(ssm, ref.parameter, what) : readLocalFile(ref.file, what, true);
}

export async function resolvePublicKeys(ssm: SSMClient, ref: PublicKeysRef, what: string): Promise<string> {
  if ('armored' in ref) return ref.armored;
  return 'parameter' in ref ? readParameter(ssm, ref.parameter, what) : readLocalFile(ref.file, what, false);
}
