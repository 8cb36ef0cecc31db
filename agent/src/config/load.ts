import { readFile } from 'node:fs/promises';
import { GetParametersCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { ColdsealError, EXIT } from '../errors';
import { agentConfigSchema, type AgentConfig } from '../../../format/agent-config';
import { joinConfig, sourcesReferenceOf, type SourcesReference } from '../../../format/config-parameter';

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

/**
 * Reads parameters by name: each value, or null for one that does not exist. Narrow so that the
 * agent (one GetParameters call) and `coldseal trigger` (its own SSM port) share readStoredConfig.
 */
export type ParameterReader = (names: readonly string[]) => Promise<(string | null)[]>;

/** GetParameters, at most 10 names a call (format/config-parameter.ts keeps a configuration within one). */
export function ssmParameterReader(ssm: SSMClient): ParameterReader {
  return async (names) => {
    const values = new Map<string, string>();
    for (let i = 0; i < names.length; i += 10) {
      const result = await ssm.send(new GetParametersCommand({ Names: names.slice(i, i + 10), WithDecryption: true }));
      for (const p of result.Parameters ?? []) if (p.Name && p.Value !== undefined) values.set(p.Name, p.Value);
    }
    return names.map((n) => values.get(n) ?? null);
  };
}

/**
 * The configuration a stored parameter holds, not yet validated: inline (a hand-written
 * parameter), or a head and its parts (what the stack writes, format/config-parameter.ts). A part
 * gone or not matching means the stack was updated between the two reads: the head is read again,
 * once. Returns null when the parameter does not exist.
 */
export async function readStoredConfig(read: ParameterReader, name: string): Promise<unknown> {
  let problem = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const [text] = await read([name]);
    if (text === null) return null;
    if (!text) throw new ColdsealError(EXIT.CONFIG, `configuration parameter ${name} is empty`);
    const head = parseJson(text, `parameter ${name}`);
    let reference: SourcesReference | undefined;
    try {
      reference = sourcesReferenceOf(head);
    } catch (error) {
      throw new ColdsealError(EXIT.CONFIG, `configuration parameter ${name} is invalid: ${(error as Error).message}`, 'Deploy the stack again (cdk deploy), or write the sources inline');
    }
    if (!reference) return head;
    const joined = joinConfig(head as Record<string, unknown>, reference, await read(reference.parameters));
    if ('config' in joined) return joined.config;
    problem = joined.problem;
  }
  throw new ColdsealError(EXIT.CONFIG, `configuration parameter ${name} cannot be read whole: ${problem}`, 'If a deploy is running, run again once it is done; otherwise deploy the stack again (cdk deploy)');
}

export async function loadConfigParameter(ssm: SSMClient, name: string): Promise<AgentConfig> {
  let raw: unknown;
  try {
    raw = await readStoredConfig(ssmParameterReader(ssm), name);
  } catch (error) {
    if (error instanceof ColdsealError) throw error;
    throw new ColdsealError(EXIT.STORAGE, `cannot read configuration parameter ${name}: ${(error as Error).message}`, 'Check the instance role allows ssm:GetParameters on it and on its parts');
  }
  if (raw === null) throw new ColdsealError(EXIT.CONFIG, `configuration parameter ${name} does not exist`, 'Deploy the stack for this group (cdk deploy) or check the parameter name and region');
  return parseAgentConfig(raw, `parameter ${name}`);
}
