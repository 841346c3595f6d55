import { sleep } from '../../harness/wait.js';
import { runWrk, type WrkResult } from './wrk.js';

/** Reloads per second during a storm. */
export const RELOADS_PER_S = 10;

/** Fire `reload(i)` RELOADS_PER_S times a second until `stop()`; resolves with the count. */
export function reloadLoop(reload: (i: number) => Promise<void>): { stop: () => Promise<number> } {
  let running = true;
  let count = 0;
  const done = (async () => {
    while (running) {
      const started = Date.now();
      count += 1;
      await reload(count);
      await sleep(Math.max(0, 1000 / RELOADS_PER_S - (Date.now() - started)));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return count;
    },
  };
}

/**
 * A warm-up run (not counted), then `durationS` of `run` against `url` without reloads (the
 * baseline), then `durationS` with `reload(i)` RELOADS_PER_S times a second (the storm).
 * `warmupS` defaults to a fifth of `durationS` (at least 1 s).
 */
export async function measure(
  url: string,
  durationS: number,
  reload: (i: number) => Promise<void>,
  run: (url: string, durationS: number) => Promise<WrkResult> = runWrk,
  warmupS = Math.max(1, Math.round(durationS / 5)),
): Promise<{ baseline: WrkResult; storm: WrkResult; reloads: number }> {
  // Warm up first (JIT, pooled connections), so the baseline is not the slower of the two runs
  // merely because it came first.
  await run(url, warmupS);
  const baseline = await run(url, durationS);
  const loop = reloadLoop(reload);
  const storm = await run(url, durationS);
  const reloads = await loop.stop();
  return { baseline, storm, reloads };
}
