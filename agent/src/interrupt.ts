/**
 * SIGTERM (an SSM command timeout, a shutdown) or Ctrl-C must not leave a half-written backup: the
 * running dumps are stopped, their multipart uploads aborted, no manifest is written, and the
 * failure is reported and alerted like any other. A second signal exits at once.
 */
type Listener = (signal: NodeJS.Signals) => void;

const listeners = new Set<Listener>();
let received: NodeJS.Signals | undefined;

export function interruptedBy(): NodeJS.Signals | undefined {
  return received;
}

/** Calls `listener` on interruption (at once if it already happened); returns an unsubscribe. */
export function onInterrupt(listener: Listener): () => void {
  if (received) listener(received);
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function interrupt(signal: NodeJS.Signals): boolean {
  if (received) return false;
  received = signal;
  for (const listener of listeners) listener(signal);
  return true;
}

export function installSignalHandlers(): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (!interrupt(signal)) process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}
