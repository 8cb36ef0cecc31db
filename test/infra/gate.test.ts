import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, sampleContext } from './fixtures';

/**
 * The gate: what a user runs. `npx cdk synth` with the cdk.json app and its sample context (with a
 * recipient key of the tests' own: the committed example key is refused), offline,
 * with aws-cdk-lib's CloudFormation validation on and cdk-nag; then cfn-lint on the template.
 */
function cdk(args: string[]): { code: number | null; out: string } {
  const result = spawnSync('npx', ['cdk', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, CDK_DISABLE_VERSION_CHECK: '1', CDK_VALIDATION: 'true', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  return { code: result.status, out: `${result.stdout}\n${result.stderr}` };
}

test('npx cdk synth works offline, passes cdk-nag and CloudFormation validation, and the template passes cfn-lint', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'coldseal-synth-'));
  // cdk.json's context with a recipient of the tests' own: synth refuses the committed example key.
  const synth = cdk(['synth', '--quiet', '--output', outdir, '--context', `coldseal=${JSON.stringify(sampleContext())}`]);
  assert.equal(synth.code, 0, synth.out);
  assert.doesNotMatch(synth.out, /AwsSolutions-|Validation failed|\[Warning\]/, synth.out);
  const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: unknown[] };
  assert.deepEqual(report.pluginReports, []);
  const templateFile = join(outdir, 'Coldseal.template.json');
  const template = JSON.parse(readFileSync(templateFile, 'utf8')) as { Resources: Record<string, { Type: string }> };
  assert.ok(Object.values(template.Resources).some((r) => r.Type === 'AWS::SSM::Document'));
  const lint = spawnSync('cfn-lint', ['--format', 'parseable', templateFile], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(lint.error, undefined, `cfn-lint could not run: ${String(lint.error)}`);
  assert.equal(lint.status, 0, `cfn-lint:\n${lint.stdout}${lint.stderr}`);
});

test('a bad context fails cdk synth with messages that name the fields', () => {
  const bad = {
    groups: { db: { schedule: 'cron(1 2 3)', signingPublicKeys: 'infra/example-keys/db-signing.pub.asc', sources: [{ name: 'pg', type: 'postgres' }] } },
    recipients: 'infra/example-keys/escrow.pub.asc',
    timeZone: 'Bad/Zone',
    retention: { monthly: { expireAfterDays: 60, lock: { mode: 'GOVERNANCE', days: 30 }, transitions: [{ storageClass: 'GLACIER', afterDays: 30 }] } },
  };
  const synth = cdk(['synth', '--quiet', '--output', mkdtempSync(join(tmpdir(), 'coldseal-synth-')), '--context', `coldseal=${JSON.stringify(bad)}`]);
  assert.notEqual(synth.code, 0);
  assert.match(synth.out, /coldseal\.groups\.db\.schedule: "cron\(1 2 3\)" has 3 fields/);
  assert.match(synth.out, /coldseal\.timeZone: "Bad\/Zone" is not an IANA time zone/);
  assert.doesNotMatch(synth.out, /^\s+at /m, 'a configuration error is reported without a stack trace');
});

test('cdk.json as committed (the example recipient key) fails cdk synth, naming the field and the command that makes real keys', () => {
  const synth = cdk(['synth', '--quiet', '--output', mkdtempSync(join(tmpdir(), 'coldseal-synth-'))]);
  assert.notEqual(synth.code, 0);
  assert.match(synth.out, /coldseal\.recipients: key [0-9a-f]{40} is the example key committed in infra\/example-keys\/escrow\.pub\.asc/);
  assert.match(synth.out, /coldseal keys generate --out DIR --group GROUP/);
  assert.doesNotMatch(synth.out, /^\s+at /m, 'a configuration error is reported without a stack trace');
});
