import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readStoredConfig, type ParameterReader } from '../../agent/src/config/load';
import { ColdsealError } from '../../agent/src/errors';
import { EXIT } from '../../format/exit-codes';
import { MAX_CONFIG_PARTS, SOURCES_REFERENCE_KEY, splitSources, STANDARD_PARAMETER_BYTES } from '../../format/config-parameter';

const NAME = '/coldseal/groups/db/config';

/** Table names with spaces and multi-byte characters, so that cuts land next to both. */
function awkwardSources(count: number): unknown[] {
  return Array.from({ length: count }, (_, i) => ({ name: `s${i}`, type: 'postgres', excludeTables: Array.from({ length: 20 }, (_, j) => `"Straße ${i} ${j}" .  Ländle 🗄 ${' '.repeat(j % 5)}x`) }));
}

/** A parameter store: name → value, as the stack writes it (a head and its parts). */
function store(sources: unknown, extra: Record<string, unknown> = {}): Map<string, string> {
  const { parts, reference } = splitSources(sources, NAME);
  return new Map([[NAME, JSON.stringify({ group: 'db', ...extra, [SOURCES_REFERENCE_KEY]: reference })], ...parts.map((p) => [p.name, p.value] as [string, string])]);
}

function reader(values: Map<string, string>, onRead: (names: readonly string[]) => void = () => {}): ParameterReader {
  return async (names) => {
    onRead(names);
    return names.map((n) => values.get(n) ?? null);
  };
}

describe('a group configuration split across parameters (format/config-parameter.ts)', () => {
  test('parts hold at most a Standard parameter, cut between code points and never beside whitespace, and join to the text', () => {
    const sources = awkwardSources(30);
    const { parts, reference } = splitSources(sources, NAME);
    assert.ok(parts.length > 2, `${parts.length} parts`);
    assert.ok(parts.length <= MAX_CONFIG_PARTS);
    for (const part of parts) {
      assert.ok(Buffer.byteLength(part.value) <= STANDARD_PARAMETER_BYTES, `${part.name}: ${Buffer.byteLength(part.value)} bytes`);
      assert.equal(part.value, part.value.trim(), `${part.name} has whitespace at an end`);
      assert.ok(!part.value.includes('\uFFFD'));
      assert.match(part.name, new RegExp(`^${NAME}-parts/${reference.sha256.slice(0, 16)}/\\d+$`));
    }
    assert.equal(parts.map((p) => p.value).join(''), JSON.stringify(sources));
  });

  test('the same sources make the same part names; other sources make others (a part is never rewritten)', () => {
    const a = splitSources(awkwardSources(3), NAME).reference.parameters;
    assert.deepEqual(splitSources(awkwardSources(3), NAME).reference.parameters, a);
    assert.ok(splitSources(awkwardSources(4), NAME).reference.parameters.every((n) => !a.includes(n)));
  });

  test('read back whole; a configuration written inline (by hand) is read as it is', async () => {
    const sources = awkwardSources(30);
    assert.deepEqual(await readStoredConfig(reader(store(sources, { bucket: 'b' })), NAME), { group: 'db', bucket: 'b', sources });
    const inline = { group: 'db', sources: [{ name: 'pg', type: 'postgres' }] };
    assert.deepEqual(await readStoredConfig(reader(new Map([[NAME, JSON.stringify(inline)]])), NAME), inline);
    assert.equal(await readStoredConfig(reader(new Map()), NAME), null);
  });

  test('a stack update between the reads (old head read, its parts deleted by the cleanup) reads the new head again', async () => {
    const before = store(awkwardSources(5));
    const after = store(awkwardSources(6));
    const values = new Map(before);
    let reads = 0;
    const result = await readStoredConfig(
      reader(values, () => {
        // Between the first read (the old head) and the second (its parts), CloudFormation finishes: new parts, new head, old parts gone.
        if (++reads === 2) {
          values.clear();
          for (const [k, v] of after) values.set(k, v);
        }
      }),
      NAME,
    );
    assert.deepEqual(result, { group: 'db', sources: awkwardSources(6) });
    assert.equal(reads, 4, 'head, parts (gone), head again, new parts');
  });

  test('parts that do not make the named text (edited by hand) are refused with the configuration error, naming the parameter', async () => {
    const values = store(awkwardSources(5));
    const part = [...values.keys()].find((k) => k !== NAME)!;
    values.set(part, values.get(part)!.replace('Straße', 'Strasse'));
    await assert.rejects(readStoredConfig(reader(values), NAME), (error: unknown) => {
      assert.ok(error instanceof ColdsealError);
      assert.equal(error.exitCode, EXIT.CONFIG);
      assert.match(error.message, new RegExp(`configuration parameter ${NAME} cannot be read whole: its parts do not make the text it names`));
      return true;
    });
    values.delete(part);
    await assert.rejects(readStoredConfig(reader(values), NAME), new RegExp(`its part ${part.replace(/[/.]/g, '\\$&')} does not exist`));
  });
});
