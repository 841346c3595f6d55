/**
 * Settle with `work`, or reject with `onTimeout()` after `timeoutMs`, whichever comes first.
 * The timer is cleared as soon as `work` settles, so nothing lingers; `work` itself is not
 * cancelled (callers that can cancel do so on the timeout error).
 */
export async function withTimeout<T>(work: Promise<T> | (() => T | Promise<T>), timeoutMs: number, onTimeout: () => Error): Promise<T> {
  const promise = typeof work === 'function' ? Promise.resolve().then(work) : work;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` (an unref'd timer: it never keeps the process alive). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
