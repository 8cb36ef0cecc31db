import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describeMissing, missingPrerequisites } from './prerequisites';

/**
 * `npm run setup`: checks every prerequisite of the demo and the tests, installs what Debian's
 * packages provide (as root on Debian/Ubuntu), and prints the exact command for the rest.
 * `--check` only reports. Exit 0 when everything is present afterwards, 1 otherwise.
 */
function main(): number {
  const checkOnly = process.argv.includes('--check');
  let missing = missingPrerequisites();
  const installable = [...new Set(missing.flatMap((p) => p.debianPackages ?? []))];
  const canInstall = !checkOnly && installable.length > 0 && existsSync('/usr/bin/apt-get') && process.getuid?.() === 0;
  if (canInstall) {
    console.log(`[setup] installing ${installable.join(' ')} from the distribution's packages`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', ...installable], { stdio: 'inherit', env });
    missing = missingPrerequisites();
  } else if (installable.length > 0 && !checkOnly) {
    console.log('[setup] not root or not Debian/Ubuntu: install the packages below yourself');
  }
  if (missing.length === 0) {
    console.log('[setup] every prerequisite is present');
    return 0;
  }
  for (const line of describeMissing(missing)) console.error(`[setup] ${line}`);
  return 1;
}

process.exit(main());
