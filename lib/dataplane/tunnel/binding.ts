import { canonicalJson } from '../../config/hash.js';
import type { Config } from '../../config/schema.js';
import { listenerKey, type TunnelBinding } from '../../resources/listener.js';
import { upstreamTargets } from '../../resources/upstream.js';

/**
 * Whether a tunnel may stay open under `config`: its listener still has an identical route (the
 * same canonical route section) and that route's upstream still lists the tunnel's target. Any
 * other change (another route, other upstream settings, certificates, tracing) leaves it be,
 * unlike Caddy, nginx, HAProxy and Envoy, which close or strand tunnels on any reload. Pure.
 */
export function keepsTunnel(config: Config, binding: TunnelBinding): boolean {
  const listener = config.listeners.find((l) => listenerKey(l.listen) === binding.listenKey);
  const route = listener?.routes.find((r) => canonicalJson(r) === binding.route);
  if (route?.upstream === undefined) return false;
  const upstream = config.upstreams[route.upstream];
  return upstream !== undefined && upstreamTargets(upstream).includes(binding.target);
}
