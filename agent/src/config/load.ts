import { readFile } from 'node:fs/promises';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { ColdsealError, EXIT } from '../errors';
import { agentConfigSchema, type AgentConfig } from '../../../format/agent-config';

/** Turns zod issues into lines that name the field the user has to fix. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

export function parseAgentConfig(raw: unknown, origin: string): AgentConfig {
  const parsed = agentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ColdsealError(EXIT.CONFIG, `configuration ${origin} is invalid: ${describeIssues(parsed.error)}`, 'Fix the named fields (docs: README, "Configuration reference")');
  }
  return parsed.data;
}

function parseJson(text: string, origin: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ColdsealError(EXIT.CONFIG, `configuration ${origin} is not valid JSON: ${(error as Error).message}`, 'Check the file for a trailing comma or a missing quote');
  }
}

export async function loadConfigFile(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ColdsealError(EXIT.CONFIG, `cannot read configuration file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'Give the path of a readable JSON file with --config');
  }
  return parseAgentConfig(parseJson(text, `file ${path}`), `file ${path}`);
}

export async function loadConfigParameter(ssm: SSMClient, name: string): Promise<AgentConfig> {
  let value: string | undefined;
  try {
    const result = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    value = result.Parameter?.Value;
  } catch (error) {
    const code = (error as { name?: string }).name;
    if (code === 'ParameterNotFound') {
      throw new ColdsealError(EXIT.CONFIG, `configuration parameter ${name} does not exist`, 'Deploy the stack for this group (cdk deploy) or check the parameter name and region');
    }
    throw new ColdsealError(EXIT.STORAGE, `cannot read configuration parameter ${name}: ${(error as Error).message}`, 'Check the instance role allows ssm:GetParameter on it');
  }
  if (!value) throw new ColdsealError(EXIT.CONFIG, `configuration parameter ${name} is empty`);
  return parseAgentConfig(parseJson(value, `parameter ${name}`), `parameter ${name}`);
}
