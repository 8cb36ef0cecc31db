/**
 * The database client tools a host needs, and the one line that installs them on this host's
 * distribution (matched on /etc/os-release: ID first, then each of ID_LIKE; VERSION_ID's major
 * where the packages differ). The agent quotes the line when a tool is missing or too old; the
 * monitor's alert for the failed SSM command carries it. Pure: the agent reads the file
 * (agent/src/host-tools.ts); only `osReleasePath` here knows the test hook.
 *
 * What the distributions ship (checked on their package pages):
 * - PostgreSQL client (psql, pg_dump, pg_dumpall, pg_restore, pg_basebackup): one major per
 *   Debian/Ubuntu release, `postgresql-client-NN` (https://packages.debian.org/postgresql-client:
 *   bullseye 13, bookworm 15, trixie 17; https://packages.ubuntu.com/jammy/postgresql-client 14,
 *   https://packages.ubuntu.com/noble/postgresql-client 16). Any other major comes from the PGDG
 *   apt repository (https://wiki.postgresql.org/wiki/Apt), whose line is written out (key, source
 *   list for the release's codename) so it needs no postgresql-common helper script.
 *   RHEL and its rebuilds: the PGDG repository RPM, then `postgresqlNN` (binaries in
 *   /usr/pgsql-NN/bin); on 8 and 9 the AppStream `postgresql` module is disabled first or it
 *   hides PGDG's packages (https://www.postgresql.org/download/linux/redhat/); RHEL 10 has no
 *   modules (https://developers.redhat.com/articles/2025/03/11/discover-packaging-parallel-database-streams-rhel-10).
 *   Amazon Linux 2023 ships namespaced `postgresql15`, `postgresql16` and `postgresql17`
 *   (https://docs.aws.amazon.com/linux/al2023/release-notes/compare-packages.html lists them; the
 *   search corpus here held no AWS page naming 17, so AL2023_POSTGRES_MAJORS is the one place to fix).
 * - MySQL/MariaDB client (mysql, mysqldump, mysqlbinlog; mariadb, mariadb-dump, mariadb-binlog):
 *   Debian/Ubuntu `mariadb-client`, which from Debian 13 (MariaDB 11.8) keeps the mysql* names in
 *   `mariadb-client-compat` (https://packages.debian.org/mariadb-client-compat); Ubuntu's
 *   `mysql-client` for a MySQL server (Debian has no MySQL: Oracle's APT repository); RHEL
 *   AppStream `mariadb` / `mysql`; Amazon Linux 2023 `mariadb105`, and no MySQL client (Oracle's
 *   Yum repository).
 * - zstd and gpg are optional: the agent compresses in-process and encrypts with OpenPGP.js
 *   without them. Their lines are here for whoever configures the `zstd` or `gpg` implementation.
 */

/** The os-release fields the lines are chosen by. */
export interface OsRelease {
  /** ID, lower case ("ubuntu", "rhel", "amzn"); "" when the file is missing. */
  readonly id: string;
  /** ID_LIKE, split ("rhel centos fedora"). */
  readonly idLike: readonly string[];
  /** VERSION_ID ("24.04", "9.4", "2023"). */
  readonly versionId: string;
  /** UBUNTU_CODENAME, else VERSION_CODENAME ("noble", "bookworm"), for the PGDG apt source line. */
  readonly codename: string;
  /** PRETTY_NAME, for people. */
  readonly prettyName: string;
}

export const OS_RELEASE_PATH = '/etc/os-release';
/**
 * Test hook: the os-release file to read instead of /etc/os-release (the integration tests run the
 * agent as a host of another distribution would). Read by `osReleasePath` only.
 */
export const OS_RELEASE_TEST_HOOK = 'COLDSEAL_TEST_OS_RELEASE';

export function osReleasePath(env: Readonly<Record<string, string | undefined>>): string {
  return env[OS_RELEASE_TEST_HOOK] || OS_RELEASE_PATH;
}

/** Parses os-release (shell-like KEY=value lines, values optionally quoted). */
export function parseOsRelease(text: string): OsRelease {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2].trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    fields.set(match[1], value);
  }
  return {
    id: (fields.get('ID') ?? '').toLowerCase(),
    idLike: (fields.get('ID_LIKE') ?? '').toLowerCase().split(/\s+/).filter(Boolean),
    versionId: fields.get('VERSION_ID') ?? '',
    // A derivative (Linux Mint) names its Ubuntu base in UBUNTU_CODENAME; PGDG's suites are Debian's and Ubuntu's.
    codename: fields.get('UBUNTU_CODENAME') ?? fields.get('VERSION_CODENAME') ?? '',
    prettyName: fields.get('PRETTY_NAME') ?? fields.get('NAME') ?? '',
  };
}

/** What a missing tool belongs to. */
export type ToolFamily = 'postgres' | 'mysql' | 'zstd' | 'gpg';
/** A MySQL-family server's kind, when it is known (from its version string). */
export type MysqlFlavor = 'mysql' | 'mariadb';

const POSTGRES_TOOLS = new Set(['psql', 'pg_dump', 'pg_dumpall', 'pg_restore', 'pg_basebackup', 'pg_ctl', 'initdb', 'pg_isready']);
const MYSQL_TOOLS = new Set(['mysql', 'mysqldump', 'mysqlbinlog', 'mariadb', 'mariadb-dump', 'mariadb-binlog']);

export function toolFamily(tool: string): ToolFamily | undefined {
  const name = tool.split('/').pop() ?? tool;
  if (POSTGRES_TOOLS.has(name)) return 'postgres';
  if (MYSQL_TOOLS.has(name)) return 'mysql';
  if (name === 'zstd') return 'zstd';
  if (name === 'gpg') return 'gpg';
  return undefined;
}

/**
 * The newest PostgreSQL major the lines offer when the server's is not known yet (psql itself is
 * missing, so nothing could ask the server): pg_dump dumps servers older than itself.
 */
export const POSTGRES_NEWEST_MAJOR = 18;
/** The PostgreSQL client majors Amazon Linux 2023 ships (postgresqlNN packages). */
export const AL2023_POSTGRES_MAJORS: readonly number[] = [15, 16, 17];

/** The PostgreSQL major Debian's and Ubuntu's own repositories carry, by release. */
const OWN_POSTGRES_MAJOR: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  debian: { '11': 13, '12': 15, '13': 17 },
  ubuntu: { '20.04': 12, '22.04': 14, '24.04': 16 },
};

/**
 * The major of a PostgreSQL version string: "15.20 (Debian 15.20-0+deb12u1)" -> 15,
 * "pg_dump (PostgreSQL) 17.2" -> 17, "9.6.24" -> 9.6 (before 10 the major had two parts).
 */
export function postgresMajor(version: string): number | undefined {
  const match = /(\d+)\.(\d+)/.exec(version.replace(/^[^\d]*\)\s*/, '')) ?? /(\d+)/.exec(version);
  if (!match) return undefined;
  const first = Number(match[1]);
  return first < 10 && match[2] !== undefined ? Number(`${first}.${match[2]}`) : first;
}

type Family = 'debian' | 'rhel' | 'amzn2023' | 'unknown';

const RHEL_IDS = ['rhel', 'rocky', 'almalinux', 'centos', 'ol'];

function familyOf(os: OsRelease | undefined): { family: Family; major: number; base: string } {
  if (!os) return { family: 'unknown', major: 0, base: '' };
  const major = Number.parseInt(os.versionId, 10) || 0;
  for (const id of [os.id, ...os.idLike]) {
    if (id === 'amzn') return major === 2023 ? { family: 'amzn2023', major, base: id } : { family: 'unknown', major, base: id };
    if (id === 'debian' || id === 'ubuntu') return { family: 'debian', major, base: id };
    if (RHEL_IDS.includes(id) || id === 'fedora') return RHEL_IDS.includes(os.id) || os.idLike.some((l) => RHEL_IDS.includes(l)) ? { family: 'rhel', major, base: id } : { family: 'unknown', major, base: id };
  }
  return { family: 'unknown', major, base: '' };
}

const PGDG_APT_KEY = '/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc';

/**
 * No double quote and no backslash: under SSM the agent logs JSON lines, where those would be
 * escaped in the output the alert quotes, and the line must paste as it reads.
 */
function pgdgAptLine(codename: string, major: number): string {
  if (!codename) return `add the PGDG apt repository for this release (https://wiki.postgresql.org/wiki/Apt), then sudo apt-get install -y postgresql-client-${major}`;
  return [
    `sudo install -d ${PGDG_APT_KEY.replace(/\/[^/]+$/, '')}`,
    `sudo curl -fsSo ${PGDG_APT_KEY} https://www.postgresql.org/media/keys/ACCC4CF8.asc`,
    `echo 'deb [signed-by=${PGDG_APT_KEY}] https://apt.postgresql.org/pub/repos/apt ${codename}-pgdg main' | sudo tee /etc/apt/sources.list.d/pgdg.list`,
    'sudo apt-get update',
    `sudo apt-get install -y postgresql-client-${major}`,
  ].join(' && ');
}

/** Majors below 10 had two parts; their packages are named without the dot (postgresql96). */
function packageMajor(major: number): string {
  return major < 10 ? String(major).replace('.', '') : String(major);
}

function postgresLine(os: OsRelease | undefined, needed: number | undefined): string {
  const { family, major: osMajor } = familyOf(os);
  const want = Math.max(needed === undefined ? POSTGRES_NEWEST_MAJOR : Math.ceil(needed), 10);
  switch (family) {
    case 'debian': {
      const own = os && OWN_POSTGRES_MAJOR[os.id]?.[os.id === 'ubuntu' ? os.versionId : String(osMajor)];
      if (own !== undefined && own >= want && needed !== undefined) return `sudo apt-get install -y postgresql-client-${own}`;
      return pgdgAptLine(os?.codename ?? '', want);
    }
    case 'rhel': {
      const el = osMajor >= 8 ? osMajor : 9;
      const repo = `sudo dnf install -y https://download.postgresql.org/pub/repos/yum/reporpms/EL-${el}-$(uname -m)/pgdg-redhat-repo-latest.noarch.rpm`;
      const steps = [repo, ...(el < 10 ? ['sudo dnf -qy module disable postgresql'] : []), `sudo dnf install -y postgresql${packageMajor(want)}`];
      return `${steps.join(' && ')} (its tools are in /usr/pgsql-${want}/bin: set the source's binDir to it if pg_dump is not on PATH)`;
    }
    case 'amzn2023': {
      const available = AL2023_POSTGRES_MAJORS.find((m) => m >= want);
      if (available !== undefined) return `sudo dnf install -y postgresql${available}`;
      return `Amazon Linux 2023 has no PostgreSQL ${want} client package (it has ${AL2023_POSTGRES_MAJORS.join(', ')}): install PostgreSQL ${want}'s client tools from source and set the source's binDir to their directory`;
    }
    case 'unknown':
      return `install the PostgreSQL ${want} client tools (psql, pg_dump, pg_restore) from your distribution or https://www.postgresql.org/download/linux/, or set the source's binDir to their directory`;
  }
}

function mysqlLine(os: OsRelease | undefined, flavor: MysqlFlavor): string {
  const { family, major, base } = familyOf(os);
  switch (family) {
    case 'debian':
      if (flavor === 'mariadb') return base === 'debian' && os?.id === 'debian' && major >= 13 ? 'sudo apt-get install -y mariadb-client mariadb-client-compat' : 'sudo apt-get install -y mariadb-client';
      return os?.id === 'ubuntu' ? 'sudo apt-get install -y mysql-client' : "add Oracle's MySQL APT repository (https://dev.mysql.com/downloads/repo/apt/), then sudo apt-get install -y mysql-client";
    case 'rhel':
      return flavor === 'mariadb' ? 'sudo dnf install -y mariadb' : 'sudo dnf install -y mysql';
    case 'amzn2023':
      return flavor === 'mariadb' ? 'sudo dnf install -y mariadb105' : "add Oracle's MySQL Yum repository (https://dev.mysql.com/downloads/repo/yum/), then sudo dnf install -y mysql-community-client";
    case 'unknown':
      return `install the ${flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} client tools from your distribution, or set the source's binDir to their directory`;
  }
}

function simpleLine(os: OsRelease | undefined, apt: string, dnf: string, what: string): string {
  const { family } = familyOf(os);
  if (family === 'debian') return `sudo apt-get install -y ${apt}`;
  if (family === 'rhel' || family === 'amzn2023') return `sudo dnf install -y ${dnf}`;
  return `install ${what} from your distribution`;
}

export interface ToolNeed {
  /** The tool as the agent runs it (a path when the source has binDir). */
  readonly tool: string;
  /** PostgreSQL: the server's major, when known (the tools must be of it or newer). */
  readonly postgresMajor?: number;
  /** MySQL/MariaDB: the server's kind, when known; unknown gives both lines. */
  readonly mysqlFlavor?: MysqlFlavor;
}

/** The install line for a tool on this host, or undefined for a tool that is not a packaged one. */
export function installLine(os: OsRelease | undefined, need: ToolNeed): string | undefined {
  switch (toolFamily(need.tool)) {
    case 'postgres':
      return postgresLine(os, need.postgresMajor);
    case 'mysql': {
      const tool = need.tool.split('/').pop() ?? '';
      const flavor = need.mysqlFlavor ?? (tool.startsWith('mariadb') ? 'mariadb' : undefined);
      if (flavor) return mysqlLine(os, flavor);
      return `MariaDB server: ${mysqlLine(os, 'mariadb')}; MySQL server: ${mysqlLine(os, 'mysql')}`;
    }
    case 'zstd':
      return simpleLine(os, 'zstd', 'zstd', 'zstd');
    case 'gpg':
      return simpleLine(os, 'gnupg', 'gnupg2', 'GnuPG');
    case undefined:
      return undefined;
  }
}

/** What the host needs, in words: "pg_dump of PostgreSQL 17 or newer". */
export function toolRequirement(need: ToolNeed): string {
  const tool = need.tool.split('/').pop() ?? need.tool;
  if (toolFamily(tool) === 'postgres') return need.postgresMajor !== undefined ? `${tool} of PostgreSQL ${need.postgresMajor} or newer (the server's major)` : `${tool} of the server's PostgreSQL major or newer`;
  if (toolFamily(tool) === 'mysql') return `${tool} (the ${need.mysqlFlavor === 'mysql' ? 'MySQL' : need.mysqlFlavor === 'mariadb' ? 'MariaDB' : 'MySQL/MariaDB'} client tools)`;
  return tool;
}

/**
 * The sentence a host is told, install line first so that a cut alert keeps it:
 * "Install: sudo apt-get install -y postgresql-client-16 (Ubuntu 24.04), or set the source's binDir".
 */
export function installAdvice(os: OsRelease | undefined, need: ToolNeed): string {
  const line = installLine(os, need) ?? `install ${need.tool.split('/').pop()}`;
  const where = os?.prettyName ? ` (${os.prettyName})` : '';
  return `Install: ${line}${where}`;
}

/** "pg_dump is not on PATH" / "/opt/pg/bin/pg_dump does not exist". */
export function notFoundPhrase(tool: string): string {
  return tool.includes('/') ? `${tool} does not exist` : `${tool} is not on PATH`;
}
