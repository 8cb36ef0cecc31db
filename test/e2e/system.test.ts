/* eslint-disable @typescript-eslint/no-explicit-any -- the context and reports are JSON */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { hostNameFrom, openManifest, readPublicKeys, type Manifest } from '../../format';
import { EXIT } from '../../agent/src/errors';
import { loadSettings } from '../../lambdas/shared/settings';
import { reportSchema } from '../../lambdas/verifier/core/report';
import type { ManifestResult, SweepResult } from '../../lambdas/verifier/core/verifier';
import type { MonitorResult } from '../../lambdas/monitor/core/monitor';
import { buildAgentSync } from '../../scripts/build-agent';
import { deployToMoto } from '../../e2e/moto-stack';
import { Deployment, generateKeyFiles, HostInventory, type Alert, type KeyFiles } from '../../e2e/flow';
import { newMotoAccount, uniqueName } from '../harness/aws';
import { createMysqlFixture, createPgFixture, dropMysqlDatabase, dropPgDatabase, mysqlContentFingerprint, pgContentFingerprint, uniqueDbName, MYSQL, PG } from '../harness/databases';
import { ROOT, sampleContext } from '../infra/fixtures';

/**
 * The whole system on one machine: the synthesized stack deployed into moto, the SSM document's
 * script run as its schedule would run it, the real agent backing up real PostgreSQL, MariaDB and
 * files into the deployed bucket, the verifier and monitor handlers invoked in-process with the
 * environment moto holds for the deployed functions, alerts read from an SQS subscription of the
 * deployed topic, and restores through the real `coldseal restore` compared with the sources.
 * Everything below is read back from the deployment, not repeated from the context.
 */
const PG_GROUP = 'db';
const APP_GROUP = 'app';

let deployment: Deployment;
let bundle: string;
let dir: string;
let keys: Record<string, KeyFiles>;
const pgSource = uniqueDbName('cs_e2e_pg');
const mySource = uniqueDbName('cs_e2e_my');
const pgScratch: string[] = [];
const myScratch: string[] = [];
let filesRoot: string;
/** This machine as the group's one tagged, online instance (moto has no managed-instance inventory). */
const INSTANCE_ID = 'i-0e2e0e2e0e2e0e2e0';
const inventory = () => new HostInventory([{ instanceId: INSTANCE_ID, computerName: hostname(), pingStatus: 'Online', lastPingAt: new Date(), group: PG_GROUP }]);

async function openAt(key: string, group: string): Promise<Manifest> {
  return (await openManifest(await deployment.getText(key), await readPublicKeys(keys[group].signing.publicKey, 'signing key'))).document;
}

function alertSummary(alerts: Alert[]): string {
  return alerts.map((a) => `${a.subject}\n${a.message.split('\n').slice(0, 4).join('\n')}`).join('\n---\n');
}

/** Path → type, mode and content (or link target) of every entry under root. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      const stat = lstatSync(full);
      const mode = (stat.mode & 0o7777).toString(8);
      if (stat.isSymbolicLink()) out[relative(root, full)] = `link ${readlinkSync(full)}`;
      else if (stat.isDirectory()) {
        out[relative(root, full)] = `dir ${mode}`;
        walk(full);
      } else out[relative(root, full)] = `file ${mode} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    }
  };
  walk(root);
  return out;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coldseal-e2e-'));
  // The real agent, copied away from dist/ so a concurrent build elsewhere cannot change it under us.
  bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(buildAgentSync(), bundle);
  keys = { [PG_GROUP]: await generateKeyFiles(join(dir, 'keys', PG_GROUP), PG_GROUP), [APP_GROUP]: await generateKeyFiles(join(dir, 'keys', APP_GROUP), APP_GROUP) };

  filesRoot = join(dir, 'site files');
  mkdirSync(join(filesRoot, 'uploads', 'année 2026'), { recursive: true });
  writeFileSync(join(filesRoot, 'uploads', 'année 2026', 'reçu ✓.txt'), 'paid 😀\n');
  writeFileSync(join(filesRoot, 'settings.conf'), 'secret=1\n', { mode: 0o600 });
  writeFileSync(join(filesRoot, 'cache.tmp'), 'excluded\n');
  symlinkSync('uploads/année 2026', join(filesRoot, 'current'));
  await Promise.all([createPgFixture(pgSource, 3_000), createMysqlFixture(mySource, 2_000)]);

  const context = sampleContext() as any;
  // One recipient for every group (the escrow key); a signing key per group.
  context.recipients = keys[PG_GROUP].recipient.publicKey;
  context.groups = {
    [PG_GROUP]: {
      schedule: 'cron(30 1 * * ? *)',
      signingPublicKeys: keys[PG_GROUP].signing.publicKey,
      sources: [{ name: 'pg', type: 'postgres', host: PG.host, port: PG.port, user: PG.user, databases: [pgSource] }],
    },
    [APP_GROUP]: {
      schedule: 'cron(0 2 * * ? *)',
      signingPublicKeys: keys[APP_GROUP].signing.publicKey,
      sources: [
        { name: 'shop', type: 'mysql', host: MYSQL.host, port: MYSQL.port, user: MYSQL.user, databases: [mySource] },
        { name: 'site', type: 'files', paths: [filesRoot], excludes: ['*.tmp'] },
      ],
    },
  };
  keys[APP_GROUP] = { ...keys[APP_GROUP], recipient: keys[PG_GROUP].recipient };
  const account = await newMotoAccount();
  const stack = await deployToMoto({ target: account, context, baseDir: ROOT, agentBundle: bundle, stackName: uniqueName('ColdsealE2e') });
  deployment = await Deployment.read(account, stack, join(dir, 'host'));
  for (const group of [PG_GROUP, APP_GROUP]) {
    const published = await deployment.publishSigningKey(bundle, group, keys[group].signing.privateFile);
    assert.equal(published.code, 0, published.stderr);
  }
  await deployment.subscribeToAlerts();
});

after(async () => {
  await Promise.all([dropPgDatabase(pgSource), ...pgScratch.map(dropPgDatabase), dropMysqlDatabase(mySource), ...myScratch.map(dropMysqlDatabase)]);
  rmSync(dir, { recursive: true, force: true });
});

describe('deployed configuration', () => {
  test('the functions, rules and schedules moto holds point at the deployed bucket, topic, document and groups', () => {
    for (const fn of [deployment.verifier, deployment.monitor]) {
      const settings = loadSettings(fn.environment);
      assert.equal(settings.bucket, deployment.bucket);
      assert.equal(settings.topicArn, deployment.topicArn);
      assert.equal(settings.documentName, deployment.stack.output('AgentDocumentName'));
      assert.deepEqual(settings.groups.map((g) => [g.name, g.sources]), [[PG_GROUP, ['pg']], [APP_GROUP, ['shop', 'site']]]);
    }
    assert.deepEqual(deployment.scheduledInput(deployment.verifier), { action: 'sweep' });
    assert.deepEqual(deployment.scheduledInput(deployment.monitor), { action: 'check' });
    assert.equal(deployment.scheduledRun(PG_GROUP).parameters.group, PG_GROUP);
    assert.equal(deployment.scheduledRun(APP_GROUP).parameters.group, APP_GROUP);
  });
});

describe('PostgreSQL group: scheduled backup, verification, report, monitor, restore', () => {
  let manifestKey: string;

  test("the schedule's run of the document backs the database up into the deployed bucket", async () => {
    const run = await deployment.runScheduled(PG_GROUP);
    assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}`);
    const manifests = await deployment.manifests(PG_GROUP);
    assert.equal(manifests.length, 1, manifests.join('\n'));
    manifestKey = manifests[0];
    const manifest = await openAt(manifestKey, PG_GROUP);
    assert.deepEqual(manifest.artifacts.map((a) => a.name), [pgSource]);
    assert.equal(manifest.artifacts[0].exitCode, 0);
  });

  test('the manifest-created event, matched by the deployed rule, has the verifier check it: no finding, no alert', async () => {
    const result = await deployment.invokeVerifier(await deployment.manifestCreatedEvent(manifestKey));
    assert.deepEqual((result as ManifestResult).findings, []);
    assert.deepEqual(await deployment.receiveAlerts(), []);
  });

  test("the drill schedule's run of the document restores the latest backup into scratch and writes a signed receipt", async () => {
    // COLDSEAL_DRILL_KEY stands in for the drill host's /etc/coldseal/drill.key.asc, as COLDSEAL_HOME does for /var/lib/coldseal.
    const drill = await deployment.runScheduled(PG_GROUP, 'drill', { COLDSEAL_DRILL_KEY: keys[PG_GROUP].recipient.privateFile });
    assert.equal(drill.code, 0, `exit ${drill.code}\n${drill.stderr}`);
    assert.equal((await deployment.listKeys(`drills/${PG_GROUP}/`)).length, 1);
  });

  test('the daily sweep writes an OK report (JSON and HTML) and sends its summary', async () => {
    const result = await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier));
    const sweep = result as SweepResult;
    assert.deepEqual(sweep.findings.map((f) => `${f.check} ${f.summary}`), []);
    assert.equal(sweep.report.status, 'OK');
    const report = reportSchema.parse(JSON.parse(await deployment.getText(sweep.reportKeys.json)));
    assert.equal(report.status, 'OK');
    assert.deepEqual(report.sources.map((s) => [s.group, s.source, s.status]), [[PG_GROUP, 'pg', 'OK']]);
    assert.match(await deployment.getText(sweep.reportKeys.html), /<title>coldseal verification \d{4}-\d\d-\d\d: OK<\/title>/);
    const alerts = await deployment.receiveAlerts();
    assert.deepEqual(alerts.map((a) => a.subject), [sweep.published!.subject]);
    assert.match(alerts[0].subject, /^coldseal report \d{4}-\d\d-\d\d: OK/);
  });

  test("the monitor, on its schedule, finds the group's tagged host online and its source fresh, and sends nothing", async () => {
    const result = await deployment.invokeMonitor(deployment.scheduledInput(deployment.monitor), inventory());
    assert.deepEqual((result as MonitorResult).findings.map((f) => f.summary), []);
    assert.deepEqual(await deployment.receiveAlerts(), []);
  });

  test("a failed run of the deployed document (the BackupCommand output, sent to SSM) reaches the monitor through the deployed rule and alerts", async () => {
    const commandId = await deployment.sendBackupCommand(PG_GROUP);
    const event = await deployment.commandStatusEvent({
      'command-id': commandId,
      'document-name': deployment.stack.output('AgentDocumentName'),
      'instance-id': INSTANCE_ID,
      'requested-date-time': new Date().toISOString(),
      status: 'Failed',
    });
    const result = (await deployment.invokeMonitor(event, inventory())) as MonitorResult;
    assert.deepEqual(result.findings.map((f) => `${f.check} ${f.group}/${f.host}`), [`command-failed ${PG_GROUP}/${hostNameFrom(hostname())}`]);
    const alerts = await deployment.receiveAlerts();
    assert.equal(alerts.length, 1, alertSummary(alerts));
    assert.match(alerts[0].subject, /FAIL/);
    assert.match(alerts[0].message, new RegExp(commandId));
  });

  test('`coldseal restore` into a scratch database gives back the source, table by table', async () => {
    const scratch = uniqueDbName('cs_e2e_pgr');
    pgScratch.push(scratch);
    const restored = await deployment.restore(bundle, PG_GROUP, ['--source', 'pg', '--key', keys[PG_GROUP].recipient.privateFile, '--target', `postgres://${PG.user}@${PG.host}:${PG.port}/${scratch}`]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual(await pgContentFingerprint(scratch), await pgContentFingerprint(pgSource));
  });
});

describe('MariaDB and files group', () => {
  test('one scheduled run backs up both sources; each manifest verifies clean', async () => {
    const run = await deployment.runScheduled(APP_GROUP);
    assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}`);
    const manifests = await deployment.manifests(APP_GROUP);
    assert.deepEqual(manifests.map((k) => k.split('/')[4]).sort(), ['shop', 'site']);
    for (const key of manifests) {
      const result = await deployment.invokeVerifier(await deployment.manifestCreatedEvent(key));
      assert.deepEqual((result as ManifestResult).findings, [], key);
    }
    assert.deepEqual(await deployment.receiveAlerts(), []);
  });

  test('MariaDB restores under another name equal to the source', async () => {
    const scratch = uniqueDbName('cs_e2e_myr');
    myScratch.push(scratch);
    const restored = await deployment.restore(bundle, APP_GROUP, ['--source', 'shop', '--key', keys[APP_GROUP].recipient.privateFile, '--target', `mysql://${MYSQL.user}@${MYSQL.host}:${MYSQL.port}/${scratch}`]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual(await mysqlContentFingerprint(scratch), await mysqlContentFingerprint(mySource));
  });

  test('files restore into a directory equal to the source, excludes left out', async () => {
    const into = join(dir, 'restored files');
    mkdirSync(into);
    const restored = await deployment.restore(bundle, APP_GROUP, ['--source', 'site', '--key', keys[APP_GROUP].recipient.privateFile, '--directory', into]);
    assert.equal(restored.code, 0, restored.stderr);
    const expected = tree(filesRoot);
    delete expected['cache.tmp'];
    assert.deepEqual(tree(join(into, filesRoot)), expected);
  });

  test('the sweep reports every source of both groups OK', async () => {
    const result = await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier));
    const sweep = result as SweepResult;
    assert.equal(sweep.report.status, 'OK', sweep.findings.map((f) => f.summary).join('\n'));
    assert.deepEqual(sweep.report.sources.map((s) => `${s.group}/${s.source} ${s.status}`).sort(), ['app/shop OK', 'app/site OK', 'db/pg OK']);
    await deployment.receiveAlerts();
  });
});

describe('a corrupted backup', () => {
  test('the sweep fails it and a FAIL alert goes out; restore refuses it before touching a database', async () => {
    const newest = (await deployment.manifests(PG_GROUP)).pop()!;
    const artifact = (await openAt(newest, PG_GROUP)).artifacts[0];
    await deployment.corrupt(artifact.key);

    const result = await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier));
    const sweep = result as SweepResult;
    assert.equal(sweep.report.status, 'FAIL');
    const failing = sweep.findings.filter((f) => f.severity === 'fail');
    const checksum = failing.find((f) => f.check === 'ciphertext-sha256');
    assert.ok(checksum?.where.includes(artifact.key), failing.map((f) => `${f.check} ${f.where}`).join('\n'));
    assert.deepEqual(sweep.report.sources.map((s) => `${s.group}/${s.source} ${s.status}`).sort(), ['app/shop OK', 'app/site OK', 'db/pg FAIL']);
    const alerts = await deployment.receiveAlerts();
    const alert = alerts.find((a) => /FAIL/.test(a.subject) && a.message.includes(artifact.key));
    assert.ok(alert, alertSummary(alerts));
    assert.match(alert.message, /SHA-256/);

    const scratch = uniqueDbName('cs_e2e_never');
    pgScratch.push(scratch);
    const refused = await deployment.restore(bundle, PG_GROUP, ['--source', 'pg', '--key', keys[PG_GROUP].recipient.privateFile, '--target', `postgres://${PG.user}@${PG.host}:${PG.port}/${scratch}`]);
    assert.equal(refused.code, EXIT.INTEGRITY, refused.stderr);
    assert.match(refused.stderr, /SHA-256|checksum/i);
  });
});
