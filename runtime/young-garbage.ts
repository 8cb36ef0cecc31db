import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Scavenges (young-generation collections) asked for explicitly, every YOUNG_GARBAGE_BYTES of
 * short-lived Buffers: the 64 KiB chunks a socket delivers, dead once hashed and copied into a
 * part buffer (the PartReader).
 *
 * Each chunk is a small JS object holding 64 KiB outside V8's heap. Node 20's V8 (11.3) scavenged
 * by itself as those Buffers piled up in the young generation ("external memory pressure"
 * scavenges: 21 of its 28 on a restore of a 319 MB object) and freed them young. Node 24's V8
 * (13.6) does not: the chunks' JS objects are too small to fill the young generation, no scavenge
 * comes, and the dead chunks wait for full mark-compacts, started by its external-memory limit or
 * an allocation limit: 18–23 mark-compacts instead of 1 per 319 MB, ~1 CPU-s of GC instead of
 * 0.1, and 40–55 MB more peak RSS (docs/benchmarks.md, "The part reader's buffers"). Neither
 * `--max-semi-space-size` (4, 8, 16), `--minor-ms`, `--external-memory-accounted-in-global-limit`
 * nor `--no-concurrent-array-buffer-sweeping` changed that; a scavenge every 8 MiB of chunks does,
 * on both Nodes (every 32 MiB does not: the full collections come back).
 *
 * `gc` exists only with V8's flag --expose-gc: it is set just for the moment a new context is made,
 * the function taken from that context, and the flag unset at once (the way jest's leak detector
 * gets it; https://nodejs.org/api/v8.html#v8setflagsfromstringflags). The agent's own context
 * never gets a global `gc`, and a V8 code cache written afterwards is still accepted at the next
 * start. Where V8 offers no such function, nothing is collected explicitly: the program works the
 * same, with the collector's own timing.
 */
export const YOUNG_GARBAGE_BYTES = 8 * 1024 * 1024;

type Collector = (options: { type: 'minor' }) => void;

let collector: Collector | null | undefined;

function minorCollector(): Collector | null {
  if (collector === undefined) {
    collector = null;
    // Started with --expose-gc (a debugging session): the flag is left as it was.
    const exposed = (globalThis as { gc?: unknown }).gc;
    if (typeof exposed === 'function') return (collector = exposed as Collector);
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
      if (typeof gc === 'function') collector = gc as Collector;
    } catch {
      // No explicit collections: the collector's own heuristics.
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  return collector;
}

let pending = 0;

/** Counts `bytes` of Buffers that are garbage now; a scavenge once YOUNG_GARBAGE_BYTES have piled up. */
export function youngGarbage(bytes: number): void {
  pending += bytes;
  if (pending < YOUNG_GARBAGE_BYTES) return;
  pending = 0;
  minorCollector()?.({ type: 'minor' });
}
