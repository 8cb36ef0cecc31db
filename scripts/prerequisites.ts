import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { NODE_SUPPORT } from '../format/node-support';

/**
 * What the demo and the test suite need on the machine besides `npm ci`, in one list: `npm run
 * setup` installs what it can from it, `.ci/run` calls that, and the test runner refuses to start
 * with one line per missing tool instead of failing deep inside a test.
 */
export interface Prerequisite {
  /** What a person calls it. */
  readonly name: string;
  /** Why coldseal needs it, shown when it is missing. */
  readonly neededFor: string;
  /** True when present. Cheap: runs at the start of every test run. */
  readonly present: () => boolean;
  /** Debian/Ubuntu packages that provide it, when the distribution has them. */
  readonly debianPackages?: readonly string[];
  /** The command to run by hand when it cannot be installed from Debian's packages. */
  readonly manual?: string;
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

export const PREREQUISITES: readonly Prerequisite[] = [
  { name: `Node.js ≥ ${NODE_SUPPORT.minimumMajor}`, neededFor: 'everything', present: () => NODE_MAJOR >= NODE_SUPPORT.minimumMajor, manual: `install Node.js ${NODE_SUPPORT.minimumMajor} or later (https://nodejs.org or your distribution)` },
  { name: 'PostgreSQL server and client', neededFor: 'the demo and the round-trip tests (pg_dump, pg_restore, psql)', present: () => onPath('pg_dump') && onPath('psql') && (onPath('pg_ctlcluster') || onPath('pg_ctl')), debianPackages: ['postgresql'] },
  { name: 'MariaDB server and client', neededFor: 'the MySQL/MariaDB tests (mysqldump, mysql)', present: () => (onPath('mysqldump') || onPath('mariadb-dump')) && existsSync('/usr/sbin/mariadbd'), debianPackages: ['mariadb-server', 'mariadb-client'] },
  { name: 'moto_server (Python moto 5)', neededFor: 'S3, SNS, SQS, SSM, Scheduler, EventBridge and CloudWatch on loopback', present: () => onPath('moto_server'), manual: 'pip install "moto[server]>=5"' },
  { name: 'cfn-lint', neededFor: 'checking the synthesized CloudFormation template', present: () => onPath('cfn-lint'), manual: 'pip install cfn-lint' },
  { name: 'AWS CLI', neededFor: 'the README recipe that restores without coldseal (aws s3 cp | gpg | zstd)', present: () => onPath('aws'), manual: 'pip install awscli (or install AWS CLI v2)' },
  {
    name: 'qemu-user-static with the arm64 C and C++ runtime',
    neededFor: 'running the aarch64 agent executable on this x86_64 machine',
    present: () => onPath('qemu-aarch64-static') && existsSync('/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1') && existsSync('/usr/aarch64-linux-gnu/lib/libstdc++.so.6'),
    debianPackages: ['qemu-user-static', 'libc6-arm64-cross', 'libstdc++6-arm64-cross', 'libgcc-s1-arm64-cross'],
  },
  { name: 'zstd', neededFor: 'the agent\'s compressor', present: () => onPath('zstd'), debianPackages: ['zstd'] },
  { name: 'GnuPG', neededFor: 'encryption on hosts that have it, and the gpg-only restore', present: () => onPath('gpg'), debianPackages: ['gnupg'] },
  { name: 'zip', neededFor: 'packaging the Lambda assets for the deploy into moto', present: () => onPath('zip'), debianPackages: ['zip'] },
  { name: 'GNU time', neededFor: 'peak memory figures in the tests and the benchmark', present: () => existsSync('/usr/bin/time'), debianPackages: ['time'] },
  { name: 'Chromium', neededFor: 'the test that renders the HTML report', present: () => existsSync('/usr/bin/chromium'), debianPackages: ['chromium'] },
];

export function missingPrerequisites(): Prerequisite[] {
  return PREREQUISITES.filter((p) => !p.present());
}

/** One line per missing tool with the exact command that installs it. */
export function describeMissing(missing: readonly Prerequisite[]): string[] {
  return missing.map((p) => `missing ${p.name} (for ${p.neededFor}): ${p.debianPackages ? `apt-get install -y ${p.debianPackages.join(' ')}` : p.manual}`);
}
