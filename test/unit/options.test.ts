import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { collect, forcedTierFlag, loadAgentConfig, parseTime, scratchUrls, SOURCES_FLAG, validateRunScope, wantsJson, withFlags, JSON_FLAG } from '../../agent/src/commands/options';

/** The error a call throws, checked to be a usage error. */
function usageError(run: () => unknown): ColdsealError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ColdsealError, `expected a ColdsealError, got ${String(error)}`);
    assert.equal(error.exitCode, EXIT.USAGE);
    return error;
  }
  assert.fail('expected a usage error');
}

test('collect: comma-separated and repeated values, in order, blanks dropped', () => {
  const cases: [string, string[] | undefined, string[]][] = [
    ['a', undefined, ['a']],
    ['a,b', undefined, ['a', 'b']],
    [' a , b ,', undefined, ['a', 'b']],
    ['c', ['a', 'b'], ['a', 'b', 'c']],
    [',,', ['x'], ['x']],
  ];
  for (const [value, previous, expected] of cases) assert.deepEqual(collect(value, previous), expected, `collect(${JSON.stringify(value)}, ${JSON.stringify(previous)})`);
});

test('parseTime: ISO times, dates and stamps; anything else is a usage error naming the flag and the forms', () => {
  assert.equal(parseTime(undefined, '--since'), undefined);
  const cases: [string, string][] = [
    ['2026-11-22T01:00:00Z', '2026-11-22T01:00:00.000Z'],
    ['2026-11-22', '2026-11-22T00:00:00.000Z'],
    ['20261122T010203Z', '2026-11-22T01:02:03.000Z'],
    ['2026-11-22T01:00:00+02:00', '2026-11-21T23:00:00.000Z'],
  ];
  for (const [value, iso] of cases) assert.equal(parseTime(value, '--since')!.toISOString(), iso, value);
  for (const bad of ['yesterday', '20261122T0102Z', '2026-13-45']) {
    const error = usageError(() => parseTime(bad, '--until'));
    assert.match(error.message, new RegExp(`--until "${bad}" is not a time`));
    assert.match(error.hint!, /ISO time .* a date .* a stamp/);
  }
});

test('validateRunScope: auto or no tier leaves the calendar to decide; a named tier is kept; sources are split', () => {
  assert.deepEqual(validateRunScope({}), { tier: undefined, sources: undefined });
  assert.deepEqual(validateRunScope({ tier: 'auto' }), { tier: undefined, sources: undefined });
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) assert.equal(validateRunScope({ tier }).tier, tier);
  assert.deepEqual(validateRunScope({ source: 'pg, files,,mysql ' }).sources, ['pg', 'files', 'mysql']);
  // Only separators: all sources, not an empty list that would back up nothing.
  assert.equal(validateRunScope({ source: ' , ' }).sources, undefined);
});

test('validateRunScope: an unknown tier is refused, listing the tiers', () => {
  for (const tier of ['hourly', 'Daily', '']) {
    const error = usageError(() => validateRunScope({ tier }));
    assert.match(error.message, new RegExp(`--tier "${tier}" is not a tier`));
    assert.equal(error.hint, 'Use one of: auto, daily, weekly, monthly, yearly');
  }
});

test('loadAgentConfig: exactly one of --config and --config-parameter, checked before anything is read', async () => {
  await assert.rejects(loadAgentConfig({}), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /no configuration given/.test(e.message) && /--config FILE or --config-parameter NAME/.test(e.hint!));
  await assert.rejects(loadAgentConfig({ config: '/nonexistent.json', configParameter: '/coldseal/x' }), (e: unknown) => e instanceof ColdsealError && e.exitCode === EXIT.USAGE && /exclude each other/.test(e.message));
});

test('flags as commander parses them: repeatable values collect, defaults apply, --json is seen on the program', () => {
  const program = new Command().exitOverride();
  withFlags(program, JSON_FLAG);
  const sub = withFlags(new Command('run').exitOverride(), forcedTierFlag('auto'), { ...SOURCES_FLAG }, { flags: '--table <names>', description: 't', parse: collect });
  let seen: Record<string, unknown> = {};
  let json = false;
  sub.action((options: Record<string, unknown>, command: Command) => {
    seen = options;
    json = wantsJson(command);
  });
  program.addCommand(sub);
  program.parse(['node', 'coldseal', '--json', 'run', '--table', 'a,b', '--table', 'c', '--source', 'pg']);
  assert.deepEqual(seen, { tier: 'auto', table: ['a', 'b', 'c'], source: 'pg' });
  assert.equal(json, true);
  assert.match(forcedTierFlag().description, /auto \(calendar\) or daily, weekly, monthly, yearly/);
});

test('scratchUrls maps the options to the engines', () => {
  assert.deepEqual(scratchUrls({ scratchPostgres: 'postgres://a@h/db', scratchMysql: 'mysql://b@h/db' }), { postgres: 'postgres://a@h/db', mysql: 'mysql://b@h/db' });
  assert.deepEqual(scratchUrls({}), { postgres: undefined, mysql: undefined });
});
