import { LeaseReleasedError } from '../core/errors.js';

/**
 * What `Lease.release()` returns whenever the value outlives that release (another lease holds
 * it, or it was already released): always this one resolved promise, so a caller releasing many
 * leases awaits only the releases that destroy (see `releaseNewestFirst`).
 */
export const LEASE_KEPT: Promise<false> = Promise.resolve(false);

/**
 * One reference to a registry resource. The holder reads `value` while it holds the lease and
 * calls `release()` exactly once when done; the registry destroys the value when the last lease
 * on it is released.
 *
 * A released lease is dead: reading `value` throws `LeaseReleasedError` (code
 * `E_LEASE_RELEASED`), so a stale reference kept past its owner's life fails loudly instead of
 * handing out a destroyed object (the APISIX stale-tracing-context bug).
 *
 * Leases are created only by `ResourceRegistry.acquire`.
 */
export class Lease<T> {
  /** Resource kind, e.g. `listener`. */
  readonly kind: string;
  /** Resource key within its kind, e.g. `127.0.0.1:8080`. */
  readonly key: string;
  /** True when this acquire ran the factory's `create`; false when it reused a live value. */
  readonly created: boolean;
  #value: T;
  #released = false;
  readonly #owner: unknown;
  readonly #onRelease: (lease: Lease<T>, owner: never) => Promise<boolean>;

  /**
   * @internal Use `ResourceRegistry.acquire`. `onRelease(lease, owner)` drops the reference;
   * `owner` is the registry's entry, passed back so no closure is allocated per lease.
   */
  constructor(kind: string, key: string, value: T, created: boolean, owner: unknown, onRelease: (lease: Lease<T>, owner: never) => Promise<boolean>) {
    this.kind = kind;
    this.key = key;
    this.created = created;
    this.#value = value;
    this.#owner = owner;
    this.#onRelease = onRelease;
  }

  /** @internal The registry's entry this lease holds a reference on (`ResourceRegistry.share` reads it instead of looking the key up). */
  static ownerOf<T>(lease: Lease<T>): unknown {
    return lease.#owner;
  }

  /** The shared resource. Throws `LeaseReleasedError` once this lease is released. */
  get value(): T {
    if (this.#released) throw new LeaseReleasedError(this.kind, this.key);
    return this.#value;
  }

  /** True once `release()` has been called. */
  get released(): boolean {
    return this.#released;
  }

  /**
   * Drop this reference. Resolves true when this release was the last one and destroyed the
   * value (a destroy that failed or timed out still counts: the value is gone either way),
   * false otherwise. Idempotent: a second call resolves false and never drops another lease's
   * reference.
   */
  release(): Promise<boolean> {
    if (this.#released) return LEASE_KEPT;
    this.#released = true;
    this.#value = undefined as T;
    return this.#onRelease(this, this.#owner as never);
  }

  /** `await using lease = await registry.acquire(...)` releases at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

/**
 * Release `leases` newest first, each after the previous one's destroy (if it ran) finished;
 * a release that destroys nothing (`LEASE_KEPT`) is not awaited, so releasing 20,000 leases on
 * values that live on costs no 20,000 turns of the microtask queue. Counts each value destroyed
 * into `destroyed` by kind.
 */
export async function releaseNewestFirst(leases: readonly Lease<unknown>[], destroyed: Record<string, number>): Promise<void> {
  for (let i = leases.length - 1; i >= 0; i -= 1) {
    const destroying = releaseCounted(leases[i]!, destroyed);
    if (destroying) await destroying;
  }
}

/**
 * `lease.release()`, counting the value into `destroyed` by kind if the release destroyed it.
 * Undefined when the value lives on (`LEASE_KEPT`): nothing to wait for; else the destroy, to be
 * awaited before the next release (never rejects).
 */
export function releaseCounted(lease: Lease<unknown>, destroyed: Record<string, number>): Promise<void> | undefined {
  const done = lease.release();
  if (done === LEASE_KEPT) return undefined;
  return done.then((gone) => {
    if (gone) destroyed[lease.kind] = (destroyed[lease.kind] ?? 0) + 1;
  });
}
