import { readdirSync } from 'node:fs';
import type { ResourceRegistry } from '../registry/registry.js';
import type { Reloader } from '../reload/reloader.js';
import { activeHandles, DEFAULT_LEAK_TREND, type LeakSample, type LeakTrend, type LeakTrendOptions, leakTrend } from './leaks.js';

export interface LeakTrendRecorderOptions extends Partial<LeakTrendOptions> {
  registry: ResourceRegistry;
  reloader: Reloader;
}

/**
 * Counts handles, fds and live resources per kind after every reload (any result) and keeps the
 * last `window` samples, so the leak report can show their trend (`leakTrend`). Samples are
 * taken when the reloader reports the reload, while the generation it replaced may still be
 * draining: that is the same offset after every reload, which a slope ignores.
 *
 * Holds nothing but the samples (no timer); `close()` stops listening to the reloader.
 */
export class LeakTrendRecorder {
  readonly #options: LeakTrendOptions;
  readonly #registry: ResourceRegistry;
  readonly #samples: LeakSample[] = [];
  readonly #unsubscribe: () => void;
  #reloads = 0;

  constructor(options: LeakTrendRecorderOptions) {
    this.#options = {
      window: options.window ?? DEFAULT_LEAK_TREND.window,
      threshold_per_reload: options.threshold_per_reload ?? DEFAULT_LEAK_TREND.threshold_per_reload,
    };
    this.#registry = options.registry;
    this.#unsubscribe = options.reloader.subscribe((event) => {
      if (event.type === 'reload') this.#record();
    });
  }

  /** The trend over the samples kept so far. */
  trend(): LeakTrend {
    return leakTrend(this.#samples, this.#options);
  }

  /** Stop recording. */
  close(): void {
    this.#unsubscribe();
  }

  #record(): void {
    this.#reloads += 1;
    this.#samples.push({ reload: this.#reloads, values: this.#snapshot() });
    if (this.#samples.length > this.#options.window) this.#samples.shift();
  }

  #snapshot(): Record<string, number> {
    const values: Record<string, number> = {};
    let handles = 0;
    for (const [type, count] of Object.entries(activeHandles())) {
      values[`handles:${type}`] = count;
      handles += count;
    }
    values.handles = handles;
    const fds = openFds();
    if (fds !== undefined) values.fds = fds;
    for (const [kind, stats] of Object.entries(this.#registry.stats())) values[`live:${kind}`] = stats.live;
    return values;
  }
}

/** Open file descriptors of this process, where `/proc/self/fd` exists (Linux); else undefined. */
function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}
