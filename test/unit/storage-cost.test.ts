import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { drillReceiptKey, walObjectKey } from '../../format/layout';
import { GB, PRICE_TABLE, PRICE_TABLE_AS_OF, PRICE_TABLE_SOURCE, priceOverrideSchema, priceTableSchema, tablePrices, withOverride } from '../../format/prices';
import type { RangeRequest, RangeResponse } from '../../runtime/part-reader';
import type { BucketStore, ListedObject, Log, ObjectHead } from '../../lambdas/shared/ports';
import { priceCacheKey, pricesFromPriceList, PriceListError, resolvePrices, SdkPriceList } from '../../lambdas/shared/price-list';
import { estimateMonthlyRequests, estimateReplicaRequests, monthlyCost, placeOf, snapshotToCompare, storageRows, storageSnapshotKey, storageTrend, type StorageSnapshot, type StoredObject } from '../../lambdas/verifier/core/storage-cost';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const KiB = 1024;
const MiB = 1024 * KiB;
const daysAgo = (d: number) => new Date(NOW.getTime() - d * 86_400_000);
const obj = (key: string, size: number, storageClass = 'STANDARD', age = 40): StoredObject => ({ key, size, storageClass, lastModified: daysAgo(age) });
const art = (tier: string, group = 'clinic', stamp = '20261101T013000Z') => `backups/${tier}/${group}/h1/db/${stamp}.shop.sql.zst.pgp`;
const us = PRICE_TABLE['us-east-1'];

describe('the committed price table', () => {
  test('has the common regions and every class, dated and sourced', () => {
    for (const region of ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2']) {
      const t = tablePrices(region)!;
      assert.equal(priceTableSchema.parse(t).region, region);
      assert.deepEqual(Object.keys(t.storagePerGbMonth).sort(), ['DEEP_ARCHIVE', 'GLACIER', 'GLACIER_IR', 'INTELLIGENT_TIERING', 'STANDARD', 'STANDARD_IA']);
      assert.equal(t.source, PRICE_TABLE_SOURCE);
      assert.equal(t.asOf, PRICE_TABLE_AS_OF);
      // The classes' order by price is what the tiering relies on.
      const s = t.storagePerGbMonth;
      assert.ok(s.STANDARD > s.STANDARD_IA && s.STANDARD_IA > s.GLACIER_IR && s.GLACIER_IR >= s.GLACIER && s.GLACIER > s.DEEP_ARCHIVE, region);
    }
    assert.equal(tablePrices('mars-north-1'), undefined);
  });

  test('an override replaces the figures it names and says so', () => {
    const o = withOverride(us, priceOverrideSchema.parse({ storagePerGbMonth: { STANDARD: 0.02 }, interRegionTransferPerGb: 0 }));
    assert.equal(o.storagePerGbMonth.STANDARD, 0.02);
    assert.equal(o.storagePerGbMonth.GLACIER, us.storagePerGbMonth.GLACIER);
    assert.equal(o.interRegionTransferPerGb, 0);
    assert.match(o.source, /overridden in the settings: storagePerGbMonth\.STANDARD, interRegionTransferPerGb$/);
    assert.equal(withOverride(us, {}), us);
    assert.throws(() => priceOverrideSchema.parse({ storagePerGbMonth: { STANDARD: -1 } }));
    assert.throws(() => priceOverrideSchema.parse({ storage: 1 }), /Unrecognized key/);
  });
});

describe('storageRows', () => {
  test('keys are placed by group and tier; PITR logs, drills and the deployment\'s own objects apart', () => {
    assert.deepEqual(placeOf(art('monthly')), { group: 'clinic', tier: 'monthly' });
    assert.deepEqual(placeOf('backups/daily/clinic/h1/db/20261101T013000Z.manifest.json'), { group: 'clinic', tier: 'daily' });
    assert.deepEqual(placeOf(walObjectKey('clinic', 'h1', 'db', '000000010000000000000003')), { group: 'clinic', tier: 'pitr' });
    assert.deepEqual(placeOf(drillReceiptKey('clinic', 'drill1', '20261205T030000Z')), { group: 'clinic', tier: 'drills' });
    assert.deepEqual(placeOf('reports/2026-12-06/verification.json'), { group: '(deployment)', tier: 'reports' });
  });

  const rows: { name: string; objects: StoredObject[]; want: { tier: string; storageClass: string; objects: number; bytes: number; billableBytes: number; standardOverheadBytes: number; monitoredObjects: number }[] }[] = [
    { name: 'Standard: billed as stored', objects: [obj(art('daily'), 10 * MiB), obj(art('daily', 'clinic', '20261102T013000Z'), 1 * KiB)], want: [{ tier: 'daily', storageClass: 'STANDARD', objects: 2, bytes: 10 * MiB + KiB, billableBytes: 10 * MiB + KiB, standardOverheadBytes: 0, monitoredObjects: 0 }] },
    { name: 'Standard-IA and Glacier IR: a small object is billed as 128 KiB', objects: [obj(art('weekly'), KiB, 'STANDARD_IA'), obj(art('monthly'), 200 * KiB, 'GLACIER_IR')], want: [{ tier: 'monthly', storageClass: 'GLACIER_IR', objects: 1, bytes: 200 * KiB, billableBytes: 200 * KiB, standardOverheadBytes: 0, monitoredObjects: 0 }, { tier: 'weekly', storageClass: 'STANDARD_IA', objects: 1, bytes: KiB, billableBytes: 128 * KiB, standardOverheadBytes: 0, monitoredObjects: 0 }] },
    { name: 'Glacier and Deep Archive: 32 KiB more at the class, 8 KiB at Standard, per object', objects: [obj(art('monthly'), MiB, 'GLACIER'), obj(art('yearly'), MiB, 'DEEP_ARCHIVE'), obj(art('yearly', 'clinic', '20250101T013000Z'), MiB, 'DEEP_ARCHIVE')], want: [{ tier: 'monthly', storageClass: 'GLACIER', objects: 1, bytes: MiB, billableBytes: MiB + 32 * KiB, standardOverheadBytes: 8 * KiB, monitoredObjects: 0 }, { tier: 'yearly', storageClass: 'DEEP_ARCHIVE', objects: 2, bytes: 2 * MiB, billableBytes: 2 * MiB + 64 * KiB, standardOverheadBytes: 16 * KiB, monitoredObjects: 0 }] },
    { name: 'Intelligent-Tiering: objects of 128 KiB and more pay monitoring', objects: [obj(art('daily'), 128 * KiB, 'INTELLIGENT_TIERING'), obj(art('daily', 'clinic', '20261102T013000Z'), 127 * KiB, 'INTELLIGENT_TIERING')], want: [{ tier: 'daily', storageClass: 'INTELLIGENT_TIERING', objects: 2, bytes: 255 * KiB, billableBytes: 255 * KiB, standardOverheadBytes: 0, monitoredObjects: 1 }] },
  ];
  for (const row of rows) {
    test(row.name, () => {
      assert.deepEqual(storageRows(row.objects).map(({ group, ...rest }) => (assert.equal(group, 'clinic'), rest)), row.want);
    });
  }
});

describe('monthlyCost', () => {
  const cases: { name: string; objects: StoredObject[]; region: string; storage: number; byClass: Record<string, number> }[] = [
    { name: '100 GiB in Standard, us-east-1: $2.30', objects: [obj(art('daily'), 100 * GB)], region: 'us-east-1', storage: 2.3, byClass: { STANDARD: 2.3 } },
    { name: '100 GiB in Standard, eu-central-1: $2.45', objects: [obj(art('daily'), 100 * GB)], region: 'eu-central-1', storage: 2.45, byClass: { STANDARD: 2.45 } },
    { name: '1 TiB in Glacier Flexible Retrieval: $3.69', objects: [obj(art('monthly'), 1024 * GB, 'GLACIER')], region: 'us-east-1', storage: 3.69, byClass: { GLACIER: 3.69 } },
    { name: '10 TiB in Deep Archive: $10.14', objects: [obj(art('yearly'), 10 * 1024 * GB, 'DEEP_ARCHIVE')], region: 'us-east-1', storage: 10.14, byClass: { DEEP_ARCHIVE: 10.14 } },
    {
      // 100,000 tiny archived objects: the 40 KiB each S3 adds outweighs the data (3.05 GiB at Glacier, 0.76 GiB at Standard).
      name: 'many small archived objects pay for their overhead',
      objects: Array.from({ length: 100_000 }, (_, i) => obj(walObjectKey('clinic', 'h1', 'db', `00000001${(i + 1).toString(16).toUpperCase().padStart(16, '0')}`), KiB, 'GLACIER')),
      region: 'us-east-1',
      storage: 0.03,
      byClass: { GLACIER: 0.03 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const cost = monthlyCost(storageRows(c.objects), tablePrices(c.region)!);
      assert.equal(cost.storage, c.storage);
      assert.deepEqual(cost.byClass, c.byClass);
      assert.equal(cost.total, c.storage);
      assert.equal(cost.priceSource, PRICE_TABLE_SOURCE);
      assert.equal(cost.region, c.region);
    });
  }

  test('requests, transitions, monitoring and replication are priced; unknown classes are listed, not guessed', () => {
    const rows = storageRows([obj(art('daily'), 10 * GB, 'INTELLIGENT_TIERING'), obj(art('daily', 'other'), GB, 'REDUCED_REDUNDANCY')]);
    const cost = monthlyCost(rows, us, { tier1: 1_000_000, tier2: 10_000_000, transitions: { GLACIER: 10_000, DEEP_ARCHIVE: 1000 }, replicatedBytes: 100 * GB, assumptions: [] });
    assert.equal(cost.requests, 5 + 4);
    assert.equal(cost.transitions, 0.3 + 0.05);
    assert.equal(cost.replication, 2);
    assert.equal(cost.monitoring, 0);
    assert.equal(cost.storage, 0.23);
    assert.deepEqual(cost.byGroup, { clinic: 0.23 });
    assert.deepEqual(cost.unpriced, [{ storageClass: 'REDUCED_REDUNDANCY', bytes: GB }]);
    assert.equal(cost.total, 11.58);
  });
});

describe('estimateMonthlyRequests', () => {
  test('uploads in parts, the verifier\'s sweeps, re-reads and the month\'s transitions', () => {
    const objects = [
      obj(art('daily', 'clinic', '20261201T013000Z'), 80 * MiB, 'STANDARD', 5), // new: 10 parts + 2 PUTs, read once (10 GETs)
      obj('backups/daily/clinic/h1/db/20261201T013000Z.manifest.json', KiB, 'STANDARD', 5), // new: 1 PUT, 1 GET
      obj(art('monthly', 'clinic', '20261001T013000Z'), 8 * MiB, 'GLACIER', 66), // moved at 30 days: 36 days ago, not this month
      obj(art('monthly', 'clinic', '20261101T013000Z'), 8 * MiB, 'GLACIER', 35), // moved 5 days ago
      obj(art('yearly', 'clinic', '20260101T013000Z'), 8 * MiB, 'DEEP_ARCHIVE', 339), // moved a day after, long ago
      obj('reports/2026-12-05/verification.json', KiB, 'STANDARD', 1), // the verifier's own: not an upload
    ];
    const r = estimateMonthlyRequests(objects, NOW, { transitionAfterDays: { GLACIER: 30, DEEP_ARCHIVE: 1 }, replicaConfigured: true });
    // PUT-class: 30 listings (one page each) + 12 + 1.
    assert.equal(r.tier1, 30 + 12 + 1);
    // GET-class: first reads 10 + 1; 30 heads of each of the 5 backup objects; readable backups re-read monthly (10 + 1 parts).
    assert.equal(r.tier2, 11 + 5 * 30 + 11);
    assert.deepEqual(r.transitions, { GLACIER: 1 });
    assert.equal(r.replicatedBytes, 80 * MiB + KiB);
    assert.equal(r.assumptions.length, 3);
    assert.equal(estimateMonthlyRequests(objects, NOW).replicatedBytes, 0);
  });
});

describe('estimateReplicaRequests', () => {
  test('one replication PUT per object copied this month, one listing a sweep, the transitions; no reads', () => {
    const objects = [
      obj(art('daily', 'clinic', '20261201T013000Z'), 80 * MiB, 'STANDARD', 5), // replicated this month: one PUT, whatever its parts
      obj('backups/daily/clinic/h1/db/20261201T013000Z.manifest.json', KiB, 'STANDARD', 5),
      obj(art('monthly', 'clinic', '20261101T013000Z'), 8 * MiB, 'GLACIER', 35), // replicated last month, moved 5 days ago
      obj(art('yearly', 'clinic', '20260101T013000Z'), 8 * MiB, 'DEEP_ARCHIVE', 339),
    ];
    const r = estimateReplicaRequests(objects, NOW, { transitionAfterDays: { GLACIER: 30, DEEP_ARCHIVE: 1 } });
    assert.deepEqual({ tier1: r.tier1, tier2: r.tier2, transitions: r.transitions, replicatedBytes: r.replicatedBytes }, { tier1: 30 + 2, tier2: 0, transitions: { GLACIER: 1 }, replicatedBytes: 0 });
    // 2,500 objects: three pages a listing.
    const many = Array.from({ length: 2500 }, (_, i) => obj(`backups/daily/clinic/h1/db/${i}.manifest.json`, KiB, 'STANDARD', 40));
    assert.equal(estimateReplicaRequests(many, NOW).tier1, 30 * 3);
    // Priced at the replica region's table: eu-central-1's PUT price, not us-east-1's.
    const eu = PRICE_TABLE['eu-central-1'];
    const cost = monthlyCost(storageRows(many), eu, estimateReplicaRequests(many, NOW));
    assert.equal(cost.region, 'eu-central-1');
    assert.equal(cost.requests, Math.round(((90 / 1000) * eu.requestsPer1000.tier1) * 100) / 100);
    assert.equal(cost.replication, 0, 'the transfer is billed to the data bucket\'s side');
  });
});

describe('the trend against 30 days ago', () => {
  test('picks the snapshot nearest to 30 days ago, within a week', () => {
    const keys = ['state/storage/2026-11-01.json', 'state/storage/2026-11-05.json', 'state/storage/2026-11-09.json', 'state/alerts/x.json'];
    assert.equal(snapshotToCompare(keys, NOW), 'state/storage/2026-11-05.json');
    assert.equal(snapshotToCompare(['state/storage/2026-10-01.json', 'state/storage/2026-12-05.json'], NOW), undefined);
    assert.equal(storageSnapshotKey(NOW), 'state/storage/2026-12-06.json');
  });

  test('bytes per group and cost, then and now', () => {
    const rowsThen = storageRows([obj(art('daily'), 100 * GB), obj(art('daily', 'old'), GB)]);
    const previous: StorageSnapshot = { schema: 'coldseal-storage-snapshot/1', takenAt: '2026-11-06T12:00:00.000Z', rows: rowsThen, monthlyCost: 2.0 };
    const rowsNow = storageRows([obj(art('daily'), 125 * GB), obj(art('daily', 'new'), GB)]);
    const trend = storageTrend(rowsNow, 2.5, previous);
    assert.equal(trend.since, '2026-11-06T12:00:00.000Z');
    assert.deepEqual(trend.groups, [
      { group: 'clinic', bytes: 125 * GB, bytesThen: 100 * GB, change: 0.25 },
      { group: 'new', bytes: GB, bytesThen: 0, change: null },
      { group: 'old', bytes: 0, bytesThen: GB, change: -1 },
    ]);
    assert.deepEqual(trend.monthlyCost, { now: 2.5, then: 2.0, change: 0.25 });
    assert.deepEqual(storageTrend(rowsNow, 2.5, undefined).monthlyCost, { now: 2.5, then: null, change: null });
  });
});

/** A product as the Price List returns it (aws_v1): two price tiers, the first one applying. */
function product(usagetype: string, unit: string, usd: string, regionCode: string): string {
  const sku = `SKU${usagetype.replace(/\W/g, '')}`;
  return JSON.stringify({
    product: { productFamily: unit === 'GB-Mo' ? 'Storage' : 'API Request', attributes: { servicecode: 'AmazonS3', regionCode, usagetype }, sku },
    serviceCode: 'AmazonS3',
    terms: {
      OnDemand: {
        [`${sku}.JRTCKXETXF`]: {
          priceDimensions: {
            [`${sku}.JRTCKXETXF.PGHJ3S3EYE`]: { unit, beginRange: '51200', endRange: '512000', pricePerUnit: { USD: '0.0000000001' }, description: 'next tier' },
            [`${sku}.JRTCKXETXF.6YS6EN2CT7`]: { unit, beginRange: '0', endRange: '51200', pricePerUnit: { USD: usd }, description: 'first tier' },
          },
        },
      },
    },
    version: '20261201000000',
    publicationDate: '2026-12-01T00:00:00Z',
  });
}

/** eu-west-1 with made-up prices, so that a price taken from the table could not pass for one from the list. */
const EU_WEST_1_LIST = [
  product('EU-TimedStorage-ByteHrs', 'GB-Mo', '0.0210000000', 'eu-west-1'),
  product('EU-TimedStorage-SIA-ByteHrs', 'GB-Mo', '0.0120000000', 'eu-west-1'),
  product('EU-TimedStorage-GlacierByteHrs', 'GB-Mo', '0.0033000000', 'eu-west-1'),
  product('EU-TimedStorage-GDA-ByteHrs', 'GB-Mo', '0.0009000000', 'eu-west-1'),
  product('EU-Requests-Tier1', 'Requests', '0.0000048000', 'eu-west-1'),
  product('EU-Requests-Tier2', 'Requests', '0.0000003800', 'eu-west-1'),
  product('EU-DataTransfer-Out-Bytes', 'GB', '0.0900000000', 'eu-west-1'),
];

describe('pricesFromPriceList', () => {
  test('storage and request prices from the list, the first tier, the rest from the table', () => {
    const p = pricesFromPriceList(EU_WEST_1_LIST, 'eu-west-1', '2026-12-06', PRICE_TABLE['eu-west-1']);
    assert.deepEqual(p.storagePerGbMonth, { STANDARD: 0.021, STANDARD_IA: 0.012, INTELLIGENT_TIERING: 0.023, GLACIER_IR: 0.004, GLACIER: 0.0033, DEEP_ARCHIVE: 0.0009 });
    assert.deepEqual(p.requestsPer1000, { tier1: 0.0048, tier2: 0.00038 });
    assert.equal(p.asOf, '2026-12-06');
    assert.match(p.source, /^AWS Price List API \(pricing:GetProducts\): STANDARD, STANDARD_IA, GLACIER, DEEP_ARCHIVE, requests tier1, requests tier2; the rest from https:\/\/aws\.amazon\.com\/s3\/pricing\/ of /);
  });

  test('us-east-1 usage types have no region prefix', () => {
    const p = pricesFromPriceList([product('TimedStorage-ByteHrs', 'GB-Mo', '0.0220000000', 'us-east-1')], 'us-east-1', '2026-12-06', us);
    assert.equal(p.storagePerGbMonth.STANDARD, 0.022);
  });

  test('an answer without S3 Standard is no answer', () => {
    assert.throws(() => pricesFromPriceList(EU_WEST_1_LIST.slice(1), 'eu-west-1', '2026-12-06', us), PriceListError);
    assert.throws(() => pricesFromPriceList(EU_WEST_1_LIST, 'eu-central-1', '2026-12-06', us), /no S3 Standard storage price for eu-central-1/);
    assert.throws(() => pricesFromPriceList(['{'], 'eu-west-1', '2026-12-06', us), /not JSON/);
  });
});

/**
 * The Price List service at the HTTP level (moto 5 does not serve `pricing`): the AWS JSON 1.1
 * protocol the real SDK client speaks, GetProducts paginated by NextToken. Every call is recorded.
 */
class PriceListStub {
  readonly calls: { target: string | undefined; body: Record<string, unknown>; headers: IncomingHttpHeaders }[] = [];
  failWith: { status: number; type: string } | undefined;
  private server: Server | undefined;
  endpoint = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        const body = JSON.parse(text || '{}') as Record<string, unknown>;
        this.calls.push({ target: req.headers['x-amz-target'] as string | undefined, body, headers: req.headers });
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        if (this.failWith) {
          res.statusCode = this.failWith.status;
          res.end(JSON.stringify({ __type: this.failWith.type, message: 'stubbed failure' }));
          return;
        }
        if (req.headers['x-amz-target'] !== 'AWSPriceListService.GetProducts') {
          res.statusCode = 400;
          res.end(JSON.stringify({ __type: 'UnknownOperationException' }));
          return;
        }
        const filters = (body.Filters as { Field: string; Value: string }[] | undefined) ?? [];
        const region = filters.find((f) => f.Field === 'regionCode')?.Value;
        const all = body.ServiceCode === 'AmazonS3' && region === 'eu-west-1' ? EU_WEST_1_LIST : [];
        const page = body.NextToken === 'page-2' ? all.slice(4) : all.slice(0, 4);
        res.end(JSON.stringify({ FormatVersion: 'aws_v1', PriceList: page, ...(body.NextToken === 'page-2' || all.length <= 4 ? {} : { NextToken: 'page-2' }) }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

/** The bucket's state as a map. */
class MemoryBucket implements BucketStore {
  readonly objects = new Map<string, string>();
  async list(prefix: string): Promise<ListedObject[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).map((key) => ({ key, size: 1, lastModified: new Date(0), storageClass: 'STANDARD' }));
  }
  async head(): Promise<ObjectHead | null> {
    throw new Error('not used');
  }
  async getText(key: string): Promise<string | null> {
    return this.objects.get(key) ?? null;
  }
  async fetchRange(_request: RangeRequest): Promise<RangeResponse> {
    throw new Error('not used');
  }
  async getRange(): Promise<AsyncIterable<Uint8Array>> {
    throw new Error('not used');
  }
  async put(key: string, body: string | Uint8Array): Promise<boolean> {
    this.objects.set(key, String(body));
    return true;
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

const warnings: string[] = [];
const log: Log = { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} };

describe('resolvePrices through the Price List port (HTTP stub of the service)', () => {
  const stub = new PriceListStub();
  let priceList: SdkPriceList;
  before(async () => {
    await stub.start();
    priceList = SdkPriceList.create({ endpoint: stub.endpoint, maxAttempts: 1, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
  });
  after(() => stub.stop());

  test('asks GetProducts for AmazonS3 in the region, all pages, signed for "pricing"; caches the answer with its date', async () => {
    stub.calls.length = 0;
    stub.failWith = undefined;
    const store = new MemoryBucket();
    const r = await resolvePrices({ store, priceList, log }, { region: 'eu-west-1', now: NOW });
    assert.equal(r.origin, 'price-list');
    assert.equal(r.note, 'AWS Price List API, fetched 2026-12-06');
    assert.equal(r.prices?.storagePerGbMonth.STANDARD, 0.021);
    assert.equal(r.prices?.requestsPer1000.tier2, 0.00038);
    assert.deepEqual(stub.calls.map((c) => [c.target, c.body.ServiceCode, c.body.FormatVersion, c.body.NextToken ?? null]), [
      ['AWSPriceListService.GetProducts', 'AmazonS3', 'aws_v1', null],
      ['AWSPriceListService.GetProducts', 'AmazonS3', 'aws_v1', 'page-2'],
    ]);
    assert.deepEqual(stub.calls[0].body.Filters, [{ Type: 'TERM_MATCH', Field: 'regionCode', Value: 'eu-west-1' }]);
    assert.match(String(stub.calls[0].headers.authorization), /Credential=AKIDTEST\/\d{8}\/us-east-1\/pricing\/aws4_request/);
    const cached = priceTableSchema.parse(JSON.parse(store.objects.get(priceCacheKey('eu-west-1'))!));
    assert.equal(cached.asOf, '2026-12-06');
    assert.equal(priceCacheKey('eu-west-1'), 'state/prices/eu-west-1.json');

    // A day later the cache answers, without a call.
    const again = await resolvePrices({ store, priceList, log }, { region: 'eu-west-1', now: new Date(NOW.getTime() + 86_400_000) });
    assert.equal(again.origin, 'price-list-cache');
    assert.equal(again.note, 'AWS Price List API, fetched 2026-12-06 (cached)');
    assert.equal(stub.calls.length, 2);
  });

  test('a cache older than a week is refreshed', async () => {
    stub.calls.length = 0;
    stub.failWith = undefined;
    const store = new MemoryBucket();
    store.objects.set(priceCacheKey('eu-west-1'), JSON.stringify({ ...PRICE_TABLE['eu-west-1'], source: 'AWS Price List API (pricing:GetProducts): STANDARD', asOf: '2026-11-20' }));
    const r = await resolvePrices({ store, priceList, log }, { region: 'eu-west-1', now: NOW });
    assert.equal(r.origin, 'price-list');
    assert.equal(stub.calls.length, 2);
    assert.equal(JSON.parse(store.objects.get(priceCacheKey('eu-west-1'))!).asOf, '2026-12-06');
  });

  test('the service fails: the stale cache with its date, else the committed table, saying why', async () => {
    stub.failWith = { status: 400, type: 'AccessDeniedException' };
    warnings.length = 0;
    const store = new MemoryBucket();
    store.objects.set(priceCacheKey('eu-west-1'), JSON.stringify({ ...PRICE_TABLE['eu-west-1'], source: 'AWS Price List API (pricing:GetProducts): STANDARD', asOf: '2026-10-01' }));
    const stale = await resolvePrices({ store, priceList, log }, { region: 'eu-west-1', now: NOW });
    assert.equal(stale.origin, 'price-list-cache');
    assert.match(stale.note, /^AWS Price List API, fetched 2026-10-01 \(cached; asking again failed: stubbed failure\)$/);
    assert.equal(warnings.length, 1);

    const fresh = await resolvePrices({ store: new MemoryBucket(), priceList, log }, { region: 'eu-west-1', now: NOW });
    assert.equal(fresh.origin, 'table');
    assert.equal(fresh.prices, PRICE_TABLE['eu-west-1']);
    assert.equal(fresh.note, `the price table committed in coldseal (${PRICE_TABLE_SOURCE}, as of ${PRICE_TABLE_AS_OF}); the Price List API failed: stubbed failure`);
  });

  test('an empty answer (a region with no S3 products) falls back to the table', async () => {
    stub.failWith = undefined;
    const r = await resolvePrices({ store: new MemoryBucket(), priceList, log }, { region: 'us-west-2', now: NOW });
    assert.equal(r.origin, 'table');
    assert.match(r.note, /no S3 Standard storage price for us-west-2 \(0 products\)/);
  });

  test('unreachable: the table', async () => {
    const closed = new PriceListStub();
    await closed.start();
    const endpoint = closed.endpoint;
    await closed.stop();
    const unreachable = SdkPriceList.create({ endpoint, maxAttempts: 1, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
    const r = await resolvePrices({ store: new MemoryBucket(), priceList: unreachable, log }, { region: 'eu-central-1', now: NOW });
    assert.equal(r.origin, 'table');
    assert.equal(r.prices?.storagePerGbMonth.STANDARD, 0.0245);
  });

  test('no port, a region the table lacks: no prices, and the note says what to set', async () => {
    const r = await resolvePrices({ store: new MemoryBucket(), log }, { region: 'me-south-1', now: NOW });
    assert.equal(r.origin, 'none');
    assert.equal(r.prices, null);
    assert.match(r.note, /no prices for me-south-1: the Price List API was not asked and the committed table has no such region; set every price in the settings' override/);
  });

  test('the override applies to whichever source priced it', async () => {
    stub.failWith = undefined;
    const r = await resolvePrices({ store: new MemoryBucket(), priceList, log }, { region: 'eu-west-1', now: NOW, override: { storagePerGbMonth: { GLACIER: 0.001 } } });
    assert.equal(r.prices?.storagePerGbMonth.GLACIER, 0.001);
    assert.equal(r.prices?.storagePerGbMonth.STANDARD, 0.021);
    assert.match(r.note, /some prices overridden in the settings$/);
    assert.match(r.prices!.source, /overridden in the settings: storagePerGbMonth\.GLACIER$/);
  });
});
