/**
 * Which Node.js versions coldseal's CLI runs on (`npm run coldseal`, the bundle in dist/agent), and
 * how a machine gets one. Hosts need none: the SSM document runs the self-contained executable,
 * which carries its own Node (format/agent-executables.ts). The Lambdas run on nodejs24.x. The
 * minimum is the bundled AWS SDK's (its releases need Node >= 20); package.json's engines, the
 * CLI's notice, `npm run setup` and the README all take it from here. AWS SDK releases published
 * after the first week of January 2027 require Node >= 22 (its own NodeVersionSupportWarning says
 * so), so a CLI on Node 20 keeps working with the SDK it was built with, but gets no SDK update
 * after that.
 */
export const NODE_SUPPORT = {
  /** The oldest major the agent runs on. */
  minimumMajor: 20,
  /** The oldest major that newer AWS SDK releases (and so newer coldseal releases) will run on. */
  sdkMinimumMajor: 22,
  sdkMinimumFrom: 'the first week of January 2027',
  /** The Lambdas' runtime, and the best choice for hosts. */
  recommendedMajor: 24,
  /**
   * The AppStream module stream to install on RHEL, Rocky and AlmaLinux 8 and 9: the newest one
   * both carry (their default `nodejs` is older than the minimum).
   */
  rhelModuleStream: 22,
} as const;

/** How to install a supported Node.js on one family of distributions (matched on /etc/os-release). */
export interface NodeInstallLine {
  /** In words, for people. */
  readonly distribution: string;
  /** The os-release IDs (ID, else any of ID_LIKE) this line is for. */
  readonly ids: readonly string[];
  /** The major of VERSION_ID this line is for; left out: any. */
  readonly versionMajors?: readonly number[];
  /** The command(s) to run, or what to do when no package will do. */
  readonly line: string;
  /** Said after the line. */
  readonly note?: string;
}

const { recommendedMajor, rhelModuleStream, minimumMajor } = NODE_SUPPORT;

/**
 * The right install line per distribution, most specific first. Amazon Linux 2023's plain `nodejs`
 * is Node 18: its supported versions are the namespaced nodejs20, nodejs22, nodejs24, and the
 * first one installed becomes `node` (alternatives), so the line also points `node` at the new one.
 * https://docs.aws.amazon.com/linux/al2023/ug/nodejs.html
 * Debian's and Ubuntu's own packages are older than the minimum up to Debian 12 and Ubuntu 24.04.
 */
export const NODE_INSTALL_LINES: readonly NodeInstallLine[] = [
  {
    distribution: 'Amazon Linux 2023',
    ids: ['amzn'],
    versionMajors: [2023],
    line: `sudo dnf install -y nodejs${recommendedMajor} && sudo alternatives --set node /usr/bin/node-${recommendedMajor}`,
  },
  {
    distribution: 'Amazon Linux 2',
    ids: ['amzn'],
    versionMajors: [2],
    line: `Amazon Linux 2 cannot run Node.js ${minimumMajor} or later (its glibc is too old): move this host to Amazon Linux 2023`,
  },
  {
    distribution: 'RHEL, Rocky Linux, AlmaLinux 8 and 9',
    ids: ['rhel', 'rocky', 'almalinux', 'centos', 'ol'],
    versionMajors: [8, 9],
    line: `sudo dnf module reset -y nodejs && sudo dnf module install -y nodejs:${rhelModuleStream}`,
  },
  {
    distribution: 'Debian and Ubuntu (their own packages are older up to Debian 12 and Ubuntu 24.04)',
    ids: ['debian', 'ubuntu'],
    line: `curl -fsSL https://deb.nodesource.com/setup_${recommendedMajor}.x | sudo -E bash - && sudo apt-get install -y nodejs`,
    note: "NodeSource's packages; on Debian 13 or later the distribution's own `apt-get install -y nodejs` will do",
  },
];
