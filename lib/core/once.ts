/**
 * A named once-future, after OpenTelemetry JS's `BindOnceFuture`: the first `call()` starts
 * `fn`; every call, concurrent or later, returns that same promise, so a second caller of a
 * close never returns before the close has finished. A synchronous throw of `fn` becomes the
 * promise's rejection. Every idempotent teardown (`close`, `stop`, `destroy`, `release`) in
 * hotconf goes through one of these.
 */
export class Once<T = void> {
  readonly #fn: () => T | Promise<T>;
  #promise: Promise<T> | undefined;

  constructor(fn: () => T | Promise<T>) {
    this.#fn = fn;
  }

  /** True once `call()` was made (the work may still be running). */
  get called(): boolean {
    return this.#promise !== undefined;
  }

  /** Start the work on the first call; the same promise for every call. */
  call(): Promise<T> {
    this.#promise ??= new Promise<T>((resolve) => resolve(this.#fn()));
    return this.#promise;
  }
}
