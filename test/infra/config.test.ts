/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates and contexts are untyped JSON */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { App, Stack } from 'aws-cdk-lib';
import { generateKeyPair } from '../../runtime/pgp';
import { Coldseal } from '../../infra/lib/coldseal';
import { resolveContext } from '../../infra/lib/config';
import { ColdsealConfigError, cronProblem, retentionProblems, timeZoneProblem, DEFAULT_RETENTION, type ColdsealProps } from '../../infra/lib/settings';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetParameterCommand, GetParametersCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { loadConfigParameter } from '../../agent/src/config/load';
import { sourceSchema } from '../../format/agent-config';
import { deploymentParameter, groupParameters } from '../../format/parameters';
import { buildApp } from '../../infra/lib/build-app';
import { EXAMPLE_RECIPIENT, EXAMPLE_SIGNING, longExcludes, manySources, ROOT, sampleContext, standInExecutables, TEST_RECIPIENT_FILE, twoGroupContext } from './fixtures';
import { resourcesOfType, type Template } from './template-tools';

async function rejection(mutate: (context: Record<string, any>) => void | Promise<void>): Promise<string> {
  const context = sampleContext() as Record<string, any>;
  await mutate(context);
  try {
    await resolveContext(context, ROOT);
  } catch (error) {
    assert.ok(error instanceof ColdsealConfigError, `expected a ColdsealConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('the context was accepted');
}

describe('coldseal context validation (what cdk synth reports)', () => {
  test('the sample context in cdk.json resolves (with the tests\' own recipient), with keys read from files', async () => {
    const props = await resolveContext(sampleContext(), ROOT);
    assert.equal(props.groups.length, 1);
    assert.equal(props.groups[0].name, 'db');
    assert.match(props.recipients, /BEGIN PGP PUBLIC KEY BLOCK/);
    assert.match(props.groups[0].signingPublicKeys, /BEGIN PGP PUBLIC KEY BLOCK/);
    assert.equal(props.retention?.yearly?.lock.mode, 'COMPLIANCE');
  });

  test("a group's maxHosts in cdk.json reaches its schedule's delivery timeout", async () => {
    const context = twoGroupContext();
    (context.groups as Record<string, Record<string, unknown>>).web.maxHosts = 500;
    const props = await resolveContext(context, ROOT);
    assert.equal(props.groups.find((g) => g.name === 'web')?.maxHosts, 500);
    const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
    const template = built.app.synth().getStackByName(built.stack.stackName).template as Template;
    const timeoutOf = (group: string) => {
      const [, schedule] = resourcesOfType(template, 'AWS::Scheduler::Schedule').find(([id]) => id.includes(`Backup${group}`))!;
      return JSON.parse(JSON.stringify(schedule.Properties.Target.Input).match(/TimeoutSeconds\\":(\d+)/)![1]) as number;
    };
    // 500 hosts, 10 at a time, 4 h runs: 49 waves behind the first (format/run-document.ts runSpread).
    assert.ok(timeoutOf('web') > timeoutOf('db') * 10, `web ${timeoutOf('web')} s, db ${timeoutOf('db')} s`);
  });

  test('a missing context says where to put it', async () => {
    await assert.rejects(resolveContext(undefined, ROOT), /"coldseal" is missing: add it to the "context" of cdk\.json/);
  });

  test('an unknown tier is refused, naming it', async () => {
    const message = await rejection((c) => {
      c.retention.hourly = { expireAfterDays: 2, lock: { mode: 'GOVERNANCE', days: 1 } };
    });
    assert.match(message, /coldseal\.retention\.hourly: unknown tier "hourly"/);
  });

  test('an expiry under the storage class minimum duration is refused', async () => {
    const message = await rejection((c) => {
      c.retention.monthly = { expireAfterDays: 100, lock: { mode: 'GOVERNANCE', days: 60 }, transitions: [{ storageClass: 'GLACIER', afterDays: 30 }] };
    });
    assert.match(message, /coldseal\.retention\.monthly\.expireAfterDays: monthly backups would stay 70 days in GLACIER, under its minimum storage duration of 90 days/);
  });

  test('Deep Archive needs 180 days, also between two transitions', async () => {
    const message = await rejection((c) => {
      c.retention.yearly = {
        expireAfterDays: 200,
        lock: { mode: 'COMPLIANCE', days: 100 },
        transitions: [
          { storageClass: 'GLACIER', afterDays: 0 },
          { storageClass: 'DEEP_ARCHIVE', afterDays: 90 },
        ],
      };
    });
    assert.match(message, /coldseal\.retention\.yearly\.expireAfterDays: yearly backups would stay 110 days in DEEP_ARCHIVE/);
  });

  test('an expiry shorter than the lock is refused', async () => {
    const message = await rejection((c) => {
      c.retention.daily = { expireAfterDays: 35, lock: { mode: 'GOVERNANCE', days: 40 } };
    });
    assert.match(message, /coldseal\.retention\.daily\.lock\.days: daily backups would be locked for 40 days but expire after 35/);
  });

  test('a bad cron is refused, naming the group', async () => {
    const message = await rejection((c) => {
      c.groups.db.schedule = '30 1 * * *';
    });
    assert.match(message, /coldseal\.groups\.db\.schedule: "30 1 \* \* \*" is not an EventBridge Scheduler cron expression/);
    const both = await rejection((c) => {
      c.groups.db.schedule = 'cron(30 1 * * MON *)';
    });
    assert.match(both, /coldseal\.groups\.db\.schedule: .*exactly one of day-of-month and day-of-week must be "\?"/);
    const hours = await rejection((c) => {
      c.drill.schedule = 'cron(0 25 ? * SAT *)';
    });
    assert.match(hours, /coldseal\.drill\.schedule: .*"25" is not a valid hours field/);
  });

  test('a bad time zone is refused, at the top level and per group', async () => {
    assert.match(await rejection((c) => void (c.timeZone = 'Mars/Olympus_Mons')), /coldseal\.timeZone: "Mars\/Olympus_Mons" is not an IANA time zone/);
    assert.match(await rejection((c) => void (c.groups.db.timeZone = 'CEST+2')), /coldseal\.groups\.db\.timeZone: "CEST\+2" is not an IANA time zone/);
  });

  test('a bad email is refused', async () => {
    const message = await rejection((c) => {
      c.alertEmails = ['ops@example.com', 'not-an-email'];
    });
    assert.match(message, /coldseal\.alertEmails\.1: must be an email address/);
  });

  test('a recipient that is not a public key is refused', async () => {
    const missing = await rejection((c) => void (c.recipients = ['keys/nowhere.asc']));
    assert.match(missing, /coldseal\.recipients\[0\]: "keys\/nowhere\.asc" is neither armored key text nor a readable file/);
    const garbage = await rejection((c) => {
      c.recipients = ['-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n'];
    });
    assert.match(garbage, /coldseal\.recipients\[0\] is not an armored OpenPGP public key/);
  });

  test('a private key given as recipient or as signing key is refused', async () => {
    const pair = await generateKeyPair({ name: 'oops' });
    const asRecipient = await rejection((c) => void (c.recipients = [EXAMPLE_RECIPIENT, pair.privateKey]));
    assert.match(asRecipient, /coldseal\.recipients\[1\] holds a PRIVATE key/);
    const asSigning = await rejection((c) => void (c.groups.db.signingPublicKeys = pair.privateKey));
    assert.match(asSigning, /coldseal\.groups\.db\.signingPublicKeys\[0\] holds a PRIVATE key/);
  });

  test('the committed example recipient key is refused, naming the field and the command that makes real keys', async () => {
    const message = await rejection((c) => void (c.recipients = ['infra/example-keys/escrow.pub.asc']));
    assert.match(message, /coldseal\.recipients: key 691eff5cdcd8a515c5a1491bc2d6cbcb1b3d60f8 is the example key committed in infra\/example-keys\/escrow\.pub\.asc/);
    assert.match(message, /coldseal keys generate --out DIR --group GROUP/);
    // Also when it hides behind a real key in the same entry (every key of a file is read, not only the first).
    const second = await rejection((c) => void (c.recipients = [`${readFileSync(join(ROOT, TEST_RECIPIENT_FILE), 'utf8')}\n${EXAMPLE_RECIPIENT}`]));
    assert.match(second, /is the example key committed/);
  });

  test('a signing key of any group given as recipient is refused at synth', async () => {
    const signing = await generateKeyPair({ name: 'web signing' }, undefined, { signOnly: true });
    const message = await rejection((c) => {
      c.groups.web = { schedule: 'cron(0 3 * * ? *)', signingPublicKeys: signing.publicKey, sources: [{ name: 'www', type: 'files', paths: ['/var/www'] }] };
      c.recipients = [TEST_RECIPIENT_FILE, signing.publicKey];
    });
    assert.match(message, new RegExp(`coldseal\\.recipients: key ${signing.fingerprint} is the signing key of group web \\(coldseal\\.groups\\.web\\.signingPublicKeys\\)`));
    assert.match(message, /its private half is stored in AWS/);
    const db = await rejection((c) => void (c.recipients = [EXAMPLE_SIGNING]));
    assert.match(db, /is the signing key of group db/);
  });

  test('bad sources, groups, drill and unknown fields are refused by name', async () => {
    assert.match(await rejection((c) => void (c.groups.db.sources = [{ name: 'pg', type: 'oracle' }])), /coldseal\.groups\.db\.sources\.0\.type/);
    assert.match(await rejection((c) => void (c.groups['bad name'] = c.groups.db)), /coldseal\.groups\.bad name/);
    assert.match(await rejection((c) => void (c.drill.group = 'nope')), /coldseal\.drill\.group: "nope" is not one of the groups \(db\)/);
    assert.match(await rejection((c) => void (c.retentionDays = 3)), /coldseal: Unrecognized key: "retentionDays"/);
    assert.match(await rejection((c) => void (c.calendar = { monthly: { day: 31 } })), /coldseal\.calendar\.monthly\.day/);
  });
});

describe('rules', () => {
  test('cron expressions', () => {
    assert.equal(cronProblem('cron(30 1 * * ? *)'), null);
    assert.equal(cronProblem('cron(0 6 ? * SAT *)'), null);
    assert.equal(cronProblem('cron(0/15 8-18 ? * MON-FRI *)'), null);
    assert.equal(cronProblem('cron(0 0 1 * ? *)'), null);
    assert.match(cronProblem('rate(1 day)') ?? '', /not an EventBridge Scheduler cron/);
    assert.match(cronProblem('cron(0 0 * * ?)') ?? '', /has 5 fields/);
    assert.match(cronProblem('cron(61 0 * * ? *)') ?? '', /"61" is not a valid minutes field/);
  });

  test('time zones', () => {
    assert.equal(timeZoneProblem('Europe/Paris'), null);
    assert.equal(timeZoneProblem('UTC'), null);
    assert.ok(timeZoneProblem('Europe/Pariss'));
  });

  test('the default retention is buildable', () => {
    assert.deepEqual(retentionProblems(DEFAULT_RETENTION), []);
  });
});

describe('construct props are checked in the constructor, naming the prop', () => {
  const base = (): ColdsealProps => ({
    groups: [{ name: 'db', schedule: 'cron(30 1 * * ? *)', signingPublicKeys: EXAMPLE_SIGNING, sources: [{ name: 'pg', type: 'postgres' }] }],
    recipients: EXAMPLE_RECIPIENT,
    agentExecutables: standInExecutables(),
  });
  const build = (props: ColdsealProps) => new Coldseal(new Stack(new App(), 'S'), 'C', props);

  test('a valid set of props builds', () => {
    assert.ok(build(base()).bucket);
  });
  test('bad props throw', () => {
    assert.throws(() => build({ ...base(), timeZone: 'Nowhere/Land' }), /Coldseal props\.timeZone: "Nowhere\/Land" is not an IANA time zone/);
    assert.throws(() => build({ ...base(), retention: { daily: { expireAfterDays: 10, lock: { mode: 'GOVERNANCE', days: 20 } } } }), /DataVault props\.retention: daily\.lock\.days/);
    assert.throws(() => build({ ...base(), recipients: EXAMPLE_RECIPIENT.replace(/PUBLIC/g, 'PRIVATE') }), /AgentDelivery props\.recipients holds a PRIVATE key/);
    assert.throws(() => build({ ...base(), alertEmails: ['x'] }), /Alerts props\.emails\[0\]: "x" is not an email address/);
    assert.throws(() => build({ ...base(), drill: { group: 'other', schedule: 'cron(0 6 ? * SAT *)' } }), /Coldseal props\.drill\.group/);
    assert.throws(() => build({ ...base(), groups: [{ ...base().groups[0], schedule: 'daily' }] }), /BackupSchedules props\.backups\[0\]\.cron/);
    assert.throws(() => build({ ...base(), groups: [{ ...base().groups[0], sources: [{ name: 'pg', type: 'postgres', port: 0 }] }] }), /AgentDelivery props\.groups\[0\] \(group "db"\): the agent configuration would be invalid: sources\.0\.port/);
  });
});

/**
 * The value of a parameter as CloudFormation resolves it in the account where it is longest: the
 * bucket name at S3's 63 characters, the topic ARN with a 256-character name, a GovCloud KMS
 * multi-Region key ARN, a long region code. The tier must hold that.
 */
function longestValue(template: Template, value: unknown): string {
  const resolve = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const obj = v as Record<string, any>;
    if ('Fn::Join' in obj) return (obj['Fn::Join'][1] as unknown[]).map(resolve).join(obj['Fn::Join'][0]);
    if ('Ref' in obj) {
      if (obj.Ref === 'AWS::Region') return 'ap-southeast-5';
      if (obj.Ref === 'AWS::Partition') return 'aws-us-gov';
      if (obj.Ref === 'AWS::AccountId') return '123456789012';
      const type = template.Resources[obj.Ref]?.Type;
      if (type === 'AWS::S3::Bucket') return 'b'.repeat(63);
      if (type === 'AWS::SNS::Topic') return `arn:aws-us-gov:sns:us-gov-west-1:123456789012:${'t'.repeat(256)}`;
      if (type === 'AWS::SSM::Document') return 'd'.repeat(128);
      if (type === 'AWS::Logs::LogGroup') return 'l'.repeat(512);
      throw new Error(`longestValue: no longest value for a Ref to ${type}`);
    }
    if ('Fn::GetAtt' in obj) {
      const type = template.Resources[obj['Fn::GetAtt'][0]]?.Type;
      if (type === 'AWS::KMS::Key' && obj['Fn::GetAtt'][1] === 'Arn') return `arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-${'0'.repeat(32)}`;
      throw new Error(`longestValue: no longest value for ${JSON.stringify(obj)}`);
    }
    throw new Error(`longestValue: cannot resolve ${JSON.stringify(obj)}`);
  };
  return resolve(value);
}

/**
 * What PutParameter accepts per tier (no Tier: the account's default, Standard unless changed);
 * Intelligent-Tiering takes Advanced when the value needs it, so at most Advanced's 8 KB.
 */
const TIER_BYTES: Record<string, number> = { Standard: 4096, Advanced: 8192, 'Intelligent-Tiering': 8192 };

async function synthGroups(groups: Record<string, Record<string, unknown>[]>): Promise<Template> {
  const context = twoGroupContext() as Record<string, any>;
  for (const [name, sources] of Object.entries(groups)) context.groups[name] = { ...context.groups.web, sources };
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
  return built.app.synth().getStackByName(built.stack.stackName).template as Template;
}

/** An SSM client that answers from the template's parameters, resolved with their longest values. */
function templateSsm(template: Template): SSMClient {
  const values = new Map(resourcesOfType(template, 'AWS::SSM::Parameter').map(([, r]) => [r.Properties.Name as string, longestValue(template, r.Properties.Value)]));
  const parameter = (name: string) => ({ Name: name, Type: 'String', Value: values.get(name) });
  return {
    send: async (command: unknown) => {
      if (command instanceof GetParameterCommand) {
        if (!values.has(command.input.Name!)) throw Object.assign(new Error(`${command.input.Name} not found`), { name: 'ParameterNotFound' });
        return { Parameter: parameter(command.input.Name!) };
      }
      if (command instanceof GetParametersCommand) {
        const names = command.input.Names!;
        return { Parameters: names.filter((n) => values.has(n)).map(parameter), InvalidParameters: names.filter((n) => !values.has(n)) };
      }
      throw new Error(`templateSsm: unexpected ${String(command)}`);
    },
  } as unknown as SSMClient;
}

describe('a group configuration of any size fits the SSM parameters the stack writes', () => {
  const expected = (sources: Record<string, unknown>[]) => sources.map((s) => sourceSchema.parse(s));

  test('40 sources (about 10 KB): every parameter, resolved at its longest, fits its tier, and the agent reads the whole configuration back', async () => {
    const sources = manySources(40);
    assert.ok(Buffer.byteLength(JSON.stringify(expected(sources))) > 8192, 'the fixture is over any parameter size');
    const template = await synthGroups({ many: sources });
    const problems: string[] = [];
    for (const [id, r] of resourcesOfType(template, 'AWS::SSM::Parameter')) {
      const tier = (r.Properties.Tier as string | undefined) ?? 'Standard';
      const bytes = Buffer.byteLength(longestValue(template, r.Properties.Value));
      if (!(tier in TIER_BYTES)) problems.push(`${id} (${r.Properties.Name}): tier ${tier} is not one this test knows`);
      else if (bytes > TIER_BYTES[tier]) problems.push(`${id} (${r.Properties.Name}): ${bytes} bytes in a ${tier} parameter (at most ${TIER_BYTES[tier]})`);
    }
    assert.deepEqual(problems, []);
    const config = await loadConfigParameter(templateSsm(template), groupParameters('many').config);
    assert.equal(config.group, 'many');
    assert.deepEqual(config.sources, expected(sources));
    assert.equal(config.bucket, 'b'.repeat(63));
  });

  test('long exclude lists (one source of 30 KB excludes, next to others) are split and read back whole', async () => {
    const sources = [longExcludes('telemetry', 600), ...manySources(3)];
    const bytes = Buffer.byteLength(JSON.stringify(expected(sources)));
    assert.ok(bytes > 28_000, `fixture is ${bytes} bytes`);
    const template = await synthGroups({ many: sources });
    for (const [, r] of resourcesOfType(template, 'AWS::SSM::Parameter')) {
      const tier = (r.Properties.Tier as string | undefined) ?? 'Standard';
      assert.ok(Buffer.byteLength(longestValue(template, r.Properties.Value)) <= (TIER_BYTES[tier] ?? 0), `${r.Properties.Name} fits ${tier}`);
    }
    const config = await loadConfigParameter(templateSsm(template), groupParameters('many').config);
    assert.deepEqual(config.sources, expected(sources));
  });

  test('a configuration parameter that could pass 4 KB once its deploy-time values resolve is refused at synth, naming the prop to change', () => {
    // A long prefix is in every parameter name the head holds (recipients, signing key, 8 parts).
    const props: ColdsealProps = {
      groups: [{ name: 'db', schedule: 'cron(30 1 * * ? *)', signingPublicKeys: EXAMPLE_SIGNING, sources: [longExcludes('telemetry', 600) as any] }],
      recipients: EXAMPLE_RECIPIENT,
      agentExecutables: standInExecutables(),
      parameterPrefix: `/${'p'.repeat(300)}`,
    };
    assert.throws(() => new Coldseal(new Stack(new App(), 'S'), 'C', props), /AgentDelivery props\.groups\[0\] \(group "db"\): its configuration parameter \/p+\/groups\/db\/config could hold \d+ bytes once deployed, over the 4096 of a Standard parameter; shorten props\.parameterPrefix/);
    assert.doesNotThrow(() => new Coldseal(new Stack(new App(), 'S'), 'C', { ...props, parameterPrefix: `/${'p'.repeat(100)}` }));
  });

  test('the deployment parameter of 30 groups (a signing key ARN each) fits its tier at its longest', async () => {
    const template = await synthGroups(Object.fromEntries(Array.from({ length: 28 }, (_, i) => [`group-${String(i).padStart(2, '0')}`, manySources(1)])));
    const [, deployment] = resourcesOfType(template, 'AWS::SSM::Parameter').find(([, r]) => r.Properties.Name === deploymentParameter())!;
    const bytes = Buffer.byteLength(longestValue(template, deployment.Properties.Value));
    assert.ok(bytes > 4096, `${bytes} bytes: the case is over a Standard parameter`);
    const tier = (deployment.Properties.Tier as string | undefined) ?? 'Standard';
    assert.ok(bytes <= (TIER_BYTES[tier] ?? 0), `${bytes} bytes in a ${tier} parameter`);
  });

  test('a configuration larger than the stack can store is refused at synth, naming the group, its size and what to do', async () => {
    await assert.rejects(synthGroups({ huge: [longExcludes('telemetry', 1200)] }), /AgentDelivery props\.groups\[\d\] \(group "huge"\): its sources take \d+ bytes of configuration, over the \d+ bytes .*split the group/);
  });
});
