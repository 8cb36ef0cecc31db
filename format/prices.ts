import { z } from 'zod';
import { REGION_PATTERN } from './replica';

/**
 * What storing backups in S3 costs, as the report estimates it: a price table per region, in USD.
 * The verifier asks the AWS Price List API first (lambdas/shared/price-list.ts) and caches the
 * answer in the bucket's state with its date; this committed table is the fallback when the API
 * is not reachable, and any figure can be overridden in the deployment's settings (a negotiated
 * price, a region the table lacks).
 *
 * Source of the table: the Amazon S3 pricing page, https://aws.amazon.com/s3/pricing/ (tabs
 * "Storage & requests", "Requests & data retrievals" for lifecycle transitions, "Data transfer"
 * for the replica's transfer), first tier of each price (the first 50 TB a month of S3 Standard).
 * The figures were first typed in from memory. On 2026-12-06 they were checked against stored
 * copies of public pages (no live web; the stored copy of the AWS page has its price cells
 * unrendered, so none is read from AWS's page itself). None was found wrong; these were confirmed:
 * - us-east-1 S3 Standard $0.023, Standard-IA $0.0125, Glacier Instant Retrieval $0.004,
 *   Intelligent-Tiering Frequent Access $0.023 and its monitoring $0.0025 per 1,000 objects,
 *   tier1 $0.005 and tier2 $0.0004 per 1,000 requests: "Amazon S3 Pricing Data (US East -
 *   N. Virginia)", a public extract of the AWS Price List API retrieved 2025-10-28.
 * - us-east-1 Glacier Flexible $0.0036, Deep Archive $0.00099, transitions into them $0.03 and
 *   $0.05 per 1,000: https://awsnegotiations.com/glacier-vs-glacier-deep-archive.html ("US East,
 *   May 2026 list"); all six us-east-1 storage prices also https://awsnegotiations.com/s3-storage.html.
 * - transfer out of us-east-1 to another region $0.02/GB: repost.aws, "Cost effective methods for
 *   accessing S3 buckets cross-region" (prices verified January 2026); awsnegotiations.com,
 *   "Cross-Region Transfer Minimization" (updated May 2026). Weaker, for the same $0.02/GB out of
 *   us-west-2: redresscompliance.com, "AWS inter-region transfer costs" (undated); out of
 *   eu-west-1: two public lab write-ups on GitHub, October 2025 (both also err elsewhere).
 * - eu-central-1 S3 Standard $0.0245, Standard-IA $0.0135, Glacier Instant Retrieval $0.005:
 *   https://blog.pesky.moe/posts/2025-09-14-s3-class (2025-09-14); tier2 $0.00043 is the lowest
 *   request price on https://www.demo.wlid.nl/s3-storage-classes.html (Frankfurt, 2021-12-02).
 * Not confirmed (no source found; treat as estimates and override them in the settings where they
 * matter): the transitions into Standard-IA, Intelligent-Tiering and Glacier Instant Retrieval in
 * every region; every us-west-2 and eu-west-1 figure but their transfer (assumed equal to us-east-1;
 * two lab write-ups of October 2025 disagree on eu-west-1 S3 Standard, $0.023 and $0.025);
 * eu-central-1 Intelligent-Tiering, Glacier Flexible, Deep Archive, tier1, transitions and transfer;
 * every ap-southeast-2 figure. Doubtful: the Frankfurt page of 2021 puts Glacier Flexible at 16% of
 * Standard (about $0.0039, not $0.0045) and Frankfurt transitions as high as $0.06 per 1,000 (more
 * than any us-east-1 one, so the eu-central-1 transitions copied from us-east-1 are not all right);
 * $0.098/GB is also Sydney's Internet egress "next 40 TB" tier (chengqing.dev, 2020), and no source
 * found states Sydney's inter-region price.
 * PRICE_TABLE_AS_OF is the Price List extract's date; every confirmed figure is the same in the
 * sources dated 2025-09 to 2026-05. It dates the whole table, the unconfirmed figures with it.
 * Prices change rarely but do change: the report names which source priced it and from when.
 *
 * How S3 bills the bytes (same page, and "Amazon S3 storage classes",
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-class-intro.html):
 * - a GB-month is 2^30 bytes stored for a month;
 * - S3 Standard-IA and Glacier Instant Retrieval bill an object smaller than 128 KiB as 128 KiB;
 * - each object in Glacier Flexible Retrieval or Deep Archive adds 32 KiB billed at that class
 *   (its index) and 8 KiB at S3 Standard (its name and metadata);
 * - Intelligent-Tiering adds a monitoring fee per object of at least 128 KiB; the listing does not
 *   say which access tier an object is in, so it is priced at the Frequent Access tier (the most).
 */

export const PRICED_CLASSES = ['STANDARD', 'STANDARD_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'] as const;
export type PricedClass = (typeof PRICED_CLASSES)[number];

export const GB = 2 ** 30;
export const SMALL_OBJECT_MINIMUM_BYTES = 128 * 1024;
export const ARCHIVE_INDEX_BYTES = 32 * 1024;
export const ARCHIVE_STANDARD_OVERHEAD_BYTES = 8 * 1024;

const price = z.number().nonnegative();

export const priceTableSchema = z
  .object({
    region: z.string().regex(REGION_PATTERN, 'must be an AWS region, e.g. eu-west-1'),
    currency: z.literal('USD'),
    /** Where the prices come from: a page's address, or the Price List API. */
    source: z.string().min(1),
    /** The day the prices were read from the source. */
    asOf: z.iso.date(),
    storagePerGbMonth: z.record(z.enum(PRICED_CLASSES), price),
    /** Per 1,000 requests, at S3 Standard: tier1 PUT, COPY, POST, LIST (an upload part is a PUT); tier2 GET, HEAD and the rest. */
    requestsPer1000: z.object({ tier1: price, tier2: price }).strict(),
    /** Per 1,000 objects a lifecycle rule moves into the class. */
    transitionsPer1000: z.partialRecord(z.enum(PRICED_CLASSES), price),
    intelligentTieringMonitoringPer1000Objects: price,
    /** Per GB copied to another region (what replication to the offsite replica costs on top of the replica's storage). */
    interRegionTransferPerGb: price,
  })
  .strict();
export type PriceTable = z.infer<typeof priceTableSchema>;

export const PRICE_TABLE_SOURCE = 'https://aws.amazon.com/s3/pricing/';
/** The date the sources support for the committed table (see the comment at the top). */
export const PRICE_TABLE_AS_OF = '2025-10-28';

/** The storage-class and request prices most regions share with US East (N. Virginia). */
const usEast = {
  storagePerGbMonth: { STANDARD: 0.023, STANDARD_IA: 0.0125, INTELLIGENT_TIERING: 0.023, GLACIER_IR: 0.004, GLACIER: 0.0036, DEEP_ARCHIVE: 0.00099 },
  requestsPer1000: { tier1: 0.005, tier2: 0.0004 },
  transitionsPer1000: { STANDARD_IA: 0.01, INTELLIGENT_TIERING: 0.01, GLACIER_IR: 0.02, GLACIER: 0.03, DEEP_ARCHIVE: 0.05 },
  intelligentTieringMonitoringPer1000Objects: 0.0025,
  interRegionTransferPerGb: 0.02,
};

function table(region: string, prices: Omit<PriceTable, 'region' | 'currency' | 'source' | 'asOf'>): PriceTable {
  return priceTableSchema.parse({ region, currency: 'USD', source: PRICE_TABLE_SOURCE, asOf: PRICE_TABLE_AS_OF, ...prices });
}

export const PRICE_TABLE: Readonly<Record<string, PriceTable>> = {
  'us-east-1': table('us-east-1', usEast),
  'us-west-2': table('us-west-2', usEast),
  'eu-west-1': table('eu-west-1', usEast),
  'eu-central-1': table('eu-central-1', {
    ...usEast,
    storagePerGbMonth: { STANDARD: 0.0245, STANDARD_IA: 0.0135, INTELLIGENT_TIERING: 0.0245, GLACIER_IR: 0.005, GLACIER: 0.0045, DEEP_ARCHIVE: 0.0018 },
    requestsPer1000: { tier1: 0.0054, tier2: 0.00043 },
  }),
  'ap-southeast-2': table('ap-southeast-2', {
    ...usEast,
    storagePerGbMonth: { STANDARD: 0.025, STANDARD_IA: 0.0138, INTELLIGENT_TIERING: 0.025, GLACIER_IR: 0.005, GLACIER: 0.0045, DEEP_ARCHIVE: 0.002 },
    requestsPer1000: { tier1: 0.0055, tier2: 0.00044 },
    interRegionTransferPerGb: 0.098,
  }),
};

/** What a deployment may override: any price, for the region it runs in. */
export const priceOverrideSchema = z
  .object({
    storagePerGbMonth: z.partialRecord(z.enum(PRICED_CLASSES), price).optional(),
    requestsPer1000: z.object({ tier1: price, tier2: price }).partial().strict().optional(),
    transitionsPer1000: z.partialRecord(z.enum(PRICED_CLASSES), price).optional(),
    intelligentTieringMonitoringPer1000Objects: price.optional(),
    interRegionTransferPerGb: price.optional(),
  })
  .strict();
export type PriceOverride = z.infer<typeof priceOverrideSchema>;

/** The committed table's prices for a region; undefined for a region it does not have. */
export function tablePrices(region: string): PriceTable | undefined {
  return PRICE_TABLE[region];
}

/** The override's names, "storagePerGbMonth.GLACIER" and so on, for the report to say what was overridden. */
function overriddenNames(override: PriceOverride): string[] {
  return Object.entries(override).flatMap(([k, v]) => (v !== null && typeof v === 'object' ? Object.keys(v).map((inner) => `${k}.${inner}`) : v === undefined ? [] : [k]));
}

/** The prices with the override applied; the source says which figures were overridden. */
export function withOverride(prices: PriceTable, override: PriceOverride | undefined): PriceTable {
  if (!override) return prices;
  const names = overriddenNames(override);
  if (names.length === 0) return prices;
  return priceTableSchema.parse({
    ...prices,
    ...override,
    storagePerGbMonth: { ...prices.storagePerGbMonth, ...override.storagePerGbMonth },
    requestsPer1000: { ...prices.requestsPer1000, ...override.requestsPer1000 },
    transitionsPer1000: { ...prices.transitionsPer1000, ...override.transitionsPer1000 },
    source: `${prices.source}; overridden in the settings: ${names.join(', ')}`,
  });
}

/** A listing's StorageClass as priced: anything S3 may report that the table does not price is undefined (the report lists it as unpriced). */
export function pricedClass(storageClass: string): PricedClass | undefined {
  return (PRICED_CLASSES as readonly string[]).includes(storageClass) ? (storageClass as PricedClass) : undefined;
}
