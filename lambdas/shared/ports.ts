import type { RangeRequest, RangeResponse } from '../../runtime/part-reader';

/**
 * The narrow interfaces the cores depend on. Production adapters (aws.ts) implement them with the
 * SDK; tests use the same adapters against moto, and small fakes where moto cannot answer
 * (Object Lock reads, SSM command status, managed-instance inventory).
 */

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** The subset of Powertools Logger the cores use (Logger satisfies it structurally). */
export interface Log {
  debug(message: string, ...extra: Record<string, unknown>[]): void;
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface ListedObject {
  readonly key: string;
  readonly size: number;
  readonly lastModified: Date;
  readonly storageClass: string;
  /** The listing's ETag: it changes when the key gets other bytes, so a checked object need not be read again while it stays. */
  readonly etag?: string;
}

export interface ObjectHead {
  readonly size: number;
  readonly etag: string;
  readonly versionId: string | undefined;
  readonly storageClass: string;
  readonly lastModified: Date;
  /** Object Lock mode and date: what keeps the object against deletion. */
  readonly lockMode: string | undefined;
  readonly lockUntil: Date | undefined;
  /** Set while a Glacier restore is in progress or its temporary copy exists. */
  readonly restore: string | undefined;
  /**
   * x-amz-replication-status (PENDING | COMPLETED | FAILED | REPLICA), absent when no replication
   * rule applies to the object (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html).
   */
  readonly replicationStatus: string | undefined;
  /** User metadata (x-amz-meta-*, keys in lower case): where a WAL object carries its signed record. */
  readonly metadata?: Record<string, string>;
}

export interface BucketStore {
  list(prefix: string): Promise<ListedObject[]>;
  head(key: string): Promise<ObjectHead | null>;
  getText(key: string): Promise<string | null>;
  /** One ranged read for a PartReader (runtime/part-reader.ts): pinned, with the object's size. */
  fetchRange(request: RangeRequest): Promise<RangeResponse>;
  /** Bytes [start, end) as a stream of chunks; end undefined = to the end of the object. */
  getRange(key: string, start: number, end?: number): Promise<AsyncIterable<Uint8Array>>;
  /** onlyIfAbsent: conditional create (If-None-Match: *); returns false when the key already exists. */
  put(key: string, body: string | Uint8Array, contentType: string, options?: { onlyIfAbsent?: boolean }): Promise<boolean>;
  delete(key: string): Promise<void>;
}

/**
 * Listings that touch only what is new: a WAL archive grows by a segment a minute per source, so
 * the monitor's WAL check must not list all of it every few minutes (S3 bills every LIST request).
 */
export interface KeyListing {
  /** The "folders" right below prefix (Delimiter "/"), e.g. the timelines of a WAL archive, in key order. */
  listPrefixes(prefix: string): Promise<string[]>;
  /** Objects under prefix whose keys sort after startAfter (all of them without it), in key order. */
  listAfter(prefix: string, startAfter?: string): Promise<ListedObject[]>;
}

export interface Notifier {
  publish(subject: string, message: string, attributes: Record<string, string>): Promise<void>;
}

export interface ParameterStore {
  /** null when the parameter does not exist. */
  get(name: string): Promise<string | null>;
}

export interface ManagedInstance {
  readonly instanceId: string;
  readonly computerName: string;
  /** Online | ConnectionLost | Inactive (SSM's PingStatus). */
  readonly pingStatus: string;
  readonly lastPingAt: Date | undefined;
  readonly group: string | undefined;
}

export interface InstanceDirectory {
  /** Managed instances that carry tagKey = group. */
  listGroup(tagKey: string, group: string): Promise<ManagedInstance[]>;
  /** The instance, with its group if it carries tagKey with one of these groups as value. */
  describe(instanceId: string, tagKey: string, groups: readonly string[]): Promise<ManagedInstance | null>;
}

export interface CommandInvocation {
  readonly status: string;
  readonly statusDetails: string;
  readonly responseCode: number | undefined;
  readonly standardError: string;
  readonly standardOutput: string;
  readonly executionStartedAt: Date | undefined;
  readonly executionEndedAt: Date | undefined;
}

export interface CommandHistory {
  invocation(commandId: string, instanceId: string): Promise<CommandInvocation | null>;
  /** The command's parameters as sent (tier, arguments…), null when SSM no longer has it. */
  parameters(commandId: string): Promise<Record<string, string[]> | null>;
}

export interface SourceMetrics {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly ageHours: number | undefined;
  readonly sizeBytes: number | undefined;
  readonly durationSeconds: number | undefined;
  /** 0 OK, 1 WARN, 2 FAIL, per the latest verification report; undefined when not verified yet. */
  readonly verificationStatus: number | undefined;
}

export interface GroupMetrics {
  readonly group: string;
  readonly maxAgeHours: number;
  readonly sourcesOverRpo: number;
  readonly failedVerifications: number;
}

/** The monitor's WAL check, per PITR source and host: the recovery point achieved. */
export interface WalArchiveMetrics {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  /** Seconds since the newest archived WAL file reached S3. */
  readonly ageSeconds: number;
}

export interface MetricsSink {
  source(values: SourceMetrics): void;
  group(values: GroupMetrics): void;
  heartbeat(): void;
  walArchive(values: WalArchiveMetrics): void;
}
