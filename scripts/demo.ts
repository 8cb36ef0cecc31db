import { execFileSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { readPublicKeys } from '../runtime/pgp';
import { openManifest } from '../runtime/signed-document';
import { EXIT } from '../format/exit-codes';
import type { ManifestResult, SweepResult } from '../lambdas/verifier/core/verifier';
import type { MonitorResult } from '../lambdas/monitor/core/monitor';
import type { Finding } from '../lambdas/shared/findings';
import { copiedExecutables, deployToMoto, defaultMotoTarget } from '../local-system/moto-stack';
import { Deployment, generateKeyFiles, HostInventory } from '../local-system/flow';
import type { Alert } from '../local-system/alerts';
import { buildAgentExecutablesSync, buildAgentSync } from './build-agent';
import { startMoto, type MotoServer } from '../local-system/services';
import { createPgFixture, dropPgDatabase, pgContentFingerprint, pgSource, pgUrl, PG } from '../local-system/databases';

/**
 * npm run demo [-- --database NAME]
 *
 * The whole of coldseal on this machine, with nothing sent to AWS: the CDK stack synthesized and
 * deployed into a moto_server started here on loopback, a sample PostgreSQL database (or yours)
 * backed up by the stack's own SSM document script as a scheduled run would, the verifier and
 * monitor Lambdas run in-process with the environment the deployed functions have, a restore
 * compared with the source, then a backup corrupted on purpose and caught. Everything it creates
 * is removed at the end, except the report files it saved for you to open.
 */
const ROOT = join(__dirname, '..');
// As the test runner does: no SDK Node-version notices or CDK version checks in the demo's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.env.CDK_DISABLE_VERSION_CHECK ??= '1';
const WORK = join(ROOT, '.tmp', 'demo');
const GROUP = 'demo';
const SOURCE = 'postgres';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (n: number, title: string) => console.log(`\n${bold(`${n}. ${title}`)}`);
const say = (s = '') => console.log(s ? `   ${s.split('\n').join('\n   ')}` : '');

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (!value || value.startsWith('--')) throw new Error(`${name} needs a value, e.g. npm run demo -- ${name} mydb`);
  return value;
}

function need(command: string, why: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`'${command}' is not on PATH; it is needed ${why}. Install it and run again.`);
  }
}

function findingLine(f: Finding): string {
  return `${f.severity.toUpperCase()} ${f.check}: ${f.summary}\n     where: ${f.where}\n     what to do: ${f.action}`;
}

/** The agent logs JSON lines when not on a terminal: the last error's message, for a person. */
function lastError(stderr: string): string {
  const messages = stderr.split('\n').flatMap((line) => {
    try {
      const entry = JSON.parse(line) as { level?: string; message?: string };
      return entry.level === 'error' && entry.message ? [entry.message] : [];
    } catch {
      return line.trim() ? [line] : [];
    }
  });
  return messages.pop() ?? '(no message)';
}

function alertLines(alerts: readonly Alert[]): string {
  if (alerts.length === 0) return 'no alert was sent';
  return alerts.map((a) => `✉ ${a.subject}\n  ${a.message.split('\n').slice(0, 6).join('\n  ')}`).join('\n');
}

async function main(): Promise<number> {
  const named = option('--database');
  need('psql', 'to reach PostgreSQL');
  need('pg_dump', 'by the agent to dump PostgreSQL');
  need('zip', 'to package the Lambda code assets as cdk deploy does');
  try {
    execFileSync('psql', ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-d', 'postgres', '-Atqc', 'select 1'], { stdio: 'ignore' });
  } catch {
    throw new Error(`PostgreSQL does not answer on ${PG.host}:${PG.port} as user ${PG.user}. Start it (e.g. pg_ctlcluster <version> main start) and run again.`);
  }

  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const logFile = join(WORK, 'lambda-logs.jsonl');
  const hostLog = join(WORK, 'host-runs.log');
  const created: string[] = [];
  let moto: MotoServer | undefined;
  const suffix = Math.random().toString(36).slice(2, 8);
  try {
    step(1, 'A database to back up');
    let database = named;
    if (database) say(`using your database ${database} (read only: it is dumped, never changed)`);
    else {
      database = `coldseal_demo_${suffix}`;
      await createPgFixture(database, 5_000);
      created.push(database);
      say(`created the sample database ${database} (schemas, JSON, bytea, large objects, a trigger...)`);
    }

    step(2, 'Throwaway keys (coldseal keys generate)');
    const keys = await generateKeyFiles(join(WORK, 'keys'), GROUP);
    say(`recipient (decrypts backups; never goes to AWS): ${relative(ROOT, keys.recipient.privateFile)}`);
    say(`signing key of group ${GROUP} (published to SSM as a SecureString below): ${relative(ROOT, keys.signing.privateFile)}`);

    step(3, 'Synthesize the stack and deploy it into a local moto_server');
    moto = await startMoto();
    const target = defaultMotoTarget(moto.endpoint);
    // The bundle runs the operator's steps (a laptop's `npm run coldseal`); the executables are what
    // the stack ships to hosts, built (or reused) by `npm run build:agent`'s code.
    const bundle = join(WORK, 'coldseal-agent.js');
    copyFileSync(buildAgentSync(), bundle);
    const executables = copiedExecutables(buildAgentExecutablesSync(), WORK);
    const context = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context.coldseal;
    context.recipients = keys.recipient.publicKey;
    context.groups = {
      [GROUP]: {
        schedule: 'cron(30 1 * * ? *)',
        signingPublicKeys: keys.signing.publicKey,
        sources: [pgSource(SOURCE, [database])],
      },
    };
    context.drill = { group: GROUP, schedule: 'cron(0 6 ? * SAT *)' };
    const stack = await deployToMoto({ target, context, baseDir: ROOT, agentExecutables: executables, stackName: 'ColdsealDemo' });
    const deployment = await Deployment.read(target, stack, join(WORK, 'host'));
    deployment.lambdaOutput = (line) => appendFileSync(logFile, `${line}\n`);
    say(`moto_server on ${moto.endpoint}; stack ${stack.stackName}: ${stack.physical.size} resources created`);
    say(`left out (moto cannot deploy them; the template tests check them): ${[...new Set(stack.pruned.values())].sort().join(', ')}`);
    say(`data bucket ${stack.bucket}, alert topic ${deployment.topicArn}`);
    say(`verifier ${deployment.verifier.name} and monitor ${deployment.monitor.name}: environment read back from the deployed functions`);
    const published = await deployment.publishSigningKey(bundle, GROUP, keys.signing.privateFile);
    if (published.code !== EXIT.OK) throw new Error(`coldseal keys publish failed (exit ${published.code}): ${published.stderr}`);
    say(`signing key published: coldseal keys publish --group ${GROUP} → SSM SecureString`);
    await deployment.subscribeToAlerts();
    say('an SQS queue subscribed to the alert topic stands in for the email subscription');

    step(4, 'The scheduled backup: the SSM document, run here as the SSM Agent would on a host (downloads, then its script)');
    const run = await deployment.runScheduled(GROUP);
    appendFileSync(hostLog, `# scheduled backup, exit ${run.code}\n${run.stderr}${run.stdout}\n`);
    if (run.code !== EXIT.OK) throw new Error(`the scheduled backup failed (exit ${run.code}); its log is in ${relative(ROOT, hostLog)}:\n${run.stderr.split('\n').slice(-5).join('\n')}`);
    say(`document steps: ${run.steps.map((s) => `${s.name} ${s.status}`).join(', ')} (the x86_64 executable, checked by SHA-256)`);
    const [manifestKey] = await deployment.manifests(GROUP);
    const { document: manifest } = await openManifest(await deployment.getText(manifestKey), await readPublicKeys(keys.signing.publicKey, 'signing key'));
    const artifact = manifest.artifacts[0];
    say(`document parameters from the schedule: ${JSON.stringify(deployment.scheduledRun(GROUP).parameters)}`);
    say(`backup:   s3://${stack.bucket}/${artifact.key}`);
    say(`manifest: s3://${stack.bucket}/${manifestKey}`);
    say(`${artifact.uncompressedBytes} bytes dumped, ${artifact.ciphertextBytes} encrypted (${manifest.compression.algorithm}), tier ${manifest.tier}, SHA-256 ${artifact.ciphertextSha256.slice(0, 16)}…`);

    step(5, 'The verifier, triggered by the "manifest created" event (deployed rule pattern)');
    const checked = (await deployment.invokeVerifier(await deployment.manifestCreatedEvent(manifestKey))) as ManifestResult;
    say(checked.findings.length ? checked.findings.map(findingLine).join('\n') : 'signature, size, SHA-256, recipients, Object Lock: every check passed');

    step(6, "The drill schedule's run: restores the latest backup into scratch, checks it, signs a receipt");
    // COLDSEAL_DRILL_KEY stands in for the drill host's /etc/coldseal/drill.key.asc.
    const drill = await deployment.runScheduled(GROUP, 'drill', { COLDSEAL_DRILL_KEY: keys.recipient.privateFile });
    appendFileSync(hostLog, `# drill, exit ${drill.code}\n${drill.stderr}${drill.stdout}\n`);
    say(drill.code === EXIT.OK ? drill.stdout.trim() || `receipt: ${(await deployment.listKeys(`drills/${GROUP}/`)).join(', ')}` : `the drill failed (exit ${drill.code}): ${lastError(drill.stderr)}`);

    step(7, "The verifier's daily sweep and report");
    const sweep = (await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier))) as SweepResult;
    const reportDir = join(WORK, 'report');
    mkdirSync(reportDir, { recursive: true });
    for (const key of [sweep.reportKeys.json, sweep.reportKeys.html]) {
      const body = await (await deployment.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: key }))).Body!.transformToString();
      writeFileSync(join(reportDir, key.split('/').pop()!), body);
    }
    say(`status ${sweep.report.status}; ${sweep.findings.length} finding(s)`);
    say(`report: s3://${stack.bucket}/${sweep.reportKeys.json}\n        s3://${stack.bucket}/${sweep.reportKeys.html}`);
    say(`copies to open: ${relative(ROOT, join(reportDir, 'verification.html'))} (and .json)`);

    step(8, 'The monitor, on its schedule (freshness, metrics, heartbeat), then on a failed run');
    // moto has no managed-instance inventory: this machine plays the group's one tagged host.
    const inventory = new HostInventory([{ instanceId: 'i-0demo0demo0demo00', computerName: hostname(), pingStatus: 'Online', lastPingAt: new Date(), group: GROUP }]);
    const monitor = (await deployment.invokeMonitor(deployment.scheduledInput(deployment.monitor), inventory)) as MonitorResult;
    say(monitor.findings.length ? monitor.findings.map(findingLine).join('\n') : `the tagged host ${hostname()} is online and its source is fresh`);
    const commandId = await deployment.sendBackupCommand(GROUP);
    say(`sent the BackupCommand output's aws ssm send-command (command ${commandId}); say it failed on the host:`);
    const failedRun = await deployment.commandStatusEvent({ 'command-id': commandId, 'document-name': deployment.stack.output('AgentDocumentName'), 'instance-id': 'i-0demo0demo0demo00', 'requested-date-time': new Date().toISOString(), status: 'Failed' });
    const failure = (await deployment.invokeMonitor(failedRun, inventory)) as MonitorResult;
    say(failure.findings.map(findingLine).join('\n'));
    say(`the functions' metrics and log lines (CloudWatch Logs on AWS): ${relative(ROOT, logFile)}`);

    step(9, 'Alerts sent so far (read from the SQS subscription of the topic)');
    say(alertLines(await deployment.receiveAlerts()));

    step(10, 'Restore into a scratch database with coldseal restore, and compare');
    const scratch = `coldseal_demo_restored_${suffix}`;
    created.push(scratch);
    const restoreArgs = ['--source', SOURCE, '--key', keys.recipient.privateFile];
    const restored = await deployment.restore(bundle, GROUP, [...restoreArgs, '--target', pgUrl(scratch)]);
    if (restored.code !== EXIT.OK) throw new Error(`coldseal restore failed (exit ${restored.code}): ${restored.stderr}`);
    say(restored.stdout.trim());
    const [original, copy] = await Promise.all([pgContentFingerprint(database), pgContentFingerprint(scratch)]);
    const differing = Object.keys({ ...original, ...copy }).filter((k) => original[k] !== copy[k]);
    say(differing.length === 0 ? `${Object.keys(original).length} tables, sequences, large objects, functions and views: identical to ${database}` : `DIFFERENT: ${differing.join(', ')}`);

    step(11, 'Break it on purpose: one byte of the newest backup flipped in S3');
    await deployment.corrupt(artifact.key);
    say(`overwrote s3://${stack.bucket}/${artifact.key} with a corrupted copy (a new object version; Object Lock keeps the original version)`);
    const broken = (await deployment.invokeVerifier(deployment.scheduledInput(deployment.verifier))) as SweepResult;
    say(`the next sweep: status ${broken.report.status}`);
    say(broken.findings.filter((f) => f.severity === 'fail').map(findingLine).join('\n'));
    say('alert:');
    say(alertLines(await deployment.receiveAlerts()));
    const refused = await deployment.restore(bundle, GROUP, [...restoreArgs, '--target', pgUrl(`${scratch}_never`)]);
    say(`coldseal restore of it: exit ${refused.code}, nothing restored:\n${lastError(refused.stderr)}`);

    const ok = differing.length === 0 && sweep.report.status === 'OK' && broken.report.status === 'FAIL' && refused.code !== EXIT.OK;
    console.log(`\n${bold(ok ? 'The demo ran through: backup, verification, report, alerts, restore, and a corruption caught.' : 'The demo found a problem: see above.')}`);
    return ok ? 0 : 1;
  } finally {
    step(12, 'Cleaning up');
    for (const db of created) await dropPgDatabase(db).catch((error: Error) => say(`could not drop ${db}: ${error.message}`));
    if (created.length) say(`dropped ${created.join(', ')}`);
    if (moto) await moto.stop();
    say('stopped moto_server (everything deployed into it is gone)');
    rmSync(join(WORK, 'keys'), { recursive: true, force: true });
    rmSync(join(WORK, 'host'), { recursive: true, force: true });
    say(`removed the throwaway keys; kept ${relative(ROOT, WORK)}/ (report copies, logs): rm -rf ${relative(ROOT, WORK)} when done`);
    console.log(`
${bold('On a real AWS account instead')} (README: "Deploying to AWS"):
   npm run coldseal -- keys generate --out keys --group db      # keep keys/recipient.key.asc offline
   edit the "coldseal" context in cdk.json: groups, sources, recipients, alertEmails
   npx cdk bootstrap && npx cdk deploy
   npm run coldseal -- keys publish --group db --signing-key keys/db-signing.key.asc
   tag each host coldseal-group=db, attach the InstancePolicyArnDb output to its role,
   and run npm run coldseal -- trigger --group db --wait once to try it.`);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`\ndemo failed: ${(error as Error).message}`);
    process.exit(1);
  },
);
