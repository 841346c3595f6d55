import type { LOAD_BALANCING } from '../../config/schema.js';

export type LoadBalancing = (typeof LOAD_BALANCING)[number];

/** What the balancer reads from a target; both are read at pick time. */
export interface Balanceable {
  readonly healthy: boolean;
  /** Requests in flight to this target right now. */
  readonly inflight: number;
}

/**
 * Picks a target for one upstream attempt among those that are healthy and not excluded (the
 * targets an earlier attempt of the same request already tried). Policies (named as Envoy's):
 * - `round_robin`: the next eligible target after the previous pick, in config order;
 * - `random`: uniform among eligible targets (`random` is injectable, default `Math.random`);
 * - `least_request`: the eligible target with the fewest requests in flight, ties broken in
 *   round-robin order; every target is compared, not Envoy's two random choices.
 * Returns undefined when no target is eligible. One balancer per upstream, kept across
 * generations while the upstream is unchanged (its position carries on through reloads).
 */
export class Balancer<T extends Balanceable> {
  readonly policy: LoadBalancing;
  readonly targets: readonly T[];
  readonly #random: () => number;
  #cursor = 0;

  constructor(policy: LoadBalancing, targets: readonly T[], random: () => number = Math.random) {
    this.policy = policy;
    this.targets = targets;
    this.#random = random;
  }

  pick(exclude?: ReadonlySet<T>): T | undefined {
    const n = this.targets.length;
    const eligible = (t: T) => t.healthy && !exclude?.has(t);
    if (this.policy === 'random') {
      const candidates = this.targets.filter(eligible);
      return candidates[Math.floor(this.#random() * candidates.length)];
    }
    let best: T | undefined;
    let bestIndex = -1;
    for (let step = 0; step < n; step += 1) {
      const index = (this.#cursor + step) % n;
      const target = this.targets[index]!;
      if (!eligible(target)) continue;
      if (this.policy === 'round_robin') {
        best = target;
        bestIndex = index;
        break;
      }
      if (best === undefined || target.inflight < best.inflight) {
        best = target;
        bestIndex = index;
      }
    }
    if (best !== undefined) this.#cursor = (bestIndex + 1) % n;
    return best;
  }
}
