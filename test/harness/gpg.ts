import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Decrypts the way a user without coldseal would: GnuPG with the recipient's private key, then the
 * compressor's own CLI. Proves the format promise of the README, not just our own reader.
 */
export function gpgDecrypt(ciphertext: Buffer, privateKeyFile: string): Buffer {
  const home = mkdtempSync(join(tmpdir(), 'coldseal-gpg-'));
  try {
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--import', privateKeyFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    return execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--decrypt'], { input: ciphertext, maxBuffer: 512 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export function gpgVerifyDetached(payload: Buffer, signature: string, publicKeyFile: string): string {
  const home = mkdtempSync(join(tmpdir(), 'coldseal-gpg-'));
  try {
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--import', publicKeyFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    const sigFile = join(home, 'sig.asc');
    const dataFile = join(home, 'data');
    writeFileSync(sigFile, signature);
    writeFileSync(dataFile, payload);
    return execFileSync('gpg', ['--homedir', home, '--batch', '--status-fd', '1', '--verify', sigFile, dataFile], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export function decompress(data: Buffer, algorithm: 'zstd' | 'gzip' | 'none'): Buffer {
  if (algorithm === 'none') return data;
  return execFileSync(algorithm === 'zstd' ? 'zstd' : 'gzip', ['-d', '-c'], { input: data, maxBuffer: 1024 * 1024 * 1024 });
}
