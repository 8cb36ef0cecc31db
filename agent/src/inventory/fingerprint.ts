import { createHash } from 'node:crypto';
import type { Inventory } from '../../../format/manifest';

/** SHA-256 over a canonical listing: one line per schema object, sorted, so order of discovery does not matter. */
export function fingerprintLines(lines: readonly string[]): string {
  return createHash('sha256').update([...lines].sort().join('\n')).digest('hex');
}

export interface InventoryComparison {
  readonly rowCounts: { ok: boolean; detail: string };
  readonly schema: { ok: boolean; detail: string };
}

/** What the restored copy holds against what the manifest recorded at backup time. */
export function compareInventories(recorded: Inventory, restored: Inventory): InventoryComparison {
  const id = (t: { schema: string; name: string }) => (t.schema ? `${t.schema}.${t.name}` : t.name);
  const got = new Map(restored.tables.map((t) => [id(t), t.rows]));
  const problems: string[] = [];
  for (const table of recorded.tables) {
    const rows = got.get(id(table));
    if (rows === undefined) problems.push(`${id(table)} missing (expected ${table.rows} rows)`);
    else if (rows !== table.rows) problems.push(`${id(table)} has ${rows} rows, expected ${table.rows}`);
    got.delete(id(table));
  }
  for (const extra of got.keys()) problems.push(`${extra} was not in the backup's inventory`);
  const total = recorded.tables.reduce((sum, t) => sum + t.rows, 0);
  const approximate = recorded.consistency === 'approximate' ? ' (counts recorded outside the dump\'s snapshot: approximate)' : '';
  const rowCounts = problems.length
    ? { ok: false, detail: `${problems.length} table(s) differ${approximate}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? '; …' : ''}` }
    : { ok: true, detail: `${recorded.tables.length} tables, ${total} rows, all as recorded` };
  const schema =
    recorded.schemaFingerprint === restored.schemaFingerprint
      ? { ok: true, detail: `schema fingerprint ${recorded.schemaFingerprint.slice(0, 16)}… matches` }
      : { ok: false, detail: `schema fingerprint ${restored.schemaFingerprint.slice(0, 16)}… differs from the recorded ${recorded.schemaFingerprint.slice(0, 16)}…` };
  return { rowCounts, schema };
}
