import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import { YOUNG_GARBAGE_BYTES, youngGarbage } from '../../runtime/young-garbage';

/** Minor (young-generation) collections seen while `work` runs, and a moment after (gc entries come asynchronously). */
async function minorCollections(work: () => void): Promise<number> {
  let minor = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    work();
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    observer.disconnect();
  }
  return minor;
}

describe('youngGarbage', () => {
  test('asks for a scavenge each time YOUNG_GARBAGE_BYTES of garbage were counted', async () => {
    // Counted in the 64 KiB steps a socket delivers; no Buffer is made, so only the asked-for scavenges are expected.
    const chunk = 64 * 1024;
    const seen = await minorCollections(() => {
      for (let counted = 0; counted < 10 * YOUNG_GARBAGE_BYTES; counted += chunk) youngGarbage(chunk);
    });
    // Without the calls this loop sees 0–2 (start-up's own), so 10 can only come from them.
    assert.ok(seen >= 10, `expected at least 10 minor collections, saw ${seen}`);
  });

  test('leaves no gc function behind: neither in this context nor in contexts made afterwards', () => {
    youngGarbage(YOUNG_GARBAGE_BYTES);
    if (!process.execArgv.some((a) => /expose[-_]gc/.test(a))) assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
    assert.equal(runInNewContext('typeof gc'), process.execArgv.some((a) => /expose[-_]gc/.test(a)) ? 'function' : 'undefined');
  });
});
