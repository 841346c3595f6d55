/**
 * A minimal typed event channel: `subscribe` returns its own unsubscribe, `emit` calls every
 * listener synchronously and isolates their failures (a throwing listener is reported to
 * `onListenerError` and never breaks the emitter or the other listeners).
 */
export class Emitter<E> {
  readonly #listeners = new Set<(event: E) => void>();
  readonly #onListenerError: (error: unknown, event: E) => void;

  constructor(onListenerError: (error: unknown, event: E) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  subscribe(listener: (event: E) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** True when someone listens: lets hot paths skip building the event object. */
  get observed(): boolean {
    return this.#listeners.size > 0;
  }

  emit(event: E): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }
}
