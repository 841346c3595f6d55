import { expect } from 'chai';
import { startDaemon } from '../../harness/daemon.js';
import { freePort } from '../../harness/ports.js';
import { waitFor, waitForCollection } from '../../harness/wait.js';
import { HEALTH_CHECKER_KIND, TARGET_HEALTH_KIND } from '../../lib/resources/health.js';
import { UPSTREAM_POOL_KIND } from '../../lib/resources/upstream.js';

/**
 * Upstreams `u0`…`u(count-1)`, each of its own target origin (so its own pool, target health state
 * and health checker), each behind route `/uK`.
 */
function growingConfig(port: number, count: number): Record<string, unknown> {
  const upstreams: Record<string, unknown> = {};
  const routes: Record<string, unknown>[] = [];
  for (let k = 0; k < count; k += 1) {
    upstreams[`u${k}`] = { targets: [`http://127.0.0.1:${10_000 + k}`], health_check: { interval_ms: 60_000 } };
    routes.push({ path_prefix: `/u${k}`, upstream: `u${k}` });
  }
  return { shutdown_timeout_ms: 2000, upstreams, listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes }] };
}

describe('generation retention', () => {
  it('lets a released generation be collected while resources it created serve later generations', async function () {
    this.timeout(60_000);
    const port = await freePort();
    const reloads = 20;
    const t = await startDaemon(growingConfig(port, 1));
    // Weak references only: the spec itself must not keep a generation alive.
    const generations: WeakRef<object>[] = [new WeakRef(t.daemon.reloader.active!)];
    // Each reload adds an upstream of a new origin: the generation it makes creates that pool (and its
    // health state and checker), every later generation takes them over, so each outlives its creator.
    for (let i = 2; i <= reloads + 1; i += 1) {
      expect((await t.apply(growingConfig(port, i))).result).to.equal('applied');
      generations.push(new WeakRef(t.daemon.reloader.active!));
    }
    await waitFor('replaced generations to be released', () => t.daemon.reloader.generations().length === 1);
    const stats = t.daemon.registry.stats();
    for (const kind of [UPSTREAM_POOL_KIND, TARGET_HEALTH_KIND, HEALTH_CHECKER_KIND])
      expect(stats[kind], kind).to.include({ created: reloads + 1, live: reloads + 1, destroyed: 0 });

    // Only the active generation is reachable: a registry value must not hold the generation that created it.
    await waitForCollection('released generations to be collected', () => generations.filter((ref) => ref.deref() !== undefined).length === 1);
    expect(generations.at(-1)!.deref()).to.equal(t.daemon.reloader.active);
  });
});
