import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DRILLS_PREFIX, parseKey } from '../../../format/layout';
import { drillReceiptSchema, type DrillReceipt } from '../../../format/manifest';
import { listAll } from './listing';

/** Reads a drill receipt without checking its signature (display only). */
function peekDrillReceipt(text: string): DrillReceipt {
  const envelope = JSON.parse(text) as { kind?: string; payload?: string };
  if (envelope.kind !== 'drill-receipt' || typeof envelope.payload !== 'string') throw new Error('not a drill receipt');
  return drillReceiptSchema.parse(JSON.parse(envelope.payload));
}

export interface DrillState {
  readonly ok: boolean;
  readonly at: string;
  readonly drillHost: string;
}

/**
 * Drill results by manifest key, from the group's drill receipts (the newest `limit` of them).
 * Read without checking signatures: this is for display; `coldseal verify` is the trust decision.
 */
export async function drillStates(s3: S3Client, bucket: string, group: string, limit = 60): Promise<Map<string, DrillState>> {
  const receipts = (await listAll(s3, bucket, `${DRILLS_PREFIX}${group}/`))
    .map((o) => ({ o, parsed: parseKey(o.key) }))
    .filter((x) => x.parsed?.kind === 'drill-receipt')
    .sort((a, b) => (b.parsed as { stamp: string }).stamp.localeCompare((a.parsed as { stamp: string }).stamp))
    .slice(0, limit);
  const states = new Map<string, DrillState>();
  for (const { o } of receipts) {
    try {
      const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.key }));
      const receipt = peekDrillReceipt(await body.Body!.transformToString());
      for (const result of receipt.results) {
        // Newest receipt first: keep the first state seen for each backup.
        if (!states.has(result.manifestKey)) states.set(result.manifestKey, { ok: result.ok, at: receipt.finishedAt, drillHost: receipt.host });
      }
    } catch {
      // An unreadable receipt says nothing about backups; verify reports it.
    }
  }
  return states;
}
