import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, GetParameterCommand, ListCommandsCommand, SSMClient, type InstanceInformation } from '@aws-sdk/client-ssm';
import type { RangeRequest, RangeResponse } from '../../runtime/part-reader';
import { s3PartFetcher } from '../../runtime/s3-part-fetcher';
import { isFailedStatus } from '../../format/command-status';
import { RUN_DOCUMENT_STEPS } from '../../format/run-document';
import type { BucketStore, CommandHistory, CommandInvocation, InstanceDirectory, KeyListing, ListedObject, ManagedInstance, Notifier, ObjectHead, ParameterStore } from './ports';

/** SDK adapters for the narrow interfaces. No logic beyond mapping "not found" to null. */

type ClientConfig = S3ClientConfig;

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(error: unknown): boolean {
  const name = (error as Error).name;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(error) === 404;
}

export class S3BucketStore implements BucketStore, KeyListing {
  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
  ) {}

  static create(bucket: string, config: ClientConfig = {}): S3BucketStore {
    return new S3BucketStore(new S3Client(config), bucket);
  }

  async list(prefix: string): Promise<ListedObject[]> {
    return this.listAfter(prefix);
  }

  async listAfter(prefix: string, startAfter?: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    do {
      // StartAfter applies to the first page only; the continuation token carries it on.
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, StartAfter: token ? undefined : startAfter }));
      for (const o of page.Contents ?? []) {
        out.push({ key: o.Key!, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0), storageClass: o.StorageClass ?? 'STANDARD', etag: o.ETag });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async listPrefixes(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) out.push(p.Prefix);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        size: h.ContentLength ?? 0,
        etag: h.ETag ?? '',
        versionId: h.VersionId,
        storageClass: h.StorageClass ?? 'STANDARD',
        lastModified: h.LastModified ?? new Date(0),
        lockMode: h.ObjectLockMode,
        lockUntil: h.ObjectLockRetainUntilDate,
        restore: h.Restore,
        replicationStatus: h.ReplicationStatus,
        metadata: h.Metadata,
      };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async getText(key: string): Promise<string | null> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await r.Body!.transformToString('utf8');
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  fetchRange(request: RangeRequest): Promise<RangeResponse> {
    return s3PartFetcher(this.client, this.bucket)(request);
  }

  async getRange(key: string, start: number, end?: number): Promise<AsyncIterable<Uint8Array>> {
    if (end !== undefined && end <= start) return (async function* () {})();
    const range = `bytes=${start}-${end === undefined ? '' : end - 1}`;
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }));
    return r.Body as Readable;
  }

  async put(key: string, body: string | Uint8Array, contentType: string, options: { onlyIfAbsent?: boolean } = {}): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType, IfNoneMatch: options.onlyIfAbsent ? '*' : undefined }),
      );
      return true;
    } catch (error) {
      const status = httpStatus(error);
      if (options.onlyIfAbsent && (status === 412 || status === 409) && error instanceof S3ServiceException) return false;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }
}

export class SnsNotifier implements Notifier {
  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
  ) {}

  async publish(subject: string, message: string, attributes: Record<string, string>): Promise<void> {
    await this.client.send(
      new PublishCommand({
        TopicArn: this.topicArn,
        Subject: subject,
        Message: message,
        MessageAttributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, { DataType: 'String', StringValue: v }])),
      }),
    );
  }
}

export class SsmParameterStore implements ParameterStore {
  private readonly cache = new Map<string, { value: string | null; at: number }>();
  constructor(
    private readonly client: SSMClient,
    /** Keys rarely change; a warm Lambda re-reads them after this long. */
    private readonly ttlMs = 5 * 60_000,
  ) {}

  async get(name: string): Promise<string | null> {
    const hit = this.cache.get(name);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    let value: string | null;
    try {
      value = (await this.client.send(new GetParameterCommand({ Name: name }))).Parameter?.Value ?? null;
    } catch (error) {
      if ((error as Error).name !== 'ParameterNotFound') throw error;
      value = null;
    }
    this.cache.set(name, { value, at: Date.now() });
    return value;
  }
}

function toInstance(info: InstanceInformation, group: string | undefined): ManagedInstance {
  return {
    instanceId: info.InstanceId ?? '',
    computerName: info.ComputerName ?? info.Name ?? info.InstanceId ?? '',
    pingStatus: info.PingStatus ?? 'Unknown',
    lastPingAt: info.LastPingDateTime,
    group,
  };
}

export class SsmInstanceDirectory implements InstanceDirectory {
  constructor(private readonly client: SSMClient) {}

  private async describeAll(filters: { Key: string; Values: string[] }[]): Promise<InstanceInformation[]> {
    const out: InstanceInformation[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new DescribeInstanceInformationCommand({ Filters: filters, NextToken: token, MaxResults: 50 }));
      out.push(...(page.InstanceInformationList ?? []));
      token = page.NextToken;
    } while (token);
    return out;
  }

  async listGroup(tagKey: string, group: string): Promise<ManagedInstance[]> {
    return (await this.describeAll([{ Key: `tag:${tagKey}`, Values: [group] }])).map((i) => toInstance(i, group));
  }

  async describe(instanceId: string, tagKey: string, groups: readonly string[]): Promise<ManagedInstance | null> {
    // DescribeInstanceInformation returns no tags; asking per group with a tag filter finds the
    // group without an EC2 (or resource groups) permission, and works for hybrid nodes too.
    for (const group of groups) {
      const found = await this.describeAll([
        { Key: 'InstanceIds', Values: [instanceId] },
        { Key: `tag:${tagKey}`, Values: [group] },
      ]);
      if (found[0]) return toInstance(found[0], group);
    }
    const any = await this.describeAll([{ Key: 'InstanceIds', Values: [instanceId] }]);
    return any[0] ? toInstance(any[0], undefined) : null;
  }
}

export class SsmCommandHistory implements CommandHistory {
  /** @param steps the document's step names, in order (RUN_DOCUMENT_STEPS for the agent's document). */
  constructor(
    private readonly client: SSMClient,
    private readonly steps: readonly string[] = RUN_DOCUMENT_STEPS,
  ) {}

  /**
   * The run on one instance, as the step that decided it: SSM answers GetCommandInvocation per
   * step, and refuses a request without the step's name when the document has more than one. A
   * failed download ends the command there (onFailure exit) and the script never runs, so the
   * first step that failed, in document order, is what went wrong; with none failed, the last
   * step (the script) is the run. A step SSM holds no invocation of is passed over.
   * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
   */
  async invocation(commandId: string, instanceId: string): Promise<CommandInvocation | null> {
    let last: CommandInvocation | null = null;
    for (const step of this.steps) {
      const found = await this.step(commandId, instanceId, step);
      if (!found) continue;
      if (isFailedStatus(found.status)) return found;
      last = found;
    }
    return last;
  }

  private async step(commandId: string, instanceId: string, pluginName: string): Promise<CommandInvocation | null> {
    try {
      const r = await this.client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId, PluginName: pluginName }));
      return {
        status: r.Status ?? 'Unknown',
        statusDetails: r.StatusDetails ?? '',
        responseCode: r.ResponseCode,
        standardError: r.StandardErrorContent ?? '',
        standardOutput: r.StandardOutputContent ?? '',
        executionStartedAt: r.ExecutionStartDateTime ? new Date(r.ExecutionStartDateTime) : undefined,
        executionEndedAt: r.ExecutionEndDateTime ? new Date(r.ExecutionEndDateTime) : undefined,
      };
    } catch (error) {
      // InvalidPluginName: a command of another version of the document, without this step.
      if (['InvocationDoesNotExist', 'InvalidCommandId', 'InvalidPluginName'].includes((error as Error).name)) return null;
      throw error;
    }
  }

  async parameters(commandId: string): Promise<Record<string, string[]> | null> {
    const r = await this.client.send(new ListCommandsCommand({ CommandId: commandId }));
    return r.Commands?.[0]?.Parameters ?? null;
  }
}

/** What tests (moto) and the handlers pass to build clients: the common subset of SDK client configs. */
export interface ClientOptions {
  endpoint?: string;
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  forcePathStyle?: boolean;
}

export function s3Config(o: ClientOptions = {}): S3ClientConfig {
  return { ...o };
}

export function plainConfig(o: ClientOptions = {}): Omit<ClientOptions, 'forcePathStyle'> {
  const { forcePathStyle: _ignored, ...rest } = o;
  return rest;
}
