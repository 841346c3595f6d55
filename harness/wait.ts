/**
 * Poll `probe` until it returns a truthy value (returned) or `timeoutMs` passes (throws with
 * `what`). For conditions reached asynchronously (a watcher firing, a span exported); the
 * timeout is a safety net, never the thing tested.
 */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 10): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Yield microtask turns until `probe()` is truthy, at most `turns` of them: for promise chains
 * that advance without any timer or I/O (a queue starting its next job, a hook starting), so no
 * clock is involved. Throws naming `what` when the bound is reached.
 */
export async function turnsUntil(what: string, probe: () => unknown, turns = 100): Promise<void> {
  for (let turn = 0; !probe(); turn += 1) {
    if (turn === turns) throw new Error(`${what} did not happen within ${turns} microtask turns`);
    await Promise.resolve();
  }
}

/**
 * Run a full garbage collection before every poll of `probe` until it is truthy (`waitFor`'s
 * bound): for FinalizationRegistry callbacks, which run as tasks some time after the collection
 * that found their object. Needs `--expose-gc` (.mocharc.json, `npm run bench`).
 */
export function waitForCollection<T>(what: string, probe: () => T | Promise<T>, timeoutMs?: number): Promise<NonNullable<T>> {
  const gc = globalThis.gc;
  if (typeof gc !== 'function') throw new Error('run node with --expose-gc (see .mocharc.json)');
  return waitFor(
    what,
    () => {
      gc();
      return probe();
    },
    timeoutMs,
  );
}

/** Resolve after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The error `promise` rejects with; throws if it resolves instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}
