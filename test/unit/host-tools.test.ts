import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MissingToolError, missingUnderRunuser, postgresToolTooOld } from '../../agent/src/host-tools';
import { installAdvice, installLine, osReleasePath, OS_RELEASE_TEST_HOOK, parseOsRelease, postgresMajor, toolFamily } from '../../format/host-tools';

/** os-release files as the distributions ship them (quoting as they do). */
const OS = {
  ubuntu2204: 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n',
  ubuntu2404: 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=noble\n',
  debian12: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
  debian13: 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_ID="13"\nVERSION_CODENAME=trixie\nID=debian\n',
  rhel9: 'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
  rocky8: 'NAME="Rocky Linux"\nVERSION="8.9 (Green Obsidian)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.9"\nPRETTY_NAME="Rocky Linux 8.9 (Green Obsidian)"\n',
  rhel10: 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="centos fedora"\nVERSION_ID="10.0"\nPRETTY_NAME="Red Hat Enterprise Linux 10.0 (Coughlan)"\n',
  al2023: 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\nPLATFORM_ID="platform:al2023"\nPRETTY_NAME="Amazon Linux 2023.5.20240624"\n',
  mint: 'NAME="Linux Mint"\nVERSION="22 (Wilma)"\nID=linuxmint\nID_LIKE="ubuntu debian"\nPRETTY_NAME="Linux Mint 22"\nVERSION_ID="22"\nVERSION_CODENAME=wilma\nUBUNTU_CODENAME=noble\n',
  alpine: 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME="Alpine Linux v3.20"\n',
} as const;
const os = (name: keyof typeof OS) => parseOsRelease(OS[name]);

describe('os-release', () => {
  test('ID, ID_LIKE, VERSION_ID, the codename and the pretty name, quoted or not', () => {
    assert.deepEqual(os('rocky8'), { id: 'rocky', idLike: ['rhel', 'centos', 'fedora'], versionId: '8.9', codename: '', prettyName: 'Rocky Linux 8.9 (Green Obsidian)' });
    assert.deepEqual(os('debian12'), { id: 'debian', idLike: [], versionId: '12', codename: 'bookworm', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
    assert.equal(os('mint').codename, 'noble', "a derivative's Ubuntu base, which PGDG has a suite for");
    assert.deepEqual(parseOsRelease(''), { id: '', idLike: [], versionId: '', codename: '', prettyName: '' });
  });

  test('the test hook replaces /etc/os-release only when set', () => {
    assert.equal(osReleasePath({}), '/etc/os-release');
    assert.equal(osReleasePath({ [OS_RELEASE_TEST_HOOK]: '/tmp/x' }), '/tmp/x');
  });

  test('PostgreSQL majors from server and tool version strings', () => {
    assert.equal(postgresMajor('15.20 (Debian 15.20-0+deb12u1)'), 15);
    assert.equal(postgresMajor('pg_dump (PostgreSQL) 17.2'), 17);
    assert.equal(postgresMajor('pg_dump (PostgreSQL) 9.6.24'), 9.6);
    assert.equal(postgresMajor('18beta1'), 18);
    assert.equal(postgresMajor('pg_dump (PostgreSQL) 16.4 (Ubuntu 16.4-0ubuntu0.24.04.2)'), 16);
    assert.equal(postgresMajor('unknown'), undefined);
  });
});

describe('the install line for the PostgreSQL client tools', () => {
  const pg = (name: keyof typeof OS, major: number | undefined, tool = 'pg_dump') => installLine(os(name), { tool, postgresMajor: major });

  test("Debian and Ubuntu: the release's own postgresql-client-NN while it is of the server's major or newer", () => {
    assert.equal(pg('ubuntu2404', 16), 'sudo apt-get install -y postgresql-client-16');
    assert.equal(pg('ubuntu2404', 14), 'sudo apt-get install -y postgresql-client-16', 'a newer pg_dump dumps an older server');
    assert.equal(pg('ubuntu2204', 14), 'sudo apt-get install -y postgresql-client-14');
    assert.equal(pg('debian12', 15), 'sudo apt-get install -y postgresql-client-15');
    assert.equal(pg('debian13', 17, 'pg_restore'), 'sudo apt-get install -y postgresql-client-17');
  });

  test('Debian and Ubuntu: the PGDG apt repository, for the release, when its own packages stop below the major', () => {
    const line = pg('ubuntu2204', 17)!;
    assert.match(line, /^sudo install -d \/usr\/share\/postgresql-common\/pgdg && sudo curl -fsSo \/usr\/share\/postgresql-common\/pgdg\/apt\.postgresql\.org\.asc https:\/\/www\.postgresql\.org\/media\/keys\/ACCC4CF8\.asc && /);
    assert.match(line, /echo 'deb \[signed-by=\/usr\/share\/postgresql-common\/pgdg\/apt\.postgresql\.org\.asc\] https:\/\/apt\.postgresql\.org\/pub\/repos\/apt jammy-pgdg main' \| sudo tee \/etc\/apt\/sources\.list\.d\/pgdg\.list/);
    assert.match(line, / && sudo apt-get update && sudo apt-get install -y postgresql-client-17$/);
    assert.match(pg('debian12', 17)!, /apt bookworm-pgdg main.*postgresql-client-17$/);
    assert.match(pg('ubuntu2404', 18)!, /apt noble-pgdg main.*postgresql-client-18$/);
    assert.match(pg('mint', 16)!, /apt noble-pgdg main.*postgresql-client-16$/, 'a derivative: the suite of its Ubuntu base, its own packages not assumed');
    assert.equal(installLine(parseOsRelease('ID=debian\nVERSION_ID=14\n'), { tool: 'pg_dump', postgresMajor: 17 }), 'add the PGDG apt repository for this release (https://wiki.postgresql.org/wiki/Apt), then sudo apt-get install -y postgresql-client-17', 'no codename to name the suite');
  });

  test('no line holds a double quote or a backslash (JSON log lines would escape them in the output the alert quotes)', () => {
    for (const name of Object.keys(OS) as (keyof typeof OS)[]) {
      for (const tool of ['pg_dump', 'psql', 'mysqldump', 'mariadb-binlog', 'zstd', 'gpg']) {
        for (const postgresMajor of [undefined, 9.6, 13, 17, 18]) {
          const line = installLine(os(name), { tool, postgresMajor })!;
          assert.doesNotMatch(line, /["\\]/, `${name} ${tool} ${postgresMajor}: ${line}`);
        }
      }
    }
  });

  test('RHEL, Rocky, AlmaLinux: the PGDG repository RPM for the release, the AppStream module disabled on 8 and 9', () => {
    assert.equal(
      pg('rhel9', 17),
      "sudo dnf install -y https://download.postgresql.org/pub/repos/yum/reporpms/EL-9-$(uname -m)/pgdg-redhat-repo-latest.noarch.rpm && sudo dnf -qy module disable postgresql && sudo dnf install -y postgresql17 (its tools are in /usr/pgsql-17/bin: set the source's binDir to it if pg_dump is not on PATH)",
    );
    assert.match(pg('rocky8', 15)!, /reporpms\/EL-8-\$\(uname -m\)\/.* && sudo dnf -qy module disable postgresql && sudo dnf install -y postgresql15 /);
    assert.doesNotMatch(pg('rhel10', 16)!, /module/, 'RHEL 10 has no modules');
    assert.match(pg('rhel10', 16)!, /EL-10-.* && sudo dnf install -y postgresql16 /);
  });

  test("Amazon Linux 2023: its own postgresqlNN, the server's major or the next it has", () => {
    assert.equal(pg('al2023', 17), 'sudo dnf install -y postgresql17');
    assert.equal(pg('al2023', 16), 'sudo dnf install -y postgresql16');
    assert.equal(pg('al2023', 13), 'sudo dnf install -y postgresql15');
    assert.match(pg('al2023', 18)!, /^Amazon Linux 2023 has no PostgreSQL 18 client package \(it has 15, 16, 17\)/);
  });

  test('an unknown distribution, or none: a generic line with the major', () => {
    assert.equal(pg('alpine', 16), "install the PostgreSQL 16 client tools (psql, pg_dump, pg_restore) from your distribution or https://www.postgresql.org/download/linux/, or set the source's binDir to their directory");
    assert.match(installLine(undefined, { tool: 'psql', postgresMajor: 15 })!, /^install the PostgreSQL 15 client tools/);
  });

  test("the server's major not known yet (psql itself missing): the newest, which dumps every older server", () => {
    assert.match(pg('debian12', undefined, 'psql')!, /postgresql-client-18$/);
    assert.equal(pg('al2023', undefined, 'psql')!.startsWith('Amazon Linux 2023 has no PostgreSQL 18'), true);
  });

  test('a tool given as a path (binDir) is still known by its name', () => {
    assert.equal(toolFamily('/usr/lib/postgresql/16/bin/pg_dump'), 'postgres');
    assert.equal(installLine(os('ubuntu2404'), { tool: '/opt/pg/bin/pg_dump', postgresMajor: 16 }), 'sudo apt-get install -y postgresql-client-16');
  });
});

describe('the install line for the MySQL/MariaDB client tools', () => {
  const my = (name: keyof typeof OS, tool: string, flavor?: 'mysql' | 'mariadb') => installLine(os(name), { tool, mysqlFlavor: flavor });

  test('per distribution and server kind', () => {
    assert.equal(my('debian12', 'mysqldump', 'mariadb'), 'sudo apt-get install -y mariadb-client');
    assert.equal(my('debian13', 'mysqldump', 'mariadb'), 'sudo apt-get install -y mariadb-client mariadb-client-compat', 'Debian 13 keeps the mysql* names apart');
    assert.equal(my('ubuntu2404', 'mysqldump', 'mysql'), 'sudo apt-get install -y mysql-client');
    assert.match(my('debian12', 'mysqldump', 'mysql')!, /Oracle's MySQL APT repository .* sudo apt-get install -y mysql-client$/);
    assert.equal(my('rhel9', 'mysqldump', 'mariadb'), 'sudo dnf install -y mariadb');
    assert.equal(my('rocky8', 'mysql', 'mysql'), 'sudo dnf install -y mysql');
    assert.equal(my('al2023', 'mysqldump', 'mariadb'), 'sudo dnf install -y mariadb105');
    assert.match(my('al2023', 'mysqldump', 'mysql')!, /Oracle's MySQL Yum repository .* sudo dnf install -y mysql-community-client$/);
    assert.equal(my('alpine', 'mysqldump', 'mariadb'), "install the MariaDB client tools from your distribution, or set the source's binDir to their directory");
  });

  test('mariadb-* tools are MariaDB; the server not known yet gives both lines', () => {
    assert.equal(my('ubuntu2204', 'mariadb-binlog'), 'sudo apt-get install -y mariadb-client');
    assert.equal(my('ubuntu2204', 'mysql'), 'MariaDB server: sudo apt-get install -y mariadb-client; MySQL server: sudo apt-get install -y mysql-client');
  });
});

describe('optional tools and the advice as told', () => {
  test('zstd and gpg have lines; other commands none', () => {
    assert.equal(installLine(os('debian12'), { tool: 'zstd' }), 'sudo apt-get install -y zstd');
    assert.equal(installLine(os('al2023'), { tool: 'gpg' }), 'sudo dnf install -y gnupg2');
    assert.equal(installLine(os('debian12'), { tool: 'tar' }), undefined);
  });

  test('the advice: the line first, then which system it is for', () => {
    assert.equal(installAdvice(os('ubuntu2404'), { tool: 'pg_dump', postgresMajor: 16 }), 'Install: sudo apt-get install -y postgresql-client-16 (Ubuntu 24.04.1 LTS)');
  });
});

describe("the agent's errors", () => {
  test('a missing tool: what was running, the tool, what is needed, then the install line; more known later refines it', () => {
    const error = new MissingToolError('source pg: pg_dump --version', { tool: 'pg_dump' });
    assert.match(error.message, /^source pg: pg_dump --version: pg_dump is not on PATH \(needed: pg_dump of the server's PostgreSQL major or newer\)$/);
    assert.match(error.hint!, /^Install: .*, or set the source's binDir$/);
    const known = error.with({ postgresMajor: 16 });
    assert.match(known.message, /needed: pg_dump of PostgreSQL 16 or newer \(the server's major\)/);
    assert.equal(known.exitCode, error.exitCode);
    assert.match(new MissingToolError('x', { tool: '/opt/pg/bin/pg_dump' }).message, /\/opt\/pg\/bin\/pg_dump does not exist/);
    assert.equal(missingUnderRunuser('runuser: failed to execute pg_dump: No such file or directory\n'), 'pg_dump');
    assert.equal(missingUnderRunuser('pg_dump: error: connection failed'), undefined);
  });

  test('a PostgreSQL tool older than the server is refused; the same major or newer is not', () => {
    const refused = postgresToolTooOld('source pg', '/x/pg_dump', 'pg_dump (PostgreSQL) 9.6.24', '15.20 (Debian 15.20-0+deb12u1)');
    assert.match(refused!.message, /^source pg: pg_dump 9\.6\.24 \(\/x\/pg_dump\) is older than the server, PostgreSQL 15\.20, and cannot dump it \(needed: pg_dump of PostgreSQL 15 or newer/);
    assert.equal(postgresToolTooOld('source pg', 'pg_dump', 'pg_dump (PostgreSQL) 15.4', '15.20'), undefined);
    assert.equal(postgresToolTooOld('source pg', 'pg_dump', 'pg_dump (PostgreSQL) 17.2', '15.20'), undefined);
    assert.equal(postgresToolTooOld('source pg', 'pg_dump', 'pg_dump (PostgreSQL) 9.6.24', '9.6.10'), undefined);
    assert.ok(postgresToolTooOld('source pg', 'pg_dump', 'pg_dump (PostgreSQL) 9.5.1', '9.6.10'));
  });
});
