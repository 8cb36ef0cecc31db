import { GetProductsCommand, PricingClient, type PricingClientConfig } from '@aws-sdk/client-pricing';
import { PRICE_CACHE_PREFIX } from '../../format/layout';
import { priceTableSchema, tablePrices, withOverride, type PricedClass, type PriceOverride, type PriceTable } from '../../format/prices';
import type { BucketStore, Log } from './ports';

/**
 * S3 prices from the AWS Price List API (pricing:GetProducts), behind a narrow port, cached in the
 * bucket's state with the day they were fetched, with the committed table (format/prices.ts) as
 * the fallback. The Query API answers in us-east-1, eu-central-1 and ap-south-1 only, for every
 * region's prices ("Using the AWS Price List Query API",
 * https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html).
 * Each product comes back as a JSON string holding `product.attributes` (usagetype, regionCode)
 * and `terms.OnDemand.<offer>.priceDimensions.<rate>` (unit, beginRange, pricePerUnit.USD)
 * ("Reading the price list file", https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-an-offer.html).
 *
 * Storage classes are recognised by usagetype, as the S3 billing and usage reports name them
 * ("Understanding your AWS billing and usage reports for Amazon S3",
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/aws-usage-report-understand.html), after
 * the region prefix ("EU-", "USW2-"; none in us-east-1). Transitions, the Intelligent-Tiering
 * monitoring fee and transfer stay the table's: their usage types are not the same across regions.
 */

/** The regions that serve the Price List Query API. */
export const PRICE_LIST_ENDPOINT_REGION = 'us-east-1';
/** A cached answer younger than this is used without asking again (prices change a few times a year). */
export const PRICE_CACHE_DAYS = 7;

/** The port: every S3 product of one region, as the JSON strings GetProducts returns. */
export interface PriceListPort {
  s3Products(regionCode: string): Promise<string[]>;
}

export class SdkPriceList implements PriceListPort {
  constructor(private readonly client: PricingClient) {}

  static create(config: PricingClientConfig = {}): SdkPriceList {
    return new SdkPriceList(new PricingClient({ region: PRICE_LIST_ENDPOINT_REGION, ...config }));
  }

  async s3Products(regionCode: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new GetProductsCommand({ ServiceCode: 'AmazonS3', FormatVersion: 'aws_v1', MaxResults: 100, NextToken: token, Filters: [{ Type: 'TERM_MATCH', Field: 'regionCode', Value: regionCode }] }),
      );
      for (const item of page.PriceList ?? []) out.push(typeof item === 'string' ? item : String(item));
      token = page.NextToken;
    } while (token);
    return out;
  }
}

export class PriceListError extends Error {
  override readonly name = 'PriceListError';
}

const STORAGE_USAGE: Readonly<Record<string, PricedClass>> = {
  'TimedStorage-ByteHrs': 'STANDARD',
  'TimedStorage-SIA-ByteHrs': 'STANDARD_IA',
  'TimedStorage-INT-FA-ByteHrs': 'INTELLIGENT_TIERING',
  'TimedStorage-GIR-ByteHrs': 'GLACIER_IR',
  'TimedStorage-GlacierByteHrs': 'GLACIER',
  'TimedStorage-GDA-ByteHrs': 'DEEP_ARCHIVE',
};
const REQUEST_USAGE: Readonly<Record<string, 'tier1' | 'tier2'>> = { 'Requests-Tier1': 'tier1', 'Requests-Tier2': 'tier2' };

interface Product {
  product?: { attributes?: { usagetype?: string; regionCode?: string } };
  terms?: { OnDemand?: Record<string, { priceDimensions?: Record<string, { unit?: string; beginRange?: string; pricePerUnit?: { USD?: string } }> }> };
}

/** The first tier's USD price of an on-demand product (beginRange "0"), and its unit. */
function firstTierPrice(p: Product): { usd: number; unit: string } | undefined {
  for (const offer of Object.values(p.terms?.OnDemand ?? {})) {
    const dims = Object.values(offer.priceDimensions ?? {});
    const first = dims.find((d) => (d.beginRange ?? '0') === '0') ?? dims[0];
    const usd = Number(first?.pricePerUnit?.USD);
    if (first && Number.isFinite(usd)) return { usd, unit: first.unit ?? '' };
  }
  return undefined;
}

/**
 * Reads the storage and request prices of a region out of GetProducts' answer; what the answer
 * lacks (and the prices it does not carry) comes from `base`. Throws PriceListError when the
 * answer has no S3 Standard storage price: then it is not an answer about S3 in that region.
 */
export function pricesFromPriceList(items: readonly string[], regionCode: string, fetchedOn: string, base: PriceTable): PriceTable {
  const storage: Partial<Record<PricedClass, number>> = {};
  const requests: Partial<Record<'tier1' | 'tier2', number>> = {};
  for (const text of items) {
    let p: Product;
    try {
      p = JSON.parse(text) as Product;
    } catch {
      throw new PriceListError('the Price List answered with a product that is not JSON');
    }
    const attributes = p.product?.attributes;
    if (!attributes?.usagetype || (attributes.regionCode && attributes.regionCode !== regionCode)) continue;
    const usage = attributes.usagetype.replace(/^[A-Z]{2,4}\d?-(?=[A-Z])/, '');
    const priced = firstTierPrice(p);
    if (!priced) continue;
    const cls = STORAGE_USAGE[usage];
    if (cls && /^GB-Mo/i.test(priced.unit)) storage[cls] = priced.usd;
    const tier = REQUEST_USAGE[usage];
    if (tier && /request/i.test(priced.unit)) requests[tier] = priced.usd * 1000;
  }
  if (storage.STANDARD === undefined) throw new PriceListError(`the Price List has no S3 Standard storage price for ${regionCode} (${items.length} products)`);
  const taken = [...Object.keys(storage), ...Object.keys(requests).map((t) => `requests ${t}`)];
  return priceTableSchema.parse({
    ...base,
    region: regionCode,
    source: `AWS Price List API (pricing:GetProducts): ${taken.join(', ')}${base.source ? `; the rest from ${base.source} of ${base.asOf}` : '; transitions, monitoring and transfer not priced (a region the committed table lacks)'}`,
    asOf: fetchedOn,
    storagePerGbMonth: { ...base.storagePerGbMonth, ...storage },
    requestsPer1000: { ...base.requestsPer1000, ...requests },
  });
}

export const priceCacheKey = (region: string) => `${PRICE_CACHE_PREFIX}${region}.json`;

export interface ResolvedPrices {
  /** Null when nothing prices the region: the report then shows bytes without cost. */
  readonly prices: PriceTable | null;
  readonly origin: 'price-list' | 'price-list-cache' | 'table' | 'none';
  /** Where the prices come from and from when, in one sentence, for the report. */
  readonly note: string;
}

/**
 * The prices a report uses for one region: a fresh cached Price List answer; else a new one
 * (cached); else, when the API fails, a stale cached answer, then the committed table; the
 * settings' override on top of whichever.
 */
export async function resolvePrices(
  deps: { readonly store: BucketStore; readonly priceList?: PriceListPort; readonly log: Log },
  input: { readonly region: string; readonly now: Date; readonly override?: PriceOverride; readonly maxAgeDays?: number },
): Promise<ResolvedPrices> {
  const { store, log } = deps;
  const { region, now } = input;
  const key = priceCacheKey(region);
  const table = tablePrices(region);
  const placeholder = table ?? emptyTable(region);
  let cached: PriceTable | undefined;
  const text = await store.getText(key);
  if (text) {
    const parsed = priceTableSchema.safeParse(JSON.parse(text));
    if (parsed.success && parsed.data.region === region) cached = parsed.data;
    else log.warn('cached prices are unreadable; asking again', { key });
  }
  const done = (prices: PriceTable | null, origin: ResolvedPrices['origin'], note: string): ResolvedPrices => ({ prices: prices && withOverride(prices, input.override), origin, note: input.override && prices ? `${note}; some prices overridden in the settings` : note });
  const ageDays = cached ? (now.getTime() - Date.parse(`${cached.asOf}T00:00:00Z`)) / 86_400_000 : Number.POSITIVE_INFINITY;
  if (cached && ageDays < (input.maxAgeDays ?? PRICE_CACHE_DAYS)) return done(cached, 'price-list-cache', `AWS Price List API, fetched ${cached.asOf} (cached)`);
  let failure = 'not asked';
  if (deps.priceList) {
    try {
      const prices = pricesFromPriceList(await deps.priceList.s3Products(region), region, now.toISOString().slice(0, 10), placeholder);
      await store.put(key, `${JSON.stringify(prices, null, 2)}\n`, 'application/json');
      return done(prices, 'price-list', `AWS Price List API, fetched ${prices.asOf}`);
    } catch (error) {
      failure = (error as Error).message;
      log.warn('the Price List API did not answer; using the cached or committed prices', { region, error: failure });
    }
  }
  if (cached) return done(cached, 'price-list-cache', `AWS Price List API, fetched ${cached.asOf} (cached; asking again failed: ${failure})`);
  if (table) return done(table, 'table', `the price table committed in coldseal (${table.source}, as of ${table.asOf})${deps.priceList ? `; the Price List API failed: ${failure}` : ''}`);
  return done(null, 'none', `no prices for ${region}: the Price List API ${deps.priceList ? `failed (${failure})` : 'was not asked'} and the committed table has no such region; set every price in the settings' override`);
}

/** A table with no figures, only as the base the Price List fills for a region the committed table lacks. */
function emptyTable(region: string): PriceTable {
  const zero = { STANDARD: 0, STANDARD_IA: 0, INTELLIGENT_TIERING: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 };
  return { region, currency: 'USD', source: '', asOf: '1970-01-01', storagePerGbMonth: zero, requestsPer1000: { tier1: 0, tier2: 0 }, transitionsPer1000: {}, intelligentTieringMonitoringPer1000Objects: 0, interRegionTransferPerGb: 0 };
}
