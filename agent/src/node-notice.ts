import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NODE_SUPPORT } from '../../format/node-support';
import { runningAsExecutable } from './agent-runtime';

/**
 * Our own notice about the host's Node version, instead of the AWS SDK's seven-line warning on every
 * command (three times in one list/status/verify sequence). One line, printed at most once per user
 * and Node major version (a marker file under ~/.coldseal remembers it); nothing on a supported,
 * current Node, and nothing from the self-contained executable.
 */
export function nodeVersionNotice(version: string = process.versions.node, home: string = homedir(), executable: boolean = runningAsExecutable()): string | undefined {
  // The SDK's warning is replaced by this notice, in every case.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  // The self-contained executable brings its own Node, the one it was built and tested with: the host's does not matter.
  if (executable) return undefined;
  const major = Number(version.split('.')[0]);
  if (!(major < NODE_SUPPORT.sdkMinimumMajor)) return undefined;
  const marker = join(home, '.coldseal', `node-${major}-notice-shown`);
  try {
    mkdirSync(join(home, '.coldseal'), { recursive: true, mode: 0o700 });
    writeFileSync(marker, `${new Date().toISOString()}\n`, { flag: 'wx' });
  } catch {
    // Already shown (the marker exists), or nowhere to remember it: say nothing rather than every time.
    return undefined;
  }
  return (
    `Node ${version}: coldseal supports Node ${NODE_SUPPORT.minimumMajor} and later, but AWS SDK releases after ${NODE_SUPPORT.sdkMinimumFrom} need Node ${NODE_SUPPORT.sdkMinimumMajor}+, ` +
    `so coldseal releases after then will too: upgrade this machine to Node ${NODE_SUPPORT.recommendedMajor} (what the Lambdas and the self-contained agent run) before then. This notice is shown once.`
  );
}
