import { Bench } from 'tinybench';
import { ResourceRegistry } from '../../lib/registry/registry.js';

/** Acquire + release pairs per benchmark sample, so timer overhead does not dominate. */
const BATCH = 1000;

export interface RegistryResult {
  acquire_release_ops_per_s: number;
  raw_map_ops_per_s: number;
  /** The same loop without `await`: the floor of a synchronous ref-counter, for context. */
  raw_map_sync_ops_per_s: number;
  ratio_to_raw_map: number;
}

/**
 * The registry's reuse path (acquire of a live key + release, the only path a steady-state
 * reload takes) against a bare `Map` get + counter update with the same async shape, in one
 * process with tinybench.
 */
export async function registryPart(quick: boolean): Promise<RegistryResult> {
  const registry = new ResourceRegistry();
  const factory = { create: () => ({ pool: true }), destroy: () => {} };
  const anchor = await registry.acquire('bench', 'key', factory); // keeps the key live: pure reuse path

  const map = new Map<string, { value: unknown; refs: number }>([['bench\0key', { value: { pool: true }, refs: 1 }]]);
  const rawAcquire = async (id: string) => {
    const entry = map.get(id)!;
    entry.refs += 1;
    return entry;
  };
  const rawRelease = async (entry: { refs: number }) => {
    entry.refs -= 1;
  };
  let sink = 0;

  const bench = new Bench({ time: quick ? 500 : 2000, warmupTime: quick ? 100 : 500 });
  bench
    .add('registry acquire+release (reuse)', async () => {
      for (let i = 0; i < BATCH; i++) {
        const lease = await registry.acquire('bench', 'key', factory);
        await lease.release();
      }
    })
    .add('raw Map get+counter (async)', async () => {
      for (let i = 0; i < BATCH; i++) {
        const entry = await rawAcquire('bench\0key');
        await rawRelease(entry);
      }
    })
    .add('raw Map get+counter (sync)', () => {
      for (let i = 0; i < BATCH; i++) {
        const entry = map.get('bench\0key')!;
        entry.refs += 1;
        entry.refs -= 1;
        sink += entry.refs;
      }
    });
  await bench.run();
  const opsPerSecond = (name: string) => {
    const task = bench.getTask(name);
    const result = task?.result as { latency?: { mean: number } } | undefined;
    if (!result?.latency) throw new Error(`benchmark task ${name} has no result`);
    return (BATCH * 1000) / result.latency.mean;
  };
  const acquire = opsPerSecond('registry acquire+release (reuse)');
  const raw = opsPerSecond('raw Map get+counter (async)');
  const rawSync = opsPerSecond('raw Map get+counter (sync)');
  await anchor.release();
  await registry.close();
  if (sink < 0) throw new Error('unreachable'); // keeps the sync loop from being optimised away
  return {
    acquire_release_ops_per_s: Math.round(acquire),
    raw_map_ops_per_s: Math.round(raw),
    raw_map_sync_ops_per_s: Math.round(rawSync),
    ratio_to_raw_map: acquire / raw,
  };
}
