import { createHash } from 'node:crypto';
import { z } from 'zod';
import { configPartsPath } from './parameters';

/**
 * How the stack stores a group's agent configuration in Parameter Store, and how a reader puts it
 * back together. One group's sources reach 10 KB and more (40 sources with a few databases and
 * excluded tables each; a source that excludes hundreds of partitions), over any parameter:
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
 * (Standard holds 4 KB, Advanced 8 KB). So the configuration parameter (the "head") holds
 * everything but the sources, and names the parameters that hold the sources' JSON text in slices,
 * with the SHA-256 of that text.
 *
 * Why split parameters, and not the bucket or compression:
 * - the hosts already read their group's parameters and nothing else; the bucket is write-only for
 *   them (design.md), and an object there would need its own signature, since the stack holds no
 *   signing key. The parts are plain Strings like the head: nothing secret, under the same IAM.
 * - compression only pushes the limit back (random table names compress 2-3x) and makes the
 *   parameter unreadable in the console; slices stay JSON an operator can read.
 * - every part fits a Standard parameter (free, and never the Advanced-to-Standard downgrade that
 *   AWS refuses: "you can't revert an advanced parameter to a standard parameter", same page), and
 *   its size is exact at synth, since sources hold no deploy-time values.
 *
 * Atomicity: a part's name carries the digest of the whole text, so a part is never rewritten;
 * a changed configuration is new parts (CloudFormation creates them, then updates the head, which
 * depends on them, and deletes the old parts only in its cleanup, after the update:
 * https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-update-behaviors.html).
 * A reader that read the old head just before that cleanup finds a part gone: it reads the head
 * again (readStoredConfig). The digest catches any other mix.
 */

/** Bytes PutParameter accepts in a Standard and an Advanced String parameter (page above). */
export const STANDARD_PARAMETER_BYTES = 4096;
export const ADVANCED_PARAMETER_BYTES = 8192;

/**
 * At most this many parts, so one GetParameters call reads them all (it takes at most 10 names:
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html).
 * 40 KB of sources: a group that needs more is better split into groups.
 */
export const MAX_CONFIG_PARTS = 10;
export const MAX_SOURCES_BYTES = MAX_CONFIG_PARTS * STANDARD_PARAMETER_BYTES;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in hex');

/** What the head holds in place of `sources`. */
export const sourcesReferenceSchema = z
  .object({
    /** The part parameters in order; their values, concatenated, are the sources' JSON text. */
    parameters: z.array(z.string().min(1)).min(1).max(MAX_CONFIG_PARTS),
    /** SHA-256 of that text (UTF-8). */
    sha256: sha256Hex,
  })
  .strict();
export type SourcesReference = z.infer<typeof sourcesReferenceSchema>;

/** The key of the head that names the parts (a configuration with `sources` inline has none). */
export const SOURCES_REFERENCE_KEY = 'sourcesFrom';

export interface ConfigPart {
  readonly name: string;
  readonly value: string;
}

/**
 * The sources as parts of at most `STANDARD_PARAMETER_BYTES` each. Cuts fall between code points
 * and never next to whitespace, which a form or a tool could trim from a value's ends.
 */
export function splitSources(sources: unknown, configParameter: string): { parts: ConfigPart[]; reference: SourcesReference } {
  const text = JSON.stringify(sources);
  const sha256 = createHash('sha256').update(text, 'utf8').digest('hex');
  const path = `${configPartsPath(configParameter)}/${sha256.slice(0, 16)}`;
  const slices: string[] = [];
  const chars = Array.from(text);
  let start = 0;
  while (start < chars.length) {
    let end = start;
    let bytes = 0;
    while (end < chars.length && bytes + Buffer.byteLength(chars[end]) <= STANDARD_PARAMETER_BYTES) bytes += Buffer.byteLength(chars[end++]);
    if (end < chars.length) {
      // Back off until neither side of the cut is whitespace (JSON.stringify writes none outside strings).
      let cut = end;
      while (cut > start + 1 && (/\s/.test(chars[cut - 1]) || /\s/.test(chars[cut]))) cut--;
      end = cut;
    }
    slices.push(chars.slice(start, end).join(''));
    start = end;
  }
  const parts = slices.map((value, index) => ({ name: `${path}/${index + 1}`, value }));
  return { parts, reference: { parameters: parts.map((p) => p.name), sha256 } };
}

/** The parts named in a head, or undefined when the head holds its sources inline (a hand-written parameter). */
export function sourcesReferenceOf(head: unknown): SourcesReference | undefined {
  if (!head || typeof head !== 'object' || !(SOURCES_REFERENCE_KEY in head)) return undefined;
  const parsed = sourcesReferenceSchema.safeParse((head as Record<string, unknown>)[SOURCES_REFERENCE_KEY]);
  if (!parsed.success) throw new Error(`"${SOURCES_REFERENCE_KEY}" is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/**
 * The configuration a head and its parts' values make (values in the reference's order, null for a
 * part that does not exist), or why they do not make one.
 */
export function joinConfig(head: Record<string, unknown>, reference: SourcesReference, values: readonly (string | null)[]): { config: unknown } | { problem: string } {
  const missing = reference.parameters.filter((_, i) => values[i] === null || values[i] === undefined);
  if (missing.length > 0) return { problem: `its part${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist` };
  const text = values.join('');
  const sha256 = createHash('sha256').update(text, 'utf8').digest('hex');
  if (sha256 !== reference.sha256) return { problem: `its parts do not make the text it names (SHA-256 ${sha256}, expected ${reference.sha256})` };
  const { [SOURCES_REFERENCE_KEY]: _reference, ...rest } = head;
  return { config: { ...rest, sources: JSON.parse(text) as unknown } };
}
