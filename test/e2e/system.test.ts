/* eslint-disable @typescript-eslint/no-explicit-any -- the context and reports are JSON */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ALERT_STATE_PREFIX, hostNameFrom, parseKey, TIERS } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { readPublicKeys } from '../../runtime/pgp';
import { openDrillReceipt, openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import { loadSettings } from '../../format/lambda-settings';
import { reportSchema } from '../../format/verification-report';
import { PRICE_TABLE_AS_OF } from '../../format/prices';
import type { ManifestResult, SweepResult } from '../../lambdas/verifier/core/verifier';
import type { MonitorResult } from '../../lambdas/monitor/core/monitor';
import { buildAgentExecutablesSync, buildAgentSync } from '../../scripts/build-agent';
import { cachedExecutableName, type AgentExecutable } from '../../format/agent-executables';
import { copiedExecutables, deployToMoto, downloadSource } from '../../local-system/moto-stack';
import { Deployment, generateKeyFiles, HostInventory, type Actors, type KeyFiles } from '../../local-system/flow';
import type { Alert } from '../../local-system/alerts';
import { motoEndpoint, newMotoAccount, newMotoActor, uniqueName, type MotoAccount } from '../harness/aws';
import { startRecorder, type Recorder } from '../harness/aws-recorder';
import { DescribeParametersCommand } from '@aws-sdk/client-ssm';
import { ListMultipartUploadsCommand, PutObjectRetentionCommand, type ObjectLockRetentionMode } from '@aws-sdk/client-s3';
import { describeCall, grantKey, PermissionModel, type Decision } from '../infra/permissions';
import { serviceCallsOf } from '../infra/service-calls';
import { entryMatches, UNUSED_PERMISSIONS } from '../infra/unused-permissions';
import { HARNESS, needsNoPermission, OPERATOR, OPERATOR_POLICY, translate, type RecordedCall, type Translation } from '../infra/recorded-calls';
import { FAKE, type Template } from '../infra/template-tools';
import { createMysqlFixture, createPgFixture, dropMysqlDatabase, dropPgDatabase, mysqlContentFingerprint, pgContentFingerprint, uniqueDbName, MYSQL, PG } from '../../local-system/databases';
import { ROOT, sampleContext } from '../infra/fixtures';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { startMariadbServer, type MariadbServer } from '../harness/mariadb-server';
import { execFileSync, spawn } from 'node:child_process';
import { STABLE_LINK } from '../../infra/lib/agent-script';

/**
 * The whole system on one machine: the synthesized stack deployed into moto, the SSM document run
 * as the SSM Agent runs it when its schedule sends it (its download steps fetch the executables
 * with the host's role, its script runs the x86_64 one), the real agent backing up real PostgreSQL, MariaDB and
 * files into the deployed bucket, the verifier and monitor handlers invoked in-process with the
 * environment moto holds for the deployed functions, alerts read from an SQS subscription of the
 * deployed topic, and restores through the real `coldseal restore` compared with the sources.
 * Everything below is read back from the deployment, not repeated from the context.
 */
const PG_GROUP = 'db';
const APP_GROUP = 'app';
/** Group db's point-in-time-recovery source: a scratch cluster archiving its WAL through the agent (pitr setup). */
const PITR_SOURCE = 'wal';
let walCluster: PgCluster;
let drillActor: MotoAccount;
const walSql = (sql: string) => walCluster.psql('walapp', sql);
/** Group db's MariaDB point-in-time-recovery source: a scratch server with binary logging, archived by `pitr binlog-push`. */
const BINLOG_SOURCE = 'orders';
let binlogServer: MariadbServer;
/** The db group's host as the SSM document (and the binlog-push timer) runs the agent there. */
let dbHostEnv: Record<string, string>;
/** What the binlog-push timer installed by `pitr setup` runs on the host every pitr.intervalMinutes. */
const binlogPush = async () => runAgent(['pitr', 'binlog-push', '--source', BINLOG_SOURCE, '--config-parameter', (await deployment.groupConfig(PG_GROUP)).parameter, '--state-dir', join(dir, 'binlog-state')], dbHostEnv);
const ordersSql = (sql: string) => binlogServer.sql(sql, 'orders');

let deployment: Deployment;
let recorder: Recorder;
/** Access key id → the principal that would send the request on AWS (see test/infra/recorded-calls.ts). */
const principals = new Map<string, string>();
let bundle: string;
/** The executables the stack ships (their gzip copies copied into dir). */
let executables: AgentExecutable[];
let dir: string;
let keys: Record<string, KeyFiles>;
const pgSource = uniqueDbName('cs_e2e_pg');
const mySource = uniqueDbName('cs_e2e_my');
const pgScratch: string[] = [];
const myScratch: string[] = [];
let filesRoot: string;
/** Group db's files source: one incompressible 11 MiB file, in 5 MiB parts and 2 parts a segment (see before). */
let blobsRoot: string;
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

/**
 * moto 5.2 drops the Object Lock headers of CreateMultipartUpload (its CompleteMultipartUpload
 * takes the lock from the Complete request, which carries none, or from the bucket's default),
 * where S3 gives the completed object the retention the upload was created with
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html). The harness
 * applies exactly what each host's request asked for, so the verifier sees what S3 would keep.
 */
let locksAppliedUpTo = 0;
async function applyRequestedMultipartLocks(): Promise<void> {
  const requests = recorder.requests.slice(locksAppliedUpTo);
  locksAppliedUpTo = recorder.requests.length;
  for (const r of requests) {
    const lock = r.headers['x-amz-object-lock-mode'];
    if (r.service !== 's3' || r.method !== 'POST' || !Object.hasOwn(r.query, 'uploads') || !lock || !principals.get(r.accessKeyId ?? '')?.startsWith('host:')) continue;
    const key = decodeURIComponent(r.path.split('/').slice(2).join('/'));
    const until = new Date(r.headers['x-amz-object-lock-retain-until-date']);
    await deployment.s3.send(new PutObjectRetentionCommand({ Bucket: deployment.bucket, Key: key, Retention: { Mode: lock as ObjectLockRetentionMode, RetainUntilDate: until } }));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coldseal-e2e-'));
  // The real agent, copied away from dist/ so a concurrent build elsewhere cannot change it under us.
  bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(buildAgentSync(), bundle);
  executables = copiedExecutables(buildAgentExecutablesSync(), dir);
  keys = { [PG_GROUP]: await generateKeyFiles(join(dir, 'keys', PG_GROUP), PG_GROUP), [APP_GROUP]: await generateKeyFiles(join(dir, 'keys', APP_GROUP), APP_GROUP) };

  filesRoot = join(dir, 'site files');
  mkdirSync(join(filesRoot, 'uploads', 'année 2026'), { recursive: true });
  writeFileSync(join(filesRoot, 'uploads', 'année 2026', 'reçu ✓.txt'), 'paid 😀\n');
  writeFileSync(join(filesRoot, 'settings.conf'), 'secret=1\n', { mode: 0o600 });
  writeFileSync(join(filesRoot, 'cache.tmp'), 'excluded\n');
  // Incompressible and over one 8 MiB part: this source's backup is a multipart upload.
  writeFileSync(join(filesRoot, 'uploads', 'scan.bin'), randomBytes(12 << 20));
  symlinkSync('uploads/année 2026', join(filesRoot, 'current'));
  blobsRoot = join(dir, 'blobs');
  mkdirSync(blobsRoot);
  writeFileSync(join(blobsRoot, 'blob.bin'), randomBytes(11 << 20));
  await Promise.all([createPgFixture(pgSource, 3_000), createMysqlFixture(mySource, 2_000)]);
  // archive_command and restore_command run as the server's OS user: they reach the agent's copy and state under dir.
  chmodSync(dir, 0o711);
  walCluster = await startPgCluster({ settings: { checkpoint_timeout: '1h' } });
  walCluster.psql('postgres', 'create database walapp');
  walSql('create table t (id int primary key, at timestamptz not null default clock_timestamp())');
  binlogServer = await startMariadbServer();
  binlogServer.sql('CREATE DATABASE orders');
  ordersSql('CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL)');
  ordersSql("INSERT INTO t VALUES (1, 'before the dump')");

  const context = sampleContext() as any;
  // One recipient for every group (the escrow key); a signing key per group.
  context.recipients = keys[PG_GROUP].recipient.publicKey;
  context.groups = {
    [PG_GROUP]: {
      schedule: 'cron(30 1 * * ? *)',
      signingPublicKeys: keys[PG_GROUP].signing.publicKey,
      sources: [
        { name: 'pg', type: 'postgres', host: PG.host, port: PG.port, user: PG.user, databases: [pgSource] },
        { name: 'blobs', type: 'files', paths: [blobsRoot] },
        { name: PITR_SOURCE, type: 'postgres', host: walCluster.socketDir, port: walCluster.port, user: 'postgres', databases: ['walapp'], pitr: { enabled: true, waitForArchiveMinutes: 2 } },
        { name: BINLOG_SOURCE, type: 'mysql', socket: binlogServer.socket, user: 'root', databases: ['orders'], pitr: { enabled: true } },
      ],
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
  // Setup goes straight to moto (CloudFormation answers only on "localhost"); from here on every
  // actor, the test itself included, talks to moto through the recorder with a key of its own.
  const stack = await deployToMoto({ target: account, context, baseDir: ROOT, agentExecutables: executables, stackName: uniqueName('ColdsealE2e') });
  recorder = await startRecorder(motoEndpoint());
  const actor = async (principal: string): Promise<MotoAccount> => {
    const target = await newMotoActor(account, principal, recorder.url);
    principals.set(target.credentials.accessKeyId, principal);
    return target;
  };
  const harness = await actor(HARNESS);
  const hosts: Record<string, MotoAccount> = { [PG_GROUP]: await actor(`host:${PG_GROUP}`), [APP_GROUP]: await actor(`host:${APP_GROUP}`) };
  const actors: Actors = {
    host: (group) => hosts[group],
    drill: (drillActor = await actor('drill')),
    verifier: await actor('verifier'),
    monitor: await actor('monitor'),
    scheduler: await actor('scheduler'),
    operator: await actor('operator'),
  };
  deployment = await Deployment.read(harness, stack, join(dir, 'host'), actors);
  // S3's smallest part and two parts a segment: group db's blobs backup is three parts in two
  // segments, so every reader (verifier, drill, restore) pins reads to a version and walks segments.
  await deployment.changeGroupConfig(PG_GROUP, (config) => ({ ...config, upload: { ...config.upload, partSizeMiB: 5, segmentParts: 2 } }));
  for (const group of [PG_GROUP, APP_GROUP]) {
    const published = await deployment.publishSigningKey(bundle, group, keys[group].signing.privateFile);
    assert.equal(published.code, EXIT.OK, published.stderr);
  }
  // The operator's one-time step on the PITR host (README "Set it up"): pitr setup --apply as root,
  // then the restart archive_mode needs; the server (and so archive_command) runs with the host's credentials.
  const hostEnv = deployment.hostEnv({}, hosts[PG_GROUP]);
  dbHostEnv = hostEnv;
  const setup = await runAgent(['pitr', 'setup', '--source', PITR_SOURCE, '--config-parameter', (await deployment.groupConfig(PG_GROUP)).parameter, '--install-dir', join(dir, 'pitr-bin'), '--state-dir', join(dir, 'pitr-state'), '--apply'], hostEnv);
  assert.equal(setup.code, EXIT.OK, setup.stderr);
  walCluster.restart(hostEnv);
  // The same step for the MariaDB source: checks the server, and installs the binlog-push timer's
  // units (here no systemd runs them, so the test runs what their ExecStart runs: binlogPush()).
  const binlogSetup = await runAgent(['pitr', 'setup', '--source', BINLOG_SOURCE, '--config-parameter', (await deployment.groupConfig(PG_GROUP)).parameter, '--state-dir', join(dir, 'binlog-state'), '--unit-dir', join(dir, 'units'), '--apply'], hostEnv);
  assert.ok(binlogSetup.code === EXIT.OK || binlogSetup.code === EXIT.CONFIG, `exit ${binlogSetup.code}\n${binlogSetup.stdout}\n${binlogSetup.stderr}`);
  assert.match(readFileSync(join(dir, 'units', `coldseal-binlog-push-${BINLOG_SOURCE}.service`), 'utf8'), /pitr.+binlog-push.+--source.+orders/, binlogSetup.stdout);
  await deployment.subscribeToAlerts();
});

function runAgent(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

after(async () => {
  // What the document's download steps (both executables, every run) cost this run.
  const downloads = deployment?.runs.flatMap((r) => r.steps.filter((s) => s.action === 'aws:downloadContent')) ?? [];
  if (downloads.length > 0) {
    const ms = downloads.reduce((sum, s) => sum + s.durationMs, 0);
    console.error(`[e2e] ${deployment.runs.length} document runs, ${downloads.length} download steps: ${(ms / 1000).toFixed(1)} s in all (${Math.round(ms / downloads.length)} ms each)`);
  }
  for (const stop of restoredServers) {
    try {
      execFileSync('/bin/sh', ['-c', stop], { stdio: 'ignore' });
    } catch {
      // already stopped
    }
  }
  walCluster?.stop();
  await binlogServer?.stop();
  await recorder?.close();
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
      assert.deepEqual(settings.groups.map((g) => [g.name, g.sources]), [[PG_GROUP, ['pg', 'blobs', PITR_SOURCE, BINLOG_SOURCE]], [APP_GROUP, ['shop', 'site']]]);
    }
    assert.deepEqual(deployment.scheduledInput(deployment.verifier), { action: 'sweep' });
    assert.deepEqual(deployment.scheduledInput(deployment.monitor), { action: 'check' });
    assert.equal(deployment.scheduledRun(PG_GROUP).parameters.group, PG_GROUP);
    assert.equal(deployment.scheduledRun(APP_GROUP).parameters.group, APP_GROUP);
  });
});

describe('PostgreSQL group: scheduled backup, verification, report, monitor, restore', () => {
  let manifestKeys: string[];

  test("the schedule's SendCommand, then its run of the document, backs the database and the files up into the deployed bucket", async () => {
    assert.match(await deployment.sendScheduled(PG_GROUP), /^[0-9a-f-]{36}$/, 'SendCommand answered with a command id');
    const run = await deployment.runScheduled(PG_GROUP);
    assert.equal(run.code, EXIT.OK, `exit ${run.code}\n${run.stderr}`);
    assert.deepEqual(run.steps.map((s) => `${s.name} ${s.status}`), ['downloadAgentX64 Success', 'downloadAgentArm64 Success', 'runColdsealAgent Success']);
    // The host runs the x86_64 executable the stack shipped, cached under its SHA-256.
    const x64 = executables.find((e) => e.arch === 'x64')!;
    assert.deepEqual(readdirSync(join(deployment.home, 'coldseal-home', 'agent')).filter((f) => !f.endsWith('.v8cache')).sort(), [STABLE_LINK, cachedExecutableName(x64.sha256)].sort());
    manifestKeys = await deployment.manifests(PG_GROUP);
    assert.deepEqual(manifestKeys.map((k) => k.split('/')[4]).sort(), ['blobs', BINLOG_SOURCE, 'pg', PITR_SOURCE]);
    // The MariaDB PITR source's dump records where in the binary log its snapshot sits.
    const position = (await openAt(manifestKeys.find((k) => k.includes(`/${BINLOG_SOURCE}/`))!, PG_GROUP)).artifacts[0].binlogPosition;
    assert.equal(position?.file, binlogServer.sql('SHOW MASTER STATUS').split('\t')[0], JSON.stringify(position));
    // The host's binlog-push timer fires within its interval: the file holding that position reaches the vault.
    const pushed = await binlogPush();
    assert.equal(pushed.code, EXIT.OK, `exit ${pushed.code}\n${pushed.stderr}`);
    // The PITR source's run took a base backup beside its dump, complete only once its WAL was archived.
    const base = (await openAt(manifestKeys.find((k) => k.includes(`/${PITR_SOURCE}/`))!, PG_GROUP)).artifacts.find((a) => a.kind === 'cluster');
    assert.equal(base?.baseBackup?.walArchived, true);
    const manifest = await openAt(manifestKeys.find((k) => k.includes('/pg/'))!, PG_GROUP);
    assert.deepEqual(manifest.artifacts.map((a) => a.name), [pgSource]);
    assert.equal(manifest.artifacts[0].exitCode, 0);
    await applyRequestedMultipartLocks();
    const blobs = (await openAt(manifestKeys.find((k) => k.includes('/blobs/'))!, PG_GROUP)).artifacts[0];
    assert.deepEqual([blobs.parts.sha256.length, blobs.parts.size, blobs.segments?.map((g) => g.parts)], [3, 5 << 20, [2, 1]], 'three 5 MiB parts in two segments');
  });

  test('the manifest-created events, matched by the deployed rule, have the verifier check them: no finding, no alert', async () => {
    for (const key of manifestKeys) {
      const result = await deployment.invokeVerifier(await deployment.manifestCreatedEvent(key));
      assert.deepEqual((result as ManifestResult).findings, [], key);
    }
    assert.deepEqual(await deployment.receiveAlerts(), []);
  });

  test("the drill schedule's run of the document restores the latest backup into scratch and writes a signed receipt", async () => {
    // COLDSEAL_DRILL_KEY stands in for the drill host's /etc/coldseal/drill.key.asc, as COLDSEAL_HOME does for /var/lib/coldseal.
    assert.match(await deployment.sendScheduled(PG_GROUP, 'drill'), /^[0-9a-f-]{36}$/, 'SendCommand answered with a command id');
    const drill = await deployment.runScheduled(PG_GROUP, 'drill', { COLDSEAL_DRILL_KEY: keys[PG_GROUP].recipient.privateFile });
    assert.equal(drill.code, EXIT.OK, `exit ${drill.code}\n${drill.stderr}`);
    const receipts = await deployment.listKeys(`drills/${PG_GROUP}/`);
    assert.equal(receipts.length, 1);
    const receipt = (await openDrillReceipt(await deployment.getText(receipts[0]), await readPublicKeys(keys[PG_GROUP].signing.publicKey, 'signing key'))).document;
    assert.deepEqual(receipt.results.map((r) => `${r.source} ${r.ok}`).sort(), ['blobs true', `${BINLOG_SOURCE} true`, 'pg true', `${PITR_SOURCE} true`, `${PITR_SOURCE} true`], receipts[0]);
  });

  test('the daily sweep writes an OK report (JSON and HTML) and sends its summary', async () => {
    const result = await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier));
    const sweep = result as SweepResult;
    assert.deepEqual(sweep.findings.map((f) => `${f.check} ${f.summary}`), []);
    assert.equal(sweep.report.status, 'OK');
    const report = reportSchema.parse(JSON.parse(await deployment.getText(sweep.reportKeys.json)));
    assert.equal(report.status, 'OK');
    assert.deepEqual(report.sources.map((s) => [s.group, s.source, s.status]).sort(), [[PG_GROUP, 'blobs', 'OK'], [PG_GROUP, BINLOG_SOURCE, 'OK'], [PG_GROUP, 'pg', 'OK'], [PG_GROUP, PITR_SOURCE, 'OK']]);
    const window = report.pitr?.find((p) => p.source === PITR_SOURCE);
    assert.ok(window, `the report has the PITR source's recovery window: ${JSON.stringify(report.pitr)}`);
    assert.deepEqual(window.gaps, []);
    // What an auditor asks, per source: recovery point, recovery time, copies per tier; and storage with its cost.
    for (const s of report.sources) {
      assert.ok(s.recoveryPoint && s.recoveryTime && s.retention, `${s.group}/${s.source}: recovery point, time and copies`);
      assert.deepEqual(s.recoveryPoint.misses, [], s.source);
      assert.ok(s.recoveryPoint.current && s.recoveryPoint.current.ageHours < s.recoveryPoint.rpoHours, JSON.stringify(s.recoveryPoint));
      assert.equal(s.recoveryTime.rtoHours, null);
      assert.equal(s.retention.copies.length, s.history.length);
    }
    const pg = report.sources.find((s) => s.source === 'pg')!;
    assert.equal(pg.recoveryTime!.measured?.from, 'this source', pg.recoveryTime!.note);
    assert.ok(pg.recoveryTime!.measured!.stages, 'the drill receipt carried stage timings');
    assert.ok(pg.recoveryTime!.estimate && pg.recoveryTime!.estimate.retrieval === null);
    const pitrSource = report.sources.find((s) => s.source === PITR_SOURCE)!;
    assert.equal(pitrSource.recoveryPoint!.log?.kind, 'wal');
    assert.equal(pitrSource.recoveryPoint!.log?.reachableTo, (window as any).window!.to.time);
    const storage = report.storage!;
    assert.equal(storage.priceOrigin, 'table', storage.priceNote); // moto serves no Price List
    assert.equal(storage.cost?.priceAsOf, PRICE_TABLE_AS_OF);
    const dbRows = storage.rows.filter((r) => r.group === PG_GROUP);
    assert.ok(dbRows.some((r) => r.tier === 'pitr' && r.objects > 0) && dbRows.some((r) => r.tier === 'drills' && r.objects > 0), JSON.stringify(dbRows));
    assert.deepEqual(await deployment.listKeys('state/storage/'), [`state/storage/${report.generatedAt.slice(0, 10)}.json`]);
    const html = await deployment.getText(sweep.reportKeys.html);
    assert.match(html, /<title>coldseal verification \d{4}-\d\d-\d\d: OK<\/title>/);
    for (const re of [/<h3>Recovery: what can be restored, how fast, how many copies<\/h3>/, /<svg class="picture window"/, /<rect class="pitr"/, /<h2>Storage and cost<\/h2>/, /<svg class="picture storage"/]) assert.match(html, re);
    const alerts = await deployment.receiveAlerts();
    assert.deepEqual(alerts.map((a) => a.subject), [sweep.published!.subject]);
    assert.match(alerts[0].subject, /^coldseal report \d{4}-\d\d-\d\d: OK/);
    assert.match(alerts[0].message, /\nStorage: .+, about \$\d+\.\d\d a month \(price table of \d{4}-\d\d-\d\d\)\.\n/);
    assert.doesNotMatch(alerts[0].message, /Targets missed/);
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
    assert.equal(restored.code, EXIT.OK, restored.stderr);
    assert.deepEqual(await pgContentFingerprint(scratch), await pgContentFingerprint(pgSource));
  });
});

/** `stop:` lines of restored servers, run at the end. */
const restoredServers: string[] = [];

describe('PostgreSQL point-in-time recovery: WAL archived by archive_command, monitored, verified, restored', () => {
  test('rows committed after the base backup, each in a WAL segment of its own, come back with restore --to-latest into a new data directory', async () => {
    for (let id = 1; id <= 3; id++) {
      walSql(`insert into t (id) values (${id})`);
      walSql('select pg_switch_wal()');
    }
    // Archived once the segment before the one in use is: pg_stat_archiver says so.
    const current = walSql('select pg_walfile_name(pg_current_wal_lsn())');
    const previous = (BigInt(`0x${current.slice(8)}`) - 1n).toString(16).toUpperCase().padStart(16, '0');
    for (let i = 0; i < 300 && walSql("select coalesce(last_archived_wal, '') from pg_stat_archiver").slice(8) < previous; i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(walSql("select coalesce(last_archived_wal, '') from pg_stat_archiver").slice(8) >= previous, walSql('select * from pg_stat_archiver'));
    const walKeys = await deployment.listKeys(`wal/${PG_GROUP}/`);
    assert.ok(walKeys.length >= 4, `WAL objects: ${walKeys.join(', ')}`);

    const scratch = join(dir, 'pitr-restored');
    mkdirSync(scratch, { mode: 0o711 });
    const restored = await deployment.restore(bundle, PG_GROUP, ['--source', PITR_SOURCE, '--key', keys[PG_GROUP].recipient.privateFile, '--to-latest', '--data-dir', join(scratch, 'data')]);
    const stop = /^stop: +(.*)$/m.exec(restored.stdout)?.[1];
    if (stop) restoredServers.push(stop);
    assert.equal(restored.code, EXIT.OK, `exit ${restored.code}\n${restored.stdout}\n${restored.stderr}`);
    const port = /running on port (\d+)/.exec(restored.stdout)?.[1];
    const rows = execFileSync('psql', ['-h', `${join(scratch, 'data')}.coldseal-spool`, '-p', port!, '-U', 'postgres', '-d', 'walapp', '-X', '-Atqc', 'select id from t order by id']).toString().trim();
    assert.equal(rows, '1\n2\n3');
  });

  test('the drill host restores the PITR source to a random point of its window (drill --pitr) and signs what recovery reached', async () => {
    const drill = await runAgent(
      ['drill', '--config-parameter', (await deployment.groupConfig(PG_GROUP)).parameter, '--key', keys[PG_GROUP].recipient.privateFile, '--pitr', '--source', PITR_SOURCE, '--json'],
      deployment.hostEnv({}, drillActor),
    );
    assert.equal(drill.code, EXIT.OK, `exit ${drill.code}\n${drill.stdout}\n${drill.stderr}`);
    const receipts = await deployment.listKeys(`drills/${PG_GROUP}/`);
    const receipt = (await openDrillReceipt(await deployment.getText(receipts[receipts.length - 1]), await readPublicKeys(keys[PG_GROUP].signing.publicKey, 'signing key'))).document;
    assert.deepEqual(receipt.results.map((r) => [r.source, r.ok, r.pitr !== undefined]), [[PITR_SOURCE, true, true]]);
  });

  test("the monitor's WAL check, on its deployed 5-minute schedule, finds the archive fresh and sends nothing", async () => {
    const result = await deployment.runWalCheck(inventory());
    assert.deepEqual(result.findings.map((f) => f.summary), []);
    assert.deepEqual(await deployment.receiveAlerts(), []);
  });
});

describe('MariaDB point-in-time recovery: binary logs pushed by the host, verified, restored to a second, drilled', () => {
  test('transactions across log switches (a temporary table living across one), restored with --to-time under another name: all before the time, none after', async () => {
    ordersSql("INSERT INTO t VALUES (2, 'after the dump')");
    binlogServer.sql('FLUSH BINARY LOGS');
    // One client session: the temporary table lives across the next switch, and its rows reach t after it.
    binlogServer.sql("CREATE TEMPORARY TABLE orders.staged (id INT, note VARCHAR(40)); INSERT INTO orders.staged VALUES (3, 'via a temporary table'); FLUSH BINARY LOGS; INSERT INTO orders.t SELECT * FROM orders.staged;");
    // Binary log times are whole seconds: the target sits in a second of its own between two commits.
    await new Promise((r) => setTimeout(r, 1_100));
    const target = new Date(Date.now() + 1_000 - (Date.now() % 1_000)).toISOString();
    await new Promise((r) => setTimeout(r, Date.parse(target) - Date.now() + 1_100));
    ordersSql("INSERT INTO t VALUES (4, 'after the target')");
    const pushed = await binlogPush();
    assert.equal(pushed.code, EXIT.OK, `exit ${pushed.code}\n${pushed.stderr}`);
    assert.ok((await deployment.listKeys(`wal/${PG_GROUP}/`)).some((k) => k.includes(`/${BINLOG_SOURCE}/binlog/`)));

    const restored = await deployment.restore(bundle, PG_GROUP, ['--source', BINLOG_SOURCE, '--key', keys[PG_GROUP].recipient.privateFile, '--to-time', target, '--target', `mysql://root@127.0.0.1:${binlogServer.port}/orders_at_t`]);
    assert.equal(restored.code, EXIT.OK, `exit ${restored.code}\n${restored.stdout}\n${restored.stderr}`);
    assert.equal(binlogServer.sql('SELECT id, note FROM t ORDER BY id', 'orders_at_t'), "1\tbefore the dump\n2\tafter the dump\n3\tvia a temporary table");
  });

  test('the drill host restores the MariaDB source to a random second of its window (drill --pitr) and signs what replay reached', async () => {
    const drill = await runAgent(
      ['drill', '--config-parameter', (await deployment.groupConfig(PG_GROUP)).parameter, '--key', keys[PG_GROUP].recipient.privateFile, '--pitr', '--source', BINLOG_SOURCE, '--json'],
      deployment.hostEnv({}, drillActor),
    );
    assert.equal(drill.code, EXIT.OK, `exit ${drill.code}\n${drill.stdout}\n${drill.stderr}`);
    const receipts = await deployment.listKeys(`drills/${PG_GROUP}/`);
    const receipt = (await openDrillReceipt(await deployment.getText(receipts[receipts.length - 1]), await readPublicKeys(keys[PG_GROUP].signing.publicKey, 'signing key'))).document;
    assert.deepEqual(receipt.results.map((r) => [r.source, r.ok, r.binlogPitr?.reached !== null && r.binlogPitr !== undefined]), [[BINLOG_SOURCE, true, true]]);
  });

  test("the monitor's log check finds the binary log archive fresh, and the sweep shows the source's window without a gap", async () => {
    const check = await deployment.runWalCheck(inventory());
    assert.deepEqual(check.findings.map((f) => f.summary), []);
    const sweep = (await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier))) as SweepResult;
    const row = sweep.report.pitr?.find((p) => p.source === BINLOG_SOURCE);
    assert.ok(row, `the report has the binary log window: ${JSON.stringify(sweep.report.pitr)}`);
    assert.equal((row as any).engine, 'mysql');
    assert.deepEqual((row as any).gaps, []);
    await deployment.receiveAlerts();
  });
});

describe('MariaDB and files group', () => {
  test('one scheduled run backs up both sources; each manifest verifies clean', async () => {
    const run = await deployment.runScheduled(APP_GROUP);
    assert.equal(run.code, EXIT.OK, `exit ${run.code}\n${run.stderr}`);
    await applyRequestedMultipartLocks();
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
    assert.equal(restored.code, EXIT.OK, restored.stderr);
    assert.deepEqual(await mysqlContentFingerprint(scratch), await mysqlContentFingerprint(mySource));
  });

  test('files restore into a directory equal to the source, excludes left out', async () => {
    const into = join(dir, 'restored files');
    mkdirSync(into);
    const restored = await deployment.restore(bundle, APP_GROUP, ['--source', 'site', '--key', keys[APP_GROUP].recipient.privateFile, '--directory', into]);
    assert.equal(restored.code, EXIT.OK, restored.stderr);
    const expected = tree(filesRoot);
    delete expected['cache.tmp'];
    assert.deepEqual(tree(join(into, filesRoot)), expected);
  });

  test('the sweep reports every source of both groups OK', async () => {
    const result = await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier));
    const sweep = result as SweepResult;
    assert.equal(sweep.report.status, 'OK', sweep.findings.map((f) => f.summary).join('\n'));
    assert.deepEqual(sweep.report.sources.map((s) => `${s.group}/${s.source} ${s.status}`).sort(), ['app/shop OK', 'app/site OK', 'db/blobs OK', 'db/orders OK', 'db/pg OK', 'db/wal OK']);
    await deployment.receiveAlerts();
  });
});

/**
 * Paths the scheduled runs above do not take, each a path the permission proof below must see:
 * every tier (forced through `coldseal trigger`, as an operator would), an alert closed by the
 * monitor and by the verifier (state deletes), a failed upload (abort, list, the host's own
 * alert), and an archived backup read through a Glacier retrieval.
 */
describe('every tier, an operator\'s trigger, a resolved alert, a failed upload, an archived backup', () => {
  test('`coldseal trigger --tier` sends the document for each tier the calendar did not give today; its run backs up into that tier', async () => {
    for (const [group, sources] of [[PG_GROUP, undefined], [APP_GROUP, 'site']] as const) {
      const tiersOf = async () => new Set((await deployment.manifests(group)).map((k) => k.split('/')[1]));
      for (const tier of TIERS) {
        if ((await tiersOf()).has(tier)) continue;
        const sent = await deployment.trigger(bundle, ['--group', group, '--tier', tier, ...(sources ? ['--source', sources] : [])]);
        assert.equal(sent.code, EXIT.OK, sent.stderr);
        const parameters = await deployment.sentParameters(sent.commandId!);
        assert.deepEqual([parameters.group, parameters.action, parameters.tier, parameters.sources], [group, 'backup', tier, sources ?? 'all']);
        const run = await deployment.runCommand(parameters);
        assert.equal(run.code, EXIT.OK, `${group} ${tier}: exit ${run.code}\n${run.stderr}`);
      }
      assert.deepEqual([...(await tiersOf())].sort(), [...TIERS].sort(), group);
    }
    await applyRequestedMultipartLocks();
    assert.deepEqual(await deployment.receiveAlerts(), []);
  });

  test("the monitor closes the command failure once the host has backed up since: its alert state is deleted and the resolution sent", async () => {
    const result = (await deployment.invokeMonitor(deployment.scheduledInput(deployment.monitor), inventory())) as MonitorResult;
    assert.deepEqual(result.findings.map((f) => f.summary), []);
    assert.deepEqual(result.plan.resolved.map((r) => `${r.finding.check} ${r.finding.group}`), [`command-failed ${PG_GROUP}`]);
    assert.deepEqual(await deployment.listKeys(ALERT_STATE_PREFIX), []);
    const alerts = await deployment.receiveAlerts();
    assert.equal(alerts.length, 1, alertSummary(alerts));
    assert.match(alerts[0].subject, /resolved|OK/i);
  });

  test('a part upload refused mid-backup: exit 5, every upload of the artifact aborted and none left open, and the host alerts by itself', async () => {
    const before = await deployment.manifests(PG_GROUP, 'blobs');
    const stop = recorder.refuse((r) => r.service === 's3' && r.method === 'PUT' && r.query.partNumber === '2' && r.path.includes('/blobs/'));
    let run;
    try {
      run = await deployment.runCommand({ ...deployment.scheduledRun(PG_GROUP).parameters, sources: 'blobs', tier: 'daily' });
    } finally {
      assert.ok(stop() > 0, 'a part upload was refused');
    }
    assert.equal(run.code, EXIT.STORAGE, run.stderr);
    assert.match(run.stderr, /incomplete uploads? (was|were) aborted/);
    const open = (await deployment.s3.send(new ListMultipartUploadsCommand({ Bucket: deployment.bucket, Prefix: 'backups/' }))).Uploads ?? [];
    assert.deepEqual(open.map((u) => u.Key), []);
    assert.deepEqual(await deployment.manifests(PG_GROUP, 'blobs'), before, 'nothing was committed');
    const alerts = await deployment.receiveAlerts();
    assert.equal(alerts.length, 1, alertSummary(alerts));
    assert.match(`${alerts[0].subject}\n${alerts[0].message}`, /blobs/);
  });

  test('a monthly backup moved to Glacier (as its lifecycle rule would) restores through a retrieval: RestoreObject, HEAD until restored, then the read', async () => {
    const monthly = (await deployment.manifests(PG_GROUP, 'pg')).find((k) => k.startsWith('backups/monthly/'))!;
    const artifact = (await openAt(monthly, PG_GROUP)).artifacts[0];
    await deployment.archive(artifact.key, 'GLACIER');
    const scratch = uniqueDbName('cs_e2e_arch');
    pgScratch.push(scratch);
    const target = ['--source', 'pg', '--at', monthly, '--key', keys[PG_GROUP].recipient.privateFile, '--target', `postgres://${PG.user}@${PG.host}:${PG.port}/${scratch}`];
    const refused = await deployment.restore(bundle, PG_GROUP, target);
    assert.equal(refused.code, EXIT.ARCHIVED, refused.stderr);
    const restored = await deployment.restore(bundle, PG_GROUP, [...target, '--retrieval-tier', 'Bulk', '--wait', '--poll-interval', '1']);
    assert.equal(restored.code, EXIT.OK, restored.stderr);
    assert.match(restored.stderr, /retrieval (started|complete)/);
    assert.deepEqual(await pgContentFingerprint(scratch), await pgContentFingerprint(pgSource));
  });

  test('the sweep checks every tier of both groups, the archived one without reading it: all OK', async () => {
    const sweep = (await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier))) as SweepResult;
    assert.equal(sweep.report.status, 'OK', sweep.findings.map((f) => `${f.check} ${f.summary}`).join('\n'));
    await deployment.receiveAlerts();
  });
});

describe('a corrupted backup', () => {
  let corrupted: string;
  test('the sweep fails it and a FAIL alert goes out; restore refuses it before touching a database', async () => {
    const newest = (await deployment.manifests(PG_GROUP, 'pg')).pop()!;
    const artifact = (await openAt(newest, PG_GROUP)).artifacts[0];
    await deployment.corrupt(artifact.key);

    const result = await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier));
    const sweep = result as SweepResult;
    assert.equal(sweep.report.status, 'FAIL');
    const failing = sweep.findings.filter((f) => f.severity === 'fail');
    const checksum = failing.find((f) => f.check === 'ciphertext-sha256');
    assert.ok(checksum?.where.includes(artifact.key), failing.map((f) => `${f.check} ${f.where}`).join('\n'));
    assert.deepEqual(sweep.report.sources.map((s) => `${s.group}/${s.source} ${s.status}`).sort(), ['app/shop OK', 'app/site OK', 'db/blobs OK', 'db/orders OK', 'db/pg FAIL', 'db/wal OK']);
    const alerts = await deployment.receiveAlerts();
    const alert = alerts.find((a) => /FAIL/.test(a.subject) && a.message.includes(artifact.key));
    assert.ok(alert, alertSummary(alerts));
    assert.match(alert.message, /SHA-256/);

    const scratch = uniqueDbName('cs_e2e_never');
    pgScratch.push(scratch);
    const refused = await deployment.restore(bundle, PG_GROUP, ['--source', 'pg', '--key', keys[PG_GROUP].recipient.privateFile, '--target', `postgres://${PG.user}@${PG.host}:${PG.port}/${scratch}`]);
    assert.equal(refused.code, EXIT.INTEGRITY, refused.stderr);
    assert.match(refused.stderr, /SHA-256|checksum/i);
    corrupted = artifact.key;
  });

  test('repaired (the bad version removed), the next sweep closes the FAIL: its alert state is deleted and the resolution sent', async () => {
    await deployment.removeCurrentVersion(corrupted);
    const sweep = (await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier))) as SweepResult;
    assert.equal(sweep.report.status, 'OK', sweep.findings.map((f) => `${f.check} ${f.summary}`).join('\n'));
    assert.ok(sweep.plan.resolved.length > 0 && sweep.plan.resolved.every((r) => r.finding.where.includes(corrupted)), JSON.stringify(sweep.plan.resolved.map((r) => `${r.finding.check} ${r.finding.where}`)));
    assert.deepEqual(await deployment.listKeys(ALERT_STATE_PREFIX), []);
    const alerts = await deployment.receiveAlerts();
    assert.ok(alerts.some((a) => /^RESOLVED /m.test(a.message)), alertSummary(alerts));
  });
});

/**
 * moto evaluates no policy, so every request above was answered whatever the stack's policies
 * say. Here each one the system sent (recorded by the proxy, signed with its actor's own key) is
 * asked of a real IAM engine over the template this run deployed: the actor's identity policy,
 * the bucket, topic and KMS key policies (test/infra/permissions.ts, aws-calls.ts). A call that
 * would be refused on AWS fails the test by name.
 */
describe('every AWS call recorded during the run is allowed on AWS', () => {
  let template: Template;
  let translation: Translation;
  let model: PermissionModel;
  const decisions: { call: RecordedCall; decision: Decision }[] = [];
  const serviceDecisions: Decision[] = [];

  const modelOf = (t: Template): PermissionModel => {
    const model = new PermissionModel(t);
    model.identities.set(OPERATOR, { arn: `arn:aws:iam::${FAKE.account}:user/operator`, policies: [OPERATOR_POLICY] });
    return model;
  };
  const deniedIn = async (model: PermissionModel, calls: readonly RecordedCall[]) => {
    const out: string[] = [];
    for (const call of calls) {
      const decision = await model.decide(call);
      if (!decision.allowed) out.push(`${describeCall(call, decision)}\n    sent as ${call.wire}`);
    }
    return out;
  };

  before(async () => {
    template = deployment.stack.template as Template;
    const secureStringKeys = new Map<string, string>();
    let token: string | undefined;
    do {
      const page = await deployment.ssm.send(new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Type', Values: ['SecureString'] }], NextToken: token }));
      for (const p of page.Parameters ?? []) secureStringKeys.set(p.Name!, p.KeyId!);
      token = page.NextToken;
    } while (token);
    translation = translate(recorder.requests, principals, { template, physical: deployment.stack.physical, accountId: deployment.target.accountId, secureStringKeys });
    model = modelOf(template);
    for (const call of translation.calls) if (!needsNoPermission(call)) decisions.push({ call, decision: await model.decide(call) });
  });

  test('every recorded request is placed: signed by a known actor, its operation in the table', () => {
    assert.deepEqual(translation.problems, []);
    assert.ok(translation.harnessRequests > 0, 'the harness key signed requests of its own, and they were left out');
  });

  test('each call of the hosts, the drill host, the verifier, the monitor, the scheduler and the operator is allowed', () => {
    const denied = decisions.filter((d) => !d.decision.allowed).map((d) => `${describeCall(d.call, d.decision)}\n    sent as ${d.call.wire}`);
    assert.deepEqual(denied, [], `${denied.length} of ${decisions.length} recorded calls would be refused on AWS`);
  });

  test("the document's download steps, the SSM Agent's calls with a host's role, are recorded and allowed: ListObjects of \"<key>/\", then GetObject, for each executable", () => {
    const hostCalls = decisions.filter(({ call }) => call.principal === `host:${PG_GROUP}`);
    for (const step of deployment.document.mainSteps.filter((s) => s.action === 'aws:downloadContent')) {
      const { key } = downloadSource(String(step.inputs.sourceInfo));
      const lists = hostCalls.filter(({ call }) => call.operation === 'ListObjects' && call.query?.prefix === `${key}/`);
      const gets = hostCalls.filter(({ call }) => call.operation === 'GetObject' && call.key === key);
      assert.ok(lists.length > 0 && gets.length > 0, `${step.name}: ${lists.length} ListObjects with prefix ${key}/, ${gets.length} GetObject of ${key}`);
      for (const { call, decision } of [...lists, ...gets]) assert.ok(decision.allowed, `${describeCall(call, decision)}\n    sent as ${call.wire}`);
    }
  });

  test('the recording covers every principal and the calls that matter', () => {
    const seen = new Set(decisions.map(({ call }) => `${call.principal} ${call.operation}${call.key?.startsWith('reports/') ? ' reports/' : ''}${call.key?.startsWith('state/alerts/') ? ' state/alerts/' : ''}${call.query?.versionId ? ' +version' : ''}${call.readsLock ? ' +lock' : ''}${call.mayBeMissing ? ' 404' : ''}${call.parameterKeyArn ? ' +kms' : ''}`));
    const expected = [
      'host:db PutObject',
      'host:db ssm:GetParameter +kms',
      'host:app CreateMultipartUpload',
      'host:app UploadPart',
      'host:app CompleteMultipartUpload',
      'host:app ssm:GetParameter +kms',
      'host:db AbortMultipartUpload',
      'host:db ListMultipartUploads',
      'host:db sns:Publish',
      'host:db cloudwatch:PutMetricData',
      'drill GetObject',
      'drill GetObject +version',
      'drill PutObject',
      'verifier GetObject +version',
      'verifier DeleteObject state/alerts/',
      'monitor DeleteObject state/alerts/',
      'verifier ListObjectsV2',
      'verifier HeadObject +lock',
      'verifier GetObject 404',
      'verifier PutObject reports/',
      'verifier ssm:GetParameter',
      'verifier sns:Publish',
      'verifier pricing:GetProducts',
      'monitor ListObjectsV2',
      'monitor PutObject',
      'monitor sns:Publish',
      'scheduler ssm:SendCommand',
      'operator ssm:PutParameter +kms',
      'operator GetObject',
      'operator RestoreObject',
      'operator ssm:SendCommand',
    ];
    assert.deepEqual(expected.filter((e) => !seen.has(e)), [], `recorded: ${[...seen].sort().join(', ')}`);
  });

  test('every EventBridge rule target, schedule target and alarm action of the deployed template is allowed, derived from the rule or alarm as the service calls it', async () => {
    const refused: string[] = [];
    for (const call of serviceCallsOf(template, (arn) => model.nameOfRole(arn))) {
      const decision = await model.decide(call);
      if (!decision.allowed) refused.push(`${call.origin}: ${describeCall(call, decision)}`);
      serviceDecisions.push(decision);
    }
    assert.ok(serviceDecisions.length >= 10, `${serviceDecisions.length} service calls`);
    assert.deepEqual(refused, []);
  });

  test("each recorded write of a host or the drill host is refused without If-None-Match, and so is a delete of its key", async () => {
    const writes = decisions.map((d) => d.call).filter((c) => (c.principal.startsWith('host:') || c.principal === 'drill') && (c.operation === 'PutObject' || c.operation === 'CompleteMultipartUpload') && c.headers?.['if-none-match']);
    const kinds = new Set(writes.map((c) => `${c.principal} ${parseKey(c.key!)?.kind ?? c.key!.split('/')[0]}${/\.seg\d+\.pgp$/.test(c.key!) ? ' segment' : ''}`));
    for (const kind of ['host:db manifest', 'host:db artifact', 'host:db artifact segment', 'host:app manifest', 'host:app artifact', 'host:db wal', 'host:db binlog', 'drill drill-receipt']) assert.ok(kinds.has(kind), `recorded writes: ${[...kinds].join(', ')}`);
    const hostile: RecordedCall[] = writes.flatMap((c) => {
      const { 'if-none-match': _condition, ...headers } = c.headers!;
      return [
        { ...c, headers, wire: `${c.wire} without If-None-Match` },
        { principal: c.principal, operation: 'DeleteObject', bucket: c.bucket, key: c.key, wire: `DeleteObject of ${c.key}` },
        { principal: c.principal, operation: 'DeleteObject', bucket: c.bucket, key: c.key, query: { versionId: 'v1' }, wire: `DeleteObject of a version of ${c.key}` },
      ];
    });
    const allowed: string[] = [];
    for (const call of hostile) if ((await model.decide(call)).allowed) allowed.push(`${describeCall(call)} (${call.wire})`);
    assert.deepEqual(allowed, [], `${allowed.length} of ${hostile.length} overwrites and deletes would be allowed on AWS`);
  });

  test('every permission the template grants is used by a recorded or derived call, or named with a reason in UNUSED_PERMISSIONS', (t) => {
    const used = new Set([...decisions, ...serviceDecisions.map((decision) => ({ decision }))].flatMap((d) => d.decision.grants ?? []));
    const unused = model.grants().map(grantKey).filter((k) => !used.has(k));
    const reasonOf = (k: string) => UNUSED_PERMISSIONS.find((e) => entryMatches(e.grant, k))?.reason;
    t.diagnostic(`${unused.length} of ${model.grants().length} granted permissions unused by the run:\n${unused.map((k) => `  ${k}\n      ${reasonOf(k) ?? 'NOT LISTED'}`).join('\n')}`);
    const unlisted = unused.filter((k) => !reasonOf(k));
    const stale = UNUSED_PERMISSIONS.filter((e) => !unused.some((k) => entryMatches(e.grant, k))).map((e) => e.grant);
    assert.deepEqual(unlisted, [], 'unused and not in UNUSED_PERMISSIONS (test/infra/unused-permissions.ts): exercise it in the run, remove it from the stack, or list it with a reason');
    assert.deepEqual(stale, [], 'listed in UNUSED_PERMISSIONS but used (or no longer granted): remove the entry');
  });

  test('the proof catches what c87bf67 fixed: the old encryption Deny refuses the recorded multipart steps, a verifier without s3:GetObjectRetention its HEADs, prefix-only ListBucket its 404s', async () => {
    const calls = decisions.map((d) => d.call);
    const bucketDenyIfExists = JSON.parse(JSON.stringify(template)) as Template;
    for (const [, r] of Object.entries(bucketDenyIfExists.Resources)) {
      if (r.Type !== 'AWS::S3::BucketPolicy') continue;
      for (const st of r.Properties.PolicyDocument.Statement as any[]) {
        // As before c87bf67: a negated ...IfExists in a Deny is true when the header is absent.
        if (st.Sid === 'DenyOtherEncryption') st.Condition = { StringNotEqualsIfExists: { 's3:x-amz-server-side-encryption': 'aws:kms' } };
        if (st.Sid === 'DenyOtherKmsKey') st.Condition = { StringNotEqualsIfExists: { 's3:x-amz-server-side-encryption-aws-kms-key-id': st.Condition.StringNotEquals['s3:x-amz-server-side-encryption-aws-kms-key-id'] } };
      }
    }
    const uploads = calls.filter((c) => c.operation === 'UploadPart' || c.operation === 'CompleteMultipartUpload');
    assert.ok(uploads.length >= 3, `recorded multipart steps: ${uploads.length}`);
    assert.deepEqual(
      (await deniedIn(modelOf(bucketDenyIfExists), uploads)).length,
      uploads.length,
      'every recorded UploadPart and CompleteMultipartUpload is refused under the old Deny',
    );

    const withoutRetention = modelOf(template);
    const verifier = withoutRetention.identities.get('verifier')!;
    for (const policy of verifier.policies) {
      policy.Statement = policy.Statement.map((st: any) => ({ ...st, Action: [st.Action].flat().filter((a: string) => a !== 's3:GetObjectRetention') })).filter((st: any) => st.Action.length > 0);
    }
    const lockReads = calls.filter((c) => c.readsLock);
    assert.ok(lockReads.length > 0, 'the verifier HEADed locked objects');
    const refused = await deniedIn(withoutRetention, lockReads);
    assert.equal(refused.length, lockReads.length, refused.join('\n'));
    assert.match(refused[0], /s3:GetObjectRetention .* ImplicitlyDenied/);

    const prefixOnlyList = modelOf(template);
    for (const policy of prefixOnlyList.identities.get('verifier')!.policies) {
      for (const st of policy.Statement as any[]) {
        if ([st.Action].flat().includes('s3:ListBucket')) st.Condition = { StringLike: { 's3:prefix': ['backups/*', 'drills/*', 'state/*'] } };
      }
    }
    const missing = calls.filter((c) => c.principal === 'verifier' && c.mayBeMissing);
    assert.ok(missing.length > 0, 'the verifier read keys that were not there');
    assert.equal((await deniedIn(prefixOnlyList, missing)).length, missing.length, 'each 404 the verifier relied on would be a 403');
  });
});
