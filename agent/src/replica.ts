import type { S3Client } from '@aws-sdk/client-s3';
import { replicaLocationSchema, type ReplicaLocation } from '../../format/replica';
import { createClients, type AgentClients } from './aws';
import type { AgentConfig } from '../../format/agent-config';
import { ColdsealError, EXIT } from './errors';
import { loadDeployment } from './trigger/plan';
import { SdkTriggerSsm } from './trigger/ssm';

/**
 * Where the read side of the CLI (list, status, verify, restore, drill) reads backups from: the
 * configured data bucket, or with --replica the offsite replica vault. From the replica, no call
 * goes to the primary bucket: its location comes from --replica-bucket/--replica-region (no AWS
 * call at all, for when the primary region or account is gone) or else from the deployment
 * parameter the stack writes (format/parameters.ts), read in the configuration's region.
 * Replicas are re-encrypted with the replica's KMS key, which S3 applies on GetObject: nothing
 * here names a key. Credentials are the SDK's default chain (AWS_PROFILE for the replica account).
 */
export interface ReplicaOptions {
  readonly replica?: boolean;
  readonly replicaBucket?: string;
  readonly replicaRegion?: string;
}

export interface ReadLocation {
  readonly bucket: string;
  readonly s3: S3Client;
  /** Set when reading from the replica. */
  readonly replica?: ReplicaLocation;
}

/** Checks the flags before anything is loaded: bad input fails before any AWS call. */
export function validateReplicaOptions(options: ReplicaOptions): ReplicaLocation | undefined {
  const given = [options.replicaBucket !== undefined, options.replicaRegion !== undefined];
  if (!options.replica) {
    if (given.some(Boolean)) throw new ColdsealError(EXIT.USAGE, '--replica-bucket and --replica-region only apply with --replica', 'Add --replica to read from the offsite replica, or drop them');
    return undefined;
  }
  if (!given.some(Boolean)) return undefined;
  if (!given.every(Boolean)) throw new ColdsealError(EXIT.USAGE, `--replica-${given[0] ? 'region' : 'bucket'} is missing: give both --replica-bucket and --replica-region, or neither`, 'Without them the replica is read from the deployment parameter (/coldseal/deployment); the stack output RestoreFromReplica shows both values');
  const parsed = replicaLocationSchema.safeParse({ bucket: options.replicaBucket, region: options.replicaRegion });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ColdsealError(EXIT.USAGE, `--replica-${String(issue.path[0])} "${String(issue.path[0] === 'bucket' ? options.replicaBucket : options.replicaRegion)}" ${issue.message}`, 'Use the values of the stack output RestoreFromReplica');
  }
  return parsed.data;
}

export async function readLocation(options: ReplicaOptions, config: AgentConfig, clients: AgentClients): Promise<ReadLocation> {
  if (!options.replica) return { bucket: config.bucket, s3: clients.s3 };
  let replica = validateReplicaOptions(options);
  if (!replica) {
    let deployment;
    try {
      deployment = await loadDeployment(new SdkTriggerSsm(clients.ssm), config.parameterPrefix, config.region);
    } catch (error) {
      if (!(error instanceof ColdsealError)) throw error;
      throw new ColdsealError(error.exitCode, `--replica: cannot find the replica from the deployment parameter: ${error.message}`, 'When the primary region or account is unreachable, give the replica with --replica-bucket BUCKET --replica-region REGION (the stack output RestoreFromReplica shows them)', { cause: error });
    }
    if (!deployment.replica) throw new ColdsealError(EXIT.CONFIG, `--replica: the deployment (parameter ${config.parameterPrefix}/deployment in ${config.region}) has no offsite replica`, 'Add a replica to the stack context and deploy (README, "Offsite replica"), or give --replica-bucket and --replica-region');
    replica = deployment.replica;
  }
  if (replica.bucket === config.bucket && replica.region === config.region) throw new ColdsealError(EXIT.USAGE, `--replica: s3://${replica.bucket} in ${replica.region} is the configured data bucket itself, not its replica`, 'Give the replica\'s bucket and region');
  // Same endpoint as the configuration (S3-compatible stores, tests); the replica's own region.
  return { bucket: replica.bucket, s3: createClients({ region: replica.region, endpoint: config.endpoint }).s3, replica };
}

/** The clients with S3 reading from `location`: what the read-side functions are handed. */
export function readClients(clients: AgentClients, location: ReadLocation): AgentClients {
  return { ...clients, s3: location.s3 };
}
