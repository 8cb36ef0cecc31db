import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { DAY, HOUR, healthyFleet, newWorld, putBackup, putDrill, putObject } from './fixtures';
import { storageSnapshotKey, type StorageSnapshot } from '../../lambdas/verifier/core/storage-cost';

/**
 * The HTML report as people see it: rendered by a real headless Chromium (Debian's package), from
 * the file the verifier wrote to S3. COLDSEAL_UPDATE_SCREENSHOT=1 also refreshes docs/report.png.
 */
const CHROMIUM = '/usr/bin/chromium';

test('the HTML report renders in headless Chromium: status banner, finding rows, one chart per source, the recovery window and storage pictures, and fits a phone', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: npm run setup installs it (apt-get install -y chromium)`);
  const world = await newWorld({
    // moto has no Price List API: the committed table prices the report, as the switch in the settings asks.
    extraEnv: { COLDSEAL_PRICE_LIST: 'false' },
    groups: [
      { name: 'web', rpoHours: 26, rtoHours: 2, sources: ['pg'], hosts: ['web-1', 'web-2'], retentionDays: { daily: 35 }, drillMaxAgeDays: 8 },
    ],
  });
  // A month of history with a weekly rhythm, then a sudden drop on web-2 and a failed drill.
  const wave = [0, 3, 5, 6, 5, 3, 0];
  await healthyFleet(world, {
    days: 35,
    drill: false,
    sizeOf: (k, host) => (host === 'web-1' ? 24_000 : 16_000) + wave[k % 7] * 900 + (30 - k) * 60,
    durationOf: (k) => 80 + wave[(k + 2) % 7] * 9,
  });
  await putBackup(world, { host: 'web-2', finishedAt: new Date(world.clock.ms - 10 * 60_000), payloadBytes: 1_800, durationSeconds: 30 });
  // Older tiers: weeklies for 90 days, monthlies (in Standard-IA) for a year, one yearly; their gaps end before the 30-day RPO window.
  const older: { days: number; tier: 'weekly' | 'monthly' | 'yearly' }[] = [
    ...[42, 49, 56, 63, 70, 77, 84].map((days) => ({ days, tier: 'weekly' as const })),
    ...[120, 150, 180, 240, 300].map((days) => ({ days, tier: 'monthly' as const })),
    { days: 400, tier: 'yearly' },
  ];
  for (const o of older) await putBackup(world, { host: 'web-1', tier: o.tier, finishedAt: new Date(world.clock.ms - HOUR - o.days * DAY), payloadBytes: 24_000, storageClass: o.tier === 'weekly' ? undefined : 'STANDARD_IA' });
  // Two months of daily storage snapshots, growing, as earlier sweeps would have left them.
  for (let d = 60; d >= 1; d -= 3) {
    const at = new Date(world.clock.ms - d * DAY);
    const standard = 1_500_000 + (60 - d) * 6_000;
    const rows = [
      { group: 'web', tier: 'daily', storageClass: 'STANDARD', objects: 140, bytes: standard, billableBytes: standard, standardOverheadBytes: 0, monitoredObjects: 0 },
      { group: 'web', tier: 'monthly', storageClass: 'STANDARD_IA', objects: 12, bytes: 150_000 + (60 - d) * 800, billableBytes: 1_600_000, standardOverheadBytes: 0, monitoredObjects: 0 },
    ];
    const snapshot: StorageSnapshot = { schema: 'coldseal-storage-snapshot/1', takenAt: at.toISOString(), rows, monthlyCost: 0 };
    await putObject(world, storageSnapshotKey(at), JSON.stringify(snapshot), { lock: false });
  }
  await putDrill(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - 3 * HOUR), ok: false });
  const result = (await createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock })({ action: 'sweep' })) as SweepResult;
  assert.deepEqual(result.findings.map((f) => f.check).sort(), ['drill-failed', 'size-drop']);
  const html = await (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: result.reportKeys.html }))).Body!.transformToString();

  const dir = mkdtempSync(join(tmpdir(), 'coldseal-report-'));
  const file = join(dir, 'verification.html');
  writeFileSync(file, html);
  // A new, empty profile directory for each run (playwright passes it as --user-data-dir).
  const browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1240, height: 900 },
  });
  try {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${file}`);
    assert.match(await page.title(), /^coldseal verification \d{4}-\d\d-\d\d: FAIL$/);
    assert.equal(await page.locator('.banner').innerText(), 'FAIL: 1 failing, 1 warning (2 new, 0 resolved)');
    assert.equal(await page.locator('.banner').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(252, 232, 230)');
    assert.equal(await page.locator('table.list tr.fail').count(), 1);
    assert.equal(await page.locator('table.list tr.warn').count(), 1);
    const charts = page.locator('svg.chart');
    assert.equal(await charts.count(), 2);
    for (const box of [await charts.nth(0).boundingBox(), await charts.nth(1).boundingBox()]) {
      assert.ok(box && box.width >= 300 && box.height >= 80, `chart is laid out: ${JSON.stringify(box)}`);
    }
    assert.equal(await charts.nth(0).locator('rect').count(), 30);
    // The recovery window: one bar per source, a tick per good copy (web-1: 35 dailies and 13 older copies), on one laid-out picture.
    const window = page.locator('svg.picture.window');
    assert.equal(await window.count(), 1);
    const windowBox = await window.boundingBox();
    assert.ok(windowBox && windowBox.width >= 600 && windowBox.height >= 80, `recovery window is laid out: ${JSON.stringify(windowBox)}`);
    assert.equal(await window.locator('rect.copy').count(), 35 + 13 + 36);
    // Stored bytes by class: one bar segment per class and snapshot day (20 planted with two classes, today's with two).
    const storage = page.locator('svg.picture.storage');
    assert.equal(await storage.count(), 1);
    assert.equal(await storage.locator('rect.stored').count(), 20 * 2 + 2);
    assert.match(await page.locator('table.audit').innerText(), /not estimated/);
    assert.deepEqual(requests, [`file://${file}`], 'self-contained: no request besides the page itself');
    const png = join(dir, 'report.png');
    await page.screenshot({ path: png, fullPage: true });
    assert.ok(statSync(png).size > 20_000, 'the screenshot has content');
    if (process.env.COLDSEAL_UPDATE_SCREENSHOT === '1') copyFileSync(png, join(__dirname, '..', '..', 'docs', 'report.png'));
    // On a phone: nothing wider than the screen but the tables that scroll inside themselves.
    await page.setViewportSize({ width: 390, height: 800 });
    assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390, 'the page does not scroll sideways on a 390 px wide screen');
    const phoneWindow = await window.boundingBox();
    assert.ok(phoneWindow && phoneWindow.width <= 374 && phoneWindow.width >= 300, `the recovery window shrinks to the screen: ${JSON.stringify(phoneWindow)}`);
    if (process.env.COLDSEAL_UPDATE_SCREENSHOT === '1') await page.screenshot({ path: join(__dirname, '..', '..', 'docs', 'report-phone.png'), fullPage: false });
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
