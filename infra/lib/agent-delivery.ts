import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { agentConfigSchema, type AgentConfigInput, type CalendarConfig } from '../../format/agent-config';
import { AGENT_PLATFORMS, compressedExecutableName, type AgentArch, type AgentExecutable } from '../../format/agent-executables';
import { ADVANCED_PARAMETER_BYTES, MAX_CONFIG_PARTS, MAX_SOURCES_BYTES, SOURCES_REFERENCE_KEY, splitSources, STANDARD_PARAMETER_BYTES } from '../../format/config-parameter';
import { TIERS } from '../../format/layout';
import { DEFAULT_PARAMETER_PREFIX, groupParameters, normalizePrefix, type GroupParameters } from '../../format/parameters';
import { DEFAULT_EXECUTION_TIMEOUT_SECONDS, documentParameters, downloadStepName, MAX_EXECUTION_TIMEOUT_SECONDS, RUN_STEP_NAME } from '../../format/run-document';
import { agentDownloadPath, agentScriptLines, checkedScriptExecutables } from './agent-script';
import { LONGEST, regionLongest, resolvedJsonBytesAtMost } from './parameter-size';
import { armoredPublicKeyProblem, checkNameProp, type BackupGroupSettings, type RetentionSettings } from './settings';

/** A group as the agent gets it: its settings (coldseal.ts), its time zone settled. */
export interface AgentGroup extends Pick<BackupGroupSettings, 'name' | 'sources' | 'signingPublicKeys'> {
  /** IANA time zone of the group's calendar (which day is a Sunday, a 1st of the month). */
  readonly timeZone: string;
}

export interface AgentDeliveryProps {
  readonly groups: readonly AgentGroup[];
  /** Armored public keys every dump is encrypted to. */
  readonly recipients: string;
  readonly bucketName: string;
  readonly kmsKeyArn: string;
  readonly alertTopicArn: string;
  /** Object Lock each tier's objects get. */
  readonly retention: RetentionSettings;
  /**
   * Which day each tier takes (the time zone is each group's).
   * @default the agent's: 1 January yearly, the 1st monthly, Sunday weekly
   */
  readonly calendar?: Omit<Partial<CalendarConfig>, 'timeZone'>;
  /** @default '/coldseal' */
  readonly parameterPrefix?: string;
  /**
   * The self-contained agent, one executable per host architecture, each shipped as its gzip copy
   * (`npm run build:agent`, or scripts/build-agent.ts buildAgentExecutablesSync(), writes them to dist/agent).
   */
  readonly agentExecutables: readonly AgentExecutable[];
  /**
   * Default time a run may take before SSM stops it.
   * @default Duration.hours(4)
   */
  readonly executionTimeout?: Duration;
}

/** One architecture's executable as the stack ships it. */
export interface ShippedExecutable {
  readonly arch: AgentArch;
  /** The gzip-compressed executable, as an S3 asset (the document's download step fetches it). */
  readonly asset: s3assets.Asset;
  /** SHA-256 of the executable the host runs. */
  readonly sha256: string;
  /** SHA-256 of the asset (the .gz), checked by the document before it decompresses. */
  readonly compressedSha256: string;
  /** Where the document's download step writes it on a host. */
  readonly downloadPath: string;
}

/**
 * Gets the agent onto hosts and tells it what to do: one self-contained executable per host
 * architecture as an S3 asset, the SSM Command document that fetches them (the SSM Agent's own
 * aws:downloadContent, with the instance's role), checks the one for this host and runs it, and
 * each group's configuration and public keys as SSM parameters.
 */
export class AgentDelivery extends Construct {
  /** Per architecture, in AGENT_PLATFORMS order: the asset and its SHA-256s (HostAccess grants reading exactly these objects). */
  readonly executables: readonly ShippedExecutable[];
  readonly document: ssm.CfnDocument;
  readonly parameterPrefix: string;
  /** The document's default run time limit (its executionTimeout parameter's default). */
  readonly executionTimeoutSeconds: number;
  /** The per-group parameters the stack writes (the signing private key is the user's, never here). */
  readonly groupParameters: ReadonlyMap<string, GroupParameterResources>;

  constructor(scope: Construct, id: string, props: AgentDeliveryProps) {
    super(scope, id);
    if (props.groups.length === 0) throw new Error('AgentDelivery props.groups: at least one group is needed');
    const recipientsProblem = armoredPublicKeyProblem(props.recipients);
    if (recipientsProblem) throw new Error(`AgentDelivery props.recipients ${recipientsProblem}`);
    const prefix = normalizePrefix(props.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX);
    this.parameterPrefix = prefix;
    const executionTimeout = props.executionTimeout?.toSeconds() ?? DEFAULT_EXECUTION_TIMEOUT_SECONDS;
    if (executionTimeout < 60 || executionTimeout > MAX_EXECUTION_TIMEOUT_SECONDS) throw new Error(`AgentDelivery props.executionTimeout must be between 1 minute and 48 hours, got ${executionTimeout} s`);
    this.executionTimeoutSeconds = executionTimeout;

    this.executables = checkedExecutables(props.agentExecutables).map((e) => ({
      arch: e.arch,
      asset: new s3assets.Asset(this, `Executable-${e.arch}`, { path: e.compressedPath }),
      sha256: e.sha256,
      compressedSha256: e.compressedSha256,
      downloadPath: agentDownloadPath(e.arch),
    }));

    const region = Stack.of(this).region;
    this.document = new ssm.CfnDocument(this, 'RunAgent', {
      documentType: 'Command',
      documentFormat: 'JSON',
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '2.2',
        description: 'coldseal: fetch the self-contained coldseal agent for this host (checked by SHA-256, cached per version) and run a backup (or a restore drill) for a host group.',
        parameters: documentParameters(executionTimeout),
        mainSteps: [
          // No step can be skipped on a host-side condition (preconditions test platformType
          // only), so every run downloads both architectures; the shell step uses its own and
          // decompresses it only when its cache misses.
          // https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#aws-downloadContent
          ...this.executables.map((e) => ({
            action: 'aws:downloadContent',
            name: downloadStepName(e.arch),
            precondition: { StringEquals: ['platformType', 'Linux'] },
            inputs: {
              sourceType: 'S3',
              // The SSM Agent parses this URL (s3.<region>.<suffix>/<bucket>/<key>, path style),
              // asks S3 for the bucket's region, then lists the key as a folder (ListObjects with
              // Prefix "<key>/", which needs s3:ListBucket: host-access.ts) and, finding nothing
              // under it, GETs the object (aws/amazon-ssm-agent
              // agent/plugins/downloadcontent/s3resource/s3resource.go, agent/fileutil/artifact/artifact.go).
              sourceInfo: JSON.stringify({ path: e.asset.httpUrl }),
              // Absolute and not ending in "/": the file's own full path, whatever the key is
              // named (s3resource.go; downloadcontent.go takes an absolute path as it is).
              destinationPath: e.downloadPath,
              // A failed download ends the command there: the shell step would only report it less
              // clearly. A shared input of every step, SSM Agent 3.0.502 or later:
              // https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#shared-inputs
              onFailure: 'exit',
            },
          })),
          {
            action: 'aws:runShellScript',
            name: RUN_STEP_NAME,
            precondition: { StringEquals: ['platformType', 'Linux'] },
            inputs: {
              timeoutSeconds: '{{ executionTimeout }}',
              runCommand: agentScriptLines({ executables: this.executables, region, parameterPrefix: prefix }),
            },
          },
        ],
      },
    });

    const parameters = new Map<string, GroupParameterResources>();
    for (const [index, group] of props.groups.entries()) {
      checkNameProp(`AgentDelivery props.groups[${index}].name`, 'group', group.name);
      if (parameters.has(group.name)) throw new Error(`AgentDelivery props.groups[${index}].name: "${group.name}" is used twice`);
      const signingProblem = armoredPublicKeyProblem(group.signingPublicKeys);
      if (signingProblem) throw new Error(`AgentDelivery props.groups[${index}].signingPublicKeys ${signingProblem}`);
      const names = groupParameters(group.name, prefix);
      const config = groupConfig(group, names, { ...props, parameterPrefix: prefix, region });
      const what = `AgentDelivery props.groups[${index}] (group "${group.name}")`;
      checkConfig(config, what);
      const scope = new Construct(this, `Group-${group.name}`);
      const { head, parts } = configParameters(scope, names.config, config, what, [
        [props.bucketName, LONGEST.bucketName],
        [props.kmsKeyArn, LONGEST.kmsKeyArn],
        [props.alertTopicArn, LONGEST.topicArn],
        ...regionLongest(Stack.of(this)),
      ]);
      parameters.set(group.name, {
        names,
        config: head,
        configParts: parts,
        recipients: keysParameter(scope, 'Recipients', names.recipients, props.recipients, 'coldseal: armored public keys every dump is encrypted to'),
        signingPublicKeys: keysParameter(scope, 'SigningPublicKeys', names.signingPublicKeys, group.signingPublicKeys, `coldseal: armored signing public keys of group ${group.name}`),
      });
    }
    this.groupParameters = parameters;
  }
}

export interface GroupParameterResources {
  readonly names: GroupParameters;
  /** The configuration's head: everything but the sources, and the parts that hold them (format/config-parameter.ts). */
  readonly config: ssm.StringParameter;
  readonly configParts: readonly ssm.StringParameter[];
  readonly recipients: ssm.StringParameter;
  readonly signingPublicKeys: ssm.StringParameter;
}

/**
 * The group's configuration as a head and its parts (format/config-parameter.ts says why and how),
 * each sized on what CloudFormation will write: the parts exactly (sources hold no deploy-time
 * value), the head with each deploy-time value at its longest. All Standard, so free and never
 * downgraded; the sizes are checked here so that a deploy cannot fail on PutParameter's limit.
 */
function configParameters(scope: Construct, name: string, config: AgentConfigInput, what: string, longest: [string, number][]): { head: ssm.StringParameter; parts: ssm.StringParameter[] } {
  const { sources, ...rest } = config;
  if (Token.isUnresolved(JSON.stringify(sources))) {
    throw new Error(`${what}.sources: a value known only at deploy time (a token) is in the sources; give literal values (the sources are split across parameters by their content, which must be known at synth)`);
  }
  const { parts, reference } = splitSources(sources, name);
  if (parts.length > MAX_CONFIG_PARTS) {
    throw new Error(
      `${what}: its sources take ${Buffer.byteLength(JSON.stringify(sources))} bytes of configuration, over the ${MAX_SOURCES_BYTES} bytes a group's configuration parameters hold (${MAX_CONFIG_PARTS} parameters of ${STANDARD_PARAMETER_BYTES}); split the group into groups of fewer sources, or shorten long lists (one excludeTables pattern such as "schema.table_*" covers many tables)`,
    );
  }
  const partParameters = parts.map(
    (part, index) =>
      new ssm.StringParameter(scope, `ConfigPart${index + 1}`, {
        parameterName: part.name,
        stringValue: part.value,
        description: `coldseal: part ${index + 1} of ${parts.length} of the sources of ${name}`,
        tier: ssm.ParameterTier.STANDARD,
      }),
  );
  const head = { ...rest, [SOURCES_REFERENCE_KEY]: reference };
  const bytes = resolvedJsonBytesAtMost(head, new Map(longest), what);
  if (bytes > STANDARD_PARAMETER_BYTES) {
    throw new Error(`${what}: its configuration parameter ${name} could hold ${bytes} bytes once deployed, over the ${STANDARD_PARAMETER_BYTES} of a Standard parameter; shorten props.parameterPrefix`);
  }
  const headParameter = new ssm.StringParameter(scope, 'Config', {
    parameterName: name,
    stringValue: Stack.of(scope).toJsonString(head),
    description: `coldseal agent configuration (its sources in ${reference.parameters.length} part${reference.parameters.length > 1 ? 's' : ''})`,
    tier: ssm.ParameterTier.STANDARD,
  });
  // The head names the parts: CloudFormation creates new parts before it points the head at them.
  for (const part of partParameters) headParameter.node.addDependency(part);
  return { head: headParameter, parts: partParameters };
}

/**
 * Armored public keys: their size is exact at synth. Intelligent-Tiering makes the parameter
 * Advanced only when the value needs it, and never asks to turn an Advanced parameter back into a
 * Standard one when a rotation shortens the list, which AWS refuses
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html,
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-default-tier.html).
 */
function keysParameter(scope: Construct, id: string, name: string, value: string, description: string): ssm.StringParameter {
  const size = Buffer.byteLength(value);
  if (size > ADVANCED_PARAMETER_BYTES) throw new Error(`SSM parameter ${name} would hold ${size} bytes, over the ${ADVANCED_PARAMETER_BYTES} of any parameter: publish fewer keys`);
  return new ssm.StringParameter(scope, id, { parameterName: name, stringValue: value, description, tier: ssm.ParameterTier.INTELLIGENT_TIERING });
}

/** Exactly what the agent reads (agentConfigSchema), built from the stack's resources. */
export function groupConfig(
  group: AgentGroup,
  names: GroupParameters,
  props: Pick<AgentDeliveryProps, 'bucketName' | 'kmsKeyArn' | 'alertTopicArn' | 'retention' | 'calendar'> & { parameterPrefix: string; region: string },
): AgentConfigInput {
  return {
    group: group.name,
    bucket: props.bucketName,
    region: props.region,
    parameterPrefix: props.parameterPrefix,
    recipients: { parameter: names.recipients },
    signingKey: { parameter: names.signingKey },
    alertTopicArn: props.alertTopicArn,
    upload: { kmsKeyId: props.kmsKeyArn },
    objectLock: Object.fromEntries(TIERS.map((tier) => [tier, { mode: props.retention[tier].lock.mode, days: props.retention[tier].lock.days }])),
    calendar: { ...(props.calendar ?? {}), timeZone: group.timeZone },
    sources: group.sources as AgentConfigInput['sources'],
  };
}

/**
 * Validates with the agent's own schema. Values only known at deploy time (bucket name, ARNs) are
 * replaced by well-formed examples first: the schema checks their shape, CloudFormation fills them.
 */
function checkConfig(config: AgentConfigInput, what: string): void {
  const concrete = JSON.parse(
    JSON.stringify(config, (_key, value: unknown) => {
      if (typeof value !== 'string' || !Token.isUnresolved(value)) return value;
      return value === config.bucket ? 'coldseal-example-bucket' : value === config.alertTopicArn ? 'arn:aws:sns:us-east-1:123456789012:example' : value === config.region ? 'us-east-1' : 'arn:aws:kms:us-east-1:123456789012:key/example';
    }),
  ) as unknown;
  const parsed = agentConfigSchema.safeParse(concrete);
  if (!parsed.success) {
    throw new Error(`${what}: the agent configuration would be invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
}

const sha256Of = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * The executables, one per host architecture, checked against their files: the SHA-256 the
 * document checks on a host must be the file's (a stale dist/agent would otherwise ship an agent
 * no host accepts). Throws naming the prop.
 */
function checkedExecutables(executables: readonly AgentExecutable[]): AgentExecutable[] {
  const what = 'AgentDelivery props.agentExecutables';
  checkedScriptExecutables(executables, what);
  return AGENT_PLATFORMS.map((platform) => {
    const index = executables.findIndex((e) => e.arch === platform.arch);
    const e = executables[index];
    const where = `${what}[${index}] (${e.arch})`;
    let isFile = false;
    try {
      isFile = statSync(e.compressedPath).isFile();
    } catch {
      // isFile stays false
    }
    if (!isFile) throw new Error(`${where}.compressedPath: ${e.compressedPath} does not exist (run \`npm run build:agent\`)`);
    if (!e.compressedPath.endsWith(compressedExecutableName(e.arch))) throw new Error(`${where}.compressedPath: ${e.compressedPath} is not a ${compressedExecutableName(e.arch)}`);
    const compressed = readFileSync(e.compressedPath);
    const actual = sha256Of(compressed);
    if (actual !== e.compressedSha256) throw new Error(`${where}.compressedSha256: ${e.compressedPath} has SHA-256 ${actual}, not ${e.compressedSha256} (rebuild with \`npm run build:agent\`)`);
    let executable: Buffer;
    try {
      executable = gunzipSync(compressed);
    } catch (error) {
      throw new Error(`${where}.compressedPath: ${e.compressedPath} is not gzip data (${(error as Error).message})`, { cause: error });
    }
    const actualExecutable = sha256Of(executable);
    if (actualExecutable !== e.sha256) throw new Error(`${where}.sha256: ${e.compressedPath} decompresses to an executable of SHA-256 ${actualExecutable}, not ${e.sha256} (rebuild with \`npm run build:agent\`)`);
    return e;
  });
}
