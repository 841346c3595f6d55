import { errorCode, errorMessage } from './errors.js';

/**
 * Decides whether a repeated event is worth a log line: per key (a target, say), the first
 * occurrence of a signature is logged, identical repeats are counted silently and logged at most
 * once per `intervalMs` with the number suppressed since the last line. A different signature
 * for the key is logged at once. Time comes from `now` (ms), injectable for tests.
 */
export class RepeatLimiter {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, { signature: string; loggedAt: number; suppressed: number }>();

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** `log`: write this occurrence; `suppressed`: identical occurrences not logged since the last line. */
  check(key: string, signature: string): { log: boolean; suppressed: number } {
    const now = this.#now();
    const last = this.#last.get(key);
    if (last && last.signature === signature && now - last.loggedAt < this.#intervalMs) {
      last.suppressed += 1;
      return { log: false, suppressed: last.suppressed };
    }
    const suppressed = last?.signature === signature ? last.suppressed : 0;
    this.#last.set(key, { signature, loggedAt: now, suppressed: 0 });
    return { log: true, suppressed };
  }

  /**
   * `check` for a caught error, whose signature is its code and message. Returns the fields its
   * log line carries (`code`, `error`: the message, `suppressed`), or undefined when it is not
   * to be logged.
   */
  checkError(key: string, error: unknown): { code: string | undefined; error: string; suppressed: number } | undefined {
    const code = errorCode(error);
    const message = errorMessage(error);
    const { log, suppressed } = this.check(key, `${code ?? ''} ${message}`);
    return log ? { code, error: message, suppressed } : undefined;
  }

  /** Forget `key`: its next occurrence is logged whatever it is (call when the condition clears). */
  reset(key: string): void {
    this.#last.delete(key);
  }
}
