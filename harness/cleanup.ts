/**
 * Per-test cleanup: helpers register teardown with `onCleanup` and the root `afterEach` hook
 * (root-hooks.ts) runs it, newest first, whether the test passed or not.
 */
const stack: (() => unknown)[] = [];

/** Run `fn` after the current test (LIFO). */
export function onCleanup(fn: () => unknown): void {
  stack.push(fn);
}

/** Run and clear every registered cleanup; the first error is rethrown after all ran. */
export async function runCleanups(): Promise<void> {
  let first: unknown;
  while (stack.length > 0) {
    const fn = stack.pop()!;
    try {
      await fn();
    } catch (error) {
      first ??= error;
    }
  }
  if (first !== undefined) throw first;
}

const atEnd: (() => unknown)[] = [];

/** Run `fn` once, after the last test of the run (for what specs share: see `sharedParser`). */
export function onRunEnd(fn: () => unknown): void {
  atEnd.push(fn);
}

/** Run and clear every run-end cleanup (the root `afterAll` hook, before it looks for leftover handles). */
export async function runEndCleanups(): Promise<void> {
  while (atEnd.length > 0) await atEnd.pop()!();
}
