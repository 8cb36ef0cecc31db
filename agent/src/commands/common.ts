import { SSMClient } from '@aws-sdk/client-ssm';
import { createClients, type AgentClients } from '../aws';
import { loadConfigFile, loadConfigParameter } from '../config/load';
import type { AgentConfig } from '../../../format/agent-config';
import { ColdsealError, EXIT } from '../errors';

export interface ConfigOrigin {
  readonly config?: string;
  readonly configParameter?: string;
  readonly region?: string;
}

/** The configuration from a file or an SSM parameter, and the clients it calls for. */
export async function loadAgentConfig(origin: ConfigOrigin): Promise<{ config: AgentConfig; clients: AgentClients }> {
  if (origin.config && origin.configParameter) throw new ColdsealError(EXIT.USAGE, '--config and --config-parameter exclude each other', 'Give one of them');
  if (!origin.config && !origin.configParameter) throw new ColdsealError(EXIT.USAGE, 'no configuration given', 'Use --config FILE or --config-parameter NAME');
  const region = origin.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const config = origin.config
    ? await loadConfigFile(origin.config)
    : await loadConfigParameter(new SSMClient({ ...(region ? { region } : {}) }), origin.configParameter!);
  return { config, clients: createClients(config) };
}
