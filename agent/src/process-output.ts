import type { Readable } from 'node:stream';

/**
 * What the agent keeps of a child's stderr: only the tail, since a dump tool can write for hours
 * and the last lines are the ones that say why it stopped.
 */
export function keepTail(stream: Readable, maxChars: number): () => string {
  let tail = '';
  stream.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-maxChars);
  });
  return () => tail;
}

/** The last `count` non-trailing lines on one line, for a one-line error message. */
export function lastLines(text: string, count: number): string {
  return text.trim().split('\n').slice(-count).join(' / ');
}
