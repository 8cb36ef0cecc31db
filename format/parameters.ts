import { z } from 'zod';
import { assertName, nameSchema, tagKeySchema } from './layout';
import { replicaLocationSchema } from './replica';

/**
 * SSM Parameter Store names, shared by the stack (which writes the public ones), the agent (which
 * reads them at run time) and the Lambdas. The signing key's private half is the only SecureString,
 * and coldseal keys generate --publish writes it, never the stack, so it never enters a template.
 */
export const DEFAULT_PARAMETER_PREFIX = '/coldseal';

/**
 * The document version every SendCommand names (schedules, coldseal trigger, the stack's command
 * line). The stack updates its document with a new version, and SSM runs the default version when
 * none is named, which stays the first one: without this, a redeploy would never reach the hosts.
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html#systemsmanager-SendCommand-request-DocumentVersion
 */
export const AGENT_DOCUMENT_VERSION = '$LATEST';

export interface GroupParameters {
  /** String: the group's agent configuration (JSON, no secrets). */
  readonly config: string;
  /** String: armored public keys that every dump is encrypted to. */
  readonly recipients: string;
  /** SecureString: the group's armored signing private key. */
  readonly signingKey: string;
  /** String: armored signing public key(s); several during a rotation. */
  readonly signingPublicKeys: string;
}

export function groupParameters(group: string, prefix = DEFAULT_PARAMETER_PREFIX): GroupParameters {
  assertName('group', group);
  const base = `${normalizePrefix(prefix)}/groups/${group}`;
  return {
    config: `${base}/config`,
    recipients: `${base}/recipients`,
    signingKey: `${base}/signing-key`,
    signingPublicKeys: `${base}/signing-public-keys`,
  };
}

/**
 * Where the stack keeps the parts of a group's configuration (format/config-parameter.ts):
 * `<config>-parts/<digest>/<n>`. Hosts may read everything under it (their group's only).
 */
export function configPartsPath(configParameter: string): string {
  return `${configParameter}-parts`;
}

export function normalizePrefix(prefix: string): string {
  if (!/^\/[A-Za-z0-9_.\-/]*$/.test(prefix)) throw new Error(`parameter prefix "${prefix}" must start with "/" and hold only letters, digits, "_", ".", "-" and "/"`);
  return prefix.replace(/\/+$/, '');
}

/**
 * String: what the deployed stack is, for `coldseal trigger` on an operator's laptop (the SSM
 * document's generated name, the tag keys that pick the hosts, the groups), so that nobody
 * copies names out of stack outputs by hand. Written by the stack, read by the CLI.
 */
export function deploymentParameter(prefix = DEFAULT_PARAMETER_PREFIX): string {
  return `${normalizePrefix(prefix)}/deployment`;
}

const tagKey = tagKeySchema;
const groupName = nameSchema;

export const deploymentInfoSchema = z.object({
  formatVersion: z.literal(1),
  /** The SSM Command document that runs the agent. */
  documentName: z.string().min(1),
  region: z.string().min(1),
  /** Tag key whose value is a host's group. */
  hostTagKey: tagKey,
  /** The restore drill: its group and the tag key (value: the group) that marks the drill host. */
  drill: z.object({ group: groupName, hostTagKey: tagKey }).optional(),
  groups: z.array(groupName).min(1),
  /** CloudWatch log group the scheduled runs send their output to; a run by hand does the same. */
  commandLogGroup: z.string().min(1).optional(),
  /** The document's default run time limit, in seconds. */
  executionTimeoutSeconds: z.number().int().positive(),
  /** As the schedules send them, so that a run by hand spreads and tolerates failures the same way. */
  maxConcurrency: z.string().min(1),
  maxErrors: z.string().min(1),
  /** Per group: the most hosts its schedule's delivery timeout is planned for (runSpread); left out: DEFAULT_MAX_HOSTS. */
  maxHosts: z.record(groupName, z.number().int().positive()).optional(),
  /** Per group: the KMS key its signing-key SecureString must be encrypted with (only its hosts may decrypt). */
  signingKeys: z.record(groupName, z.string().min(1)).optional(),
  /** The offsite replica vault, when there is one: `coldseal … --replica` reads from it. */
  replica: replicaLocationSchema.optional(),
});

export type DeploymentInfo = z.infer<typeof deploymentInfoSchema>;
