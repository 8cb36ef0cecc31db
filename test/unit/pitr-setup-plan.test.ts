import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import {
  PITR_SETTINGS_QUERY,
  planPitrSetup,
  quotePgLiteral,
  type PgSettingRow,
  type PitrSetupInput,
  type PitrSetupOutcome,
  type PitrSetupPlan,
} from '../../agent/src/pitr/setup-plan';
import { pgQuery } from '../../local-system/databases';

const COMMAND = "/usr/local/bin/coldseal pitr archive --source pg '%p' %f";

/** A fresh PostgreSQL 15 as the local one reads: archiving off, archive_command shown as "(disabled)". */
function rows(over: Record<string, Partial<PgSettingRow>> = {}): PgSettingRow[] {
  const base: PgSettingRow[] = [
    { name: 'wal_level', setting: 'replica', unit: null, context: 'postmaster', pending_restart: false, reset_val: 'replica' },
    { name: 'archive_mode', setting: 'off', unit: null, context: 'postmaster', pending_restart: false, reset_val: 'off' },
    { name: 'archive_command', setting: '(disabled)', unit: null, context: 'sighup', pending_restart: false, reset_val: '' },
    { name: 'archive_timeout', setting: '0', unit: 's', context: 'sighup', pending_restart: false, reset_val: '0' },
    { name: 'archive_library', setting: '', unit: null, context: 'sighup', pending_restart: false, reset_val: '' },
  ];
  return base.map((r) => ({ ...r, ...over[r.name] }));
}

function input(over: Partial<PitrSetupInput> = {}): PitrSetupInput {
  return { settings: rows(), superuser: true, serverVersionNum: 150020, archiveCommand: COMMAND, archiveTimeoutSeconds: 60, replace: false, ...over };
}

function planOf(outcome: PitrSetupOutcome): PitrSetupPlan {
  if (outcome.kind !== 'plan') assert.fail(`refused: ${outcome.error.message}`);
  return outcome.plan;
}

const commandLiteral = `'${COMMAND.replace(/'/g, "''")}'`;

describe('planPitrSetup: plans', () => {
  const cases: Array<{ name: string; input: PitrSetupInput; statements: string[]; satisfied: string[]; apply: PitrSetupPlan['apply'] }> = [
    {
      name: 'fresh server: archive_mode needs a restart; wal_level replica is kept',
      input: input(),
      statements: ["ALTER SYSTEM SET archive_mode = 'on'", `ALTER SYSTEM SET archive_command = ${commandLiteral}`, "ALTER SYSTEM SET archive_timeout = '60'"],
      satisfied: ['wal_level=replica'],
      apply: 'restart',
    },
    {
      name: 'wal_level minimal is raised to replica',
      input: input({ settings: rows({ wal_level: { setting: 'minimal' }, archive_mode: { setting: 'on' }, archive_command: { setting: COMMAND, reset_val: COMMAND }, archive_timeout: { setting: '60' } }) }),
      statements: ["ALTER SYSTEM SET wal_level = 'replica'"],
      satisfied: ['archive_mode=on', `archive_command=${COMMAND}`, 'archive_timeout=60'],
      apply: 'restart',
    },
    {
      name: 'logical and always already satisfy replica and on; never lowered',
      input: input({ settings: rows({ wal_level: { setting: 'logical' }, archive_mode: { setting: 'always' }, archive_command: { setting: COMMAND, reset_val: COMMAND } }), archiveTimeoutSeconds: 300 }),
      statements: ["ALTER SYSTEM SET archive_timeout = '300'"],
      satisfied: ['wal_level=logical', 'archive_mode=always', `archive_command=${COMMAND}`],
      apply: 'reload',
    },
    {
      name: 'everything already as wanted: nothing to do',
      input: input({ settings: rows({ archive_mode: { setting: 'on' }, archive_command: { setting: COMMAND, reset_val: COMMAND }, archive_timeout: { setting: '60' } }) }),
      statements: [],
      satisfied: ['wal_level=replica', 'archive_mode=on', `archive_command=${COMMAND}`, 'archive_timeout=60'],
      apply: 'none',
    },
    {
      name: 'another archive_command with --replace is replaced (a reload)',
      input: input({ replace: true, settings: rows({ archive_mode: { setting: 'on' }, archive_command: { setting: 'cp %p /mnt/wal/%f', reset_val: 'cp %p /mnt/wal/%f' }, archive_timeout: { setting: '60' } }) }),
      statements: [`ALTER SYSTEM SET archive_command = ${commandLiteral}`],
      satisfied: ['wal_level=replica', 'archive_mode=on', 'archive_timeout=60'],
      apply: 'reload',
    },
    {
      name: 'a right value with a restart pending is set again in postgresql.auto.conf (keeps logical)',
      input: input({ settings: rows({ wal_level: { setting: 'logical', pending_restart: true }, archive_mode: { setting: 'on' }, archive_command: { setting: COMMAND, reset_val: COMMAND }, archive_timeout: { setting: '60' } }) }),
      statements: ["ALTER SYSTEM SET wal_level = 'logical'"],
      satisfied: ['archive_mode=on', `archive_command=${COMMAND}`, 'archive_timeout=60'],
      apply: 'restart',
    },
    {
      name: 'PostgreSQL 14 has no archive_library row',
      input: input({ serverVersionNum: 140010, settings: rows().filter((r) => r.name !== 'archive_library') }),
      statements: ["ALTER SYSTEM SET archive_mode = 'on'", `ALTER SYSTEM SET archive_command = ${commandLiteral}`, "ALTER SYSTEM SET archive_timeout = '60'"],
      satisfied: ['wal_level=replica'],
      apply: 'restart',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const plan = planOf(planPitrSetup(c.input));
      assert.deepEqual(plan.changes.map((ch) => ch.statement), c.statements);
      assert.deepEqual(plan.satisfied.map((s) => `${s.name}=${s.value}`), c.satisfied);
      assert.equal(plan.apply, c.apply);
    });
  }

  test('each change says what it was, what it becomes and how it takes effect', () => {
    const plan = planOf(planPitrSetup(input()));
    assert.deepEqual(
      plan.changes.map((c) => [c.name, c.from, c.to, c.takesEffect]),
      [
        ['archive_mode', 'off', 'on', 'restart'],
        ['archive_command', '', COMMAND, 'reload'],
        ['archive_timeout', '0', '60', 'reload'],
      ],
    );
  });
});

describe('planPitrSetup: refusals', () => {
  const cases: Array<{ name: string; input: PitrSetupInput; exit: number; message: RegExp; hint: RegExp }> = [
    { name: 'not a superuser', input: input({ superuser: false }), exit: EXIT.SOURCE, message: /not a superuser.*ALTER SYSTEM/, hint: /superuser/ },
    {
      name: 'archive_command set to something else without --replace: shows it',
      input: input({ settings: rows({ archive_mode: { setting: 'on' }, archive_command: { setting: 'cp %p /mnt/wal/%f', reset_val: 'cp %p /mnt/wal/%f' } }) }),
      exit: EXIT.REFUSED,
      message: /archive_command is already set to 'cp %p \/mnt\/wal\/%f'/,
      hint: /--replace/,
    },
    {
      name: 'archive_command hidden as "(disabled)" is still read from reset_val',
      input: input({ settings: rows({ archive_command: { setting: '(disabled)', reset_val: 'rsync %p backup:/wal/%f' } }) }),
      exit: EXIT.REFUSED,
      message: /archive_command is already set to 'rsync %p backup:\/wal\/%f'/,
      hint: /--replace/,
    },
    {
      name: 'archive_library set (PostgreSQL 15+), even with --replace: names it',
      input: input({ replace: true, settings: rows({ archive_library: { setting: 'basic_archive', reset_val: 'basic_archive' } }) }),
      exit: EXIT.REFUSED,
      message: /archive_library is set to 'basic_archive'/,
      hint: /ALTER SYSTEM RESET archive_library/,
    },
    { name: 'PostgreSQL older than 9.6', input: input({ serverVersionNum: 90524 }), exit: EXIT.SOURCE, message: /older than 9\.6/, hint: /9\.6/ },
    { name: 'archive timeout 0', input: input({ archiveTimeoutSeconds: 0 }), exit: EXIT.USAGE, message: /archive timeout 0/, hint: /--archive-timeout/ },
    { name: 'archive timeout fractional', input: input({ archiveTimeoutSeconds: 1.5 }), exit: EXIT.USAGE, message: /archive timeout 1\.5/, hint: /seconds/ },
    { name: 'archive_command with a line break', input: input({ archiveCommand: '/bin/x %p\n%f' }), exit: EXIT.USAGE, message: /line break/, hint: /line/ },
    { name: 'archive_timeout not in seconds', input: input({ settings: rows({ archive_timeout: { unit: 'ms' } }) }), exit: EXIT.SOURCE, message: /archive_timeout reads '0' with unit 'ms'/, hint: /report/ },
    { name: 'a PostgreSQL 15 without the archive_library row', input: input({ settings: rows().filter((r) => r.name !== 'archive_library') }), exit: EXIT.SOURCE, message: /no row for archive_library/, hint: /version/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const outcome = planPitrSetup(c.input);
      if (outcome.kind !== 'refused') assert.fail(`planned: ${JSON.stringify(outcome.plan)}`);
      assert.ok(outcome.error instanceof ColdsealError);
      assert.equal(outcome.error.exitCode, c.exit);
      assert.match(outcome.error.message, c.message);
      assert.match(outcome.error.hint ?? '', c.hint);
    });
  }
});

describe('quotePgLiteral', () => {
  const cases: Array<[string, string]> = [
    ['replica', "'replica'"],
    ["it's", "'it''s'"],
    ["'%p' '%f'", "'''%p'' ''%f'''"],
    ['C:\\wal\\%f', "E'C:\\\\wal\\\\%f'"],
    ["a\\'b", "E'a\\\\''b'"],
    ['', "''"],
  ];
  for (const [value, literal] of cases) {
    test(`${JSON.stringify(value)} → ${literal}`, () => assert.equal(quotePgLiteral(value), literal));
  }
  test('NUL and line breaks are refused naming the setting', () => {
    for (const bad of ['a\0b', 'a\nb', 'a\rb']) {
      assert.throws(() => quotePgLiteral(bad, 'archive_command'), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /archive_command/.test(e.message));
    }
  });
});

describe('cross-check with the local PostgreSQL 15 (read-only)', () => {
  test('pg_settings rows have the shape the planner reads, and it plans from them', async () => {
    const live = await pgQuery<Record<string, unknown>>('postgres', PITR_SETTINGS_QUERY);
    const byName = new Map(live.map((r) => [r.name as string, r]));
    assert.deepEqual([...byName.keys()].sort(), ['archive_command', 'archive_library', 'archive_mode', 'archive_timeout', 'wal_level']);
    for (const r of live) {
      assert.equal(typeof r.setting, 'string', `${String(r.name)}.setting`);
      assert.equal(typeof r.pending_restart, 'boolean', `${String(r.name)}.pending_restart`);
      assert.ok(r.unit === null || typeof r.unit === 'string');
    }
    assert.equal(byName.get('archive_timeout')!.unit, 's');
    assert.equal(byName.get('wal_level')!.context, 'postmaster');
    assert.equal(byName.get('archive_mode')!.context, 'postmaster');
    assert.equal(byName.get('archive_command')!.context, 'sighup');
    assert.equal(byName.get('archive_timeout')!.context, 'sighup');
    assert.equal(byName.get('archive_library')!.context, 'sighup');
    const [{ version, superuser }] = await pgQuery<{ version: number; superuser: boolean }>('postgres', "select current_setting('server_version_num')::int as version, rolsuper as superuser from pg_roles where rolname = current_user");
    assert.ok(version >= 150000 && version < 160000, `version ${version}`);
    const outcome = planPitrSetup({ settings: live as unknown as PgSettingRow[], superuser, serverVersionNum: version, archiveCommand: COMMAND, archiveTimeoutSeconds: 60, replace: false });
    // The test server archives nothing, so the plan must at least set our archive_command.
    const plan = planOf(outcome);
    assert.ok(plan.changes.some((c) => c.name === 'archive_command' && c.to === COMMAND), JSON.stringify(plan));
  });

  test('PostgreSQL reads each quoted literal back as the original string', async () => {
    const values = [COMMAND, "it's", "a\\'b", 'C:\\wal\\%f', "'; select 1; --", ''];
    const sql = `select ${values.map((v, i) => `${quotePgLiteral(v)} as v${i}`).join(', ')}`;
    const [row] = await pgQuery<Record<string, string>>('postgres', sql);
    assert.deepEqual(values.map((_, i) => row[`v${i}`]), values);
  });
});
