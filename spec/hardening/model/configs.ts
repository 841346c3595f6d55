/**
 * The model's view of a config: small abstract specs drawn from small pools (so reloads reuse
 * resources, repeat configs and collide on ports), how to render them as real documents, how to
 * corrupt them, and what the model expects of them: which resources provisioning acquires (and
 * creates) in which order, and what each listener answers, proxied routes included.
 *
 * Adding a resource kind: give `ConfigSpec` its section, render it in `renderConfig`, and
 * list its acquires in `plannedAcquires` in the order `provision()` runs them.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { HEALTH_CHECKER_KIND, TARGET_HEALTH_KIND } from '../../../lib/resources/health.js';
import { HTTP_STACK_KIND } from '../../../lib/resources/http-stack.js';
import { LISTENER_KIND } from '../../../lib/resources/listener.js';
import { TRACER_PROVIDER_KIND } from '../../../lib/resources/tracing.js';
import { UPSTREAM_POOL_KIND } from '../../../lib/resources/upstream.js';

/** A route answering from the config. */
export interface RespondSpec {
  type: 'respond';
  status: number;
  body: string;
}

/** A route proxying to the upstream of that name (one of the config's). */
export interface ProxySpec {
  type: 'proxy';
  upstream: string;
  strip: boolean;
}

export interface RouteSpec {
  prefix: string;
  host: string | undefined;
  action: RespondSpec | ProxySpec;
}

/** An upstream section. Its targets are indices into `Pools.targets` (live ones first). */
export interface UpstreamSpec {
  name: string;
  /** Distinct target indices, in config order. */
  targets: number[];
  /** Index into `HEALTH_CHECKS`, or undefined for none (every target healthy). */
  healthCheck: number | undefined;
  /** Index into `POOL_SETTINGS`. */
  pool: number;
  retries: number;
  /** Both pick in round-robin order when requests come one at a time. */
  balancing: 'round_robin' | 'least_request';
}

export interface ListenerSpec {
  /** Index into the port pool. */
  port: number;
  name: string;
  routes: RouteSpec[];
}

export interface ConfigSpec {
  shutdownMs: number;
  /** Index into `tracingPool`, or undefined for no tracing. */
  tracing: number | undefined;
  /** Sorted by name (names are unique): one spec per config. */
  upstreams: UpstreamSpec[];
  listeners: ListenerSpec[];
}

/** How a spec is written out: each style of one spec must hash the same. */
export interface RenderStyle {
  format: 'yaml' | 'json';
  reverseKeys: boolean;
  explicitDefaults: boolean;
  comment: boolean;
}

/** The world a spec is rendered into: real ports, the OTLP receiver's URL, upstream targets. */
export interface Pools {
  ports: readonly number[];
  otlpUrl: string;
  /**
   * Upstream target origins, `TARGET_POOL_SIZE` of them: the first `LIVE_TARGETS` are test
   * upstreams answering `liveBody`, the others are ports nothing listens on.
   */
  targets: readonly string[];
}

export const PORT_POOL_SIZE = 4;
export const TARGET_POOL_SIZE = 4;
export const LIVE_TARGETS = 2;

/** True when target `index` of the pool answers (its health checks pass, its connections succeed). */
export function isLive(index: number): boolean {
  return index < LIVE_TARGETS;
}

/** What live target `index` answers to a proxied request: who it is and what it received. */
export function liveBody(index: number, method: string, url: string, bodyBytes: number): string {
  return `target-${index} ${method} ${url} ${bodyBytes}`;
}

/**
 * Health checks: frequent probes and low thresholds so a new state of a dead target turns
 * unhealthy within a few tens of ms; generous probe timeouts so a live target never fails one
 * on a busy machine. The two differ, so a change between them rebuilds the checker.
 */
const HEALTH_CHECKS: readonly Record<string, unknown>[] = [
  { interval_ms: 25, timeout_ms: 5000, unhealthy_threshold: 1, healthy_threshold: 1 },
  { interval_ms: 40, timeout_ms: 5000, unhealthy_threshold: 2, healthy_threshold: 2, expected_status: '2xx' },
];

/** Connection settings: each is its own pool per target. Keepalive below the test upstreams' 5 s. */
const POOL_SETTINGS: readonly { connect_timeout_ms: number; pool: { connections: number; keep_alive_timeout_ms: number } }[] = [
  { connect_timeout_ms: 2000, pool: { connections: 4, keep_alive_timeout_ms: 2000 } },
  { connect_timeout_ms: 3000, pool: { connections: 2, keep_alive_timeout_ms: 1000 } },
];

/** Distinct tracing sections (their canonical forms differ, so each is its own resource). */
export function tracingPool(pools: Pools): Record<string, unknown>[] {
  return [
    { exporter: 'none', service_name: 'alpha' },
    { exporter: 'none', service_name: 'beta', sample_ratio: 0.5 },
    {
      exporter: 'otlp-http',
      endpoint: pools.otlpUrl,
      service_name: 'gamma',
      headers: { authorization: 'Bearer model-secret' },
      batch: { scheduled_delay_ms: 100 },
    },
  ];
}
const TRACING_POOL_SIZE = 3;

const PREFIXES = ['/', '/a', '/a/b', '/b'];
const HOSTS = [undefined, 'x.test', '*.y.test'];
const BODIES = ['alpha', 'beta', 'gamma', ''];
const NAMES = ['web', 'api', 'edge'];

/** The requests every listener is probed with after each command. */
export const PROBES: readonly { path: string; host: string }[] = [
  { path: '/a/b/c', host: 'x.test' },
  { path: '/b/x', host: 'q.y.test' },
  { path: '/', host: 'other.test' },
];

const UPSTREAM_NAMES = ['api', 'auth', 'files'];

const respondArb: fc.Arbitrary<RespondSpec> = fc.record({
  type: fc.constant('respond' as const),
  status: fc.constantFrom(200, 201, 404, 503),
  body: fc.constantFrom(...BODIES),
});

/** A proxy route names an upstream by its index among the config's (fixed up in `configArb`). */
const proxyArb = fc.record({ type: fc.constant('proxy' as const), upstream: fc.nat({ max: 2 }), strip: fc.boolean() });

const routeArb = fc.record({
  prefix: fc.constantFrom(...PREFIXES),
  host: fc.constantFrom(...HOSTS),
  action: fc.oneof({ arbitrary: respondArb, weight: 3 }, { arbitrary: proxyArb, weight: 2 }),
});

const upstreamArb: fc.Arbitrary<UpstreamSpec> = fc.record({
  name: fc.constantFrom(...UPSTREAM_NAMES),
  targets: fc.uniqueArray(fc.nat({ max: TARGET_POOL_SIZE - 1 }), { minLength: 1, maxLength: 3 }),
  healthCheck: fc.option(fc.nat({ max: HEALTH_CHECKS.length - 1 }), { nil: undefined, freq: 2 }),
  pool: fc.nat({ max: POOL_SETTINGS.length - 1 }),
  retries: fc.nat({ max: 2 }),
  balancing: fc.constantFrom('round_robin' as const, 'least_request' as const),
});

export const configArb: fc.Arbitrary<ConfigSpec> = fc
  .record({
    shutdownMs: fc.constantFrom(1000, 2000),
    tracing: fc.option(fc.nat({ max: TRACING_POOL_SIZE - 1 }), { nil: undefined, freq: 3 }),
    upstreams: fc.oneof(
      { arbitrary: fc.constant([]), weight: 1 },
      { arbitrary: fc.uniqueArray(upstreamArb, { minLength: 1, maxLength: 2, selector: (u) => u.name }), weight: 3 },
    ),
    listeners: fc
      .uniqueArray(
        fc.record({ port: fc.nat({ max: PORT_POOL_SIZE - 1 }), name: fc.constantFrom(...NAMES), routes: fc.array(routeArb, { minLength: 1, maxLength: 3 }) }),
        {
          minLength: 1,
          maxLength: 3,
          selector: (l) => l.port,
        },
      )
      // Names must be unique too: suffix the port index.
      .map((listeners) => listeners.map((l) => ({ ...l, name: `${l.name}-${l.port}` }))),
  })
  .map(({ upstreams, listeners, ...rest }) => {
    const sorted = [...upstreams].sort((a, b) => a.name.localeCompare(b.name));
    // A proxy route names one of the config's upstreams; without any, it answers instead.
    const route = (r: { prefix: string; host: string | undefined; action: RespondSpec | { type: 'proxy'; upstream: number; strip: boolean } }): RouteSpec => {
      if (r.action.type === 'respond') return { ...r, action: r.action };
      if (sorted.length === 0) return { ...r, action: { type: 'respond', status: 200, body: 'alpha' } };
      return { ...r, action: { type: 'proxy', upstream: sorted[r.action.upstream % sorted.length]!.name, strip: r.action.strip } };
    };
    return { ...rest, upstreams: sorted, listeners: listeners.map((l) => ({ ...l, routes: l.routes.map(route) })) };
  });

export const styleArb: fc.Arbitrary<RenderStyle> = fc.record({
  format: fc.constantFrom('yaml', 'json'),
  reverseKeys: fc.boolean(),
  explicitDefaults: fc.boolean(),
  comment: fc.boolean(),
});

/** Equal specs are the same config; different specs are different configs. */
export function specKey(spec: ConfigSpec): string {
  return JSON.stringify(spec);
}

/** The config object a spec stands for (before rendering choices). */
export function configObject(
  spec: ConfigSpec,
  pools: Pools,
  style: Pick<RenderStyle, 'explicitDefaults'> = { explicitDefaults: false },
): Record<string, unknown> {
  const defaults = style.explicitDefaults;
  const action = (a: RespondSpec | ProxySpec): Record<string, unknown> =>
    a.type === 'respond'
      ? { respond: { status: a.status, body: a.body, ...(defaults ? { headers: {} } : {}) } }
      : { upstream: a.upstream, ...(a.strip || defaults ? { strip_prefix: a.strip } : {}) };
  const config: Record<string, unknown> = {
    shutdown_timeout_ms: spec.shutdownMs,
    listeners: spec.listeners.map((l) => ({
      name: l.name,
      listen: `127.0.0.1:${pools.ports[l.port]}`,
      routes: l.routes.map((r) => ({ path_prefix: r.prefix, ...(r.host === undefined ? {} : { host: r.host }), ...action(r.action) })),
    })),
  };
  if (spec.tracing !== undefined) config.tracing = { ...tracingPool(pools)[spec.tracing] };
  if (spec.upstreams.length > 0 || defaults) {
    config.upstreams = Object.fromEntries(
      spec.upstreams.map((u) => [
        u.name,
        {
          targets: u.targets.map((t) => pools.targets[t]),
          ...(u.balancing !== 'round_robin' || defaults ? { load_balancing: u.balancing } : {}),
          retries: u.retries,
          ...structuredClone(POOL_SETTINGS[u.pool]),
          ...(defaults ? { timeout_ms: 30_000, forwarded_header: 'none' } : {}),
          ...(u.healthCheck === undefined ? {} : { health_check: { ...HEALTH_CHECKS[u.healthCheck], ...(defaults ? { path: '/healthz' } : {}) } }),
        },
      ]),
    );
  }
  if (defaults) {
    config.admin = { listen: '127.0.0.1:9901' };
    if (config.tracing) (config.tracing as Record<string, unknown>).sample_ratio ??= 1;
  }
  return config;
}

/** Render a config object as YAML or JSON text in the given style. */
export function renderObject(config: unknown, style: RenderStyle): string {
  const ordered = style.reverseKeys ? reverseKeys(config) : config;
  if (style.format === 'json') return JSON.stringify(ordered, null, 2);
  return `${style.comment ? '# rendered by the model\n' : ''}${stringify(ordered)}`;
}

export function renderConfig(spec: ConfigSpec, pools: Pools, style: RenderStyle): string {
  return renderObject(configObject(spec, pools, style), style);
}

function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reverseKeys(v)]),
  );
}

/** One way to break a valid document, and the error path the daemon must report for it. */
export type Corruption =
  | { type: 'truncate'; fraction: number }
  | { type: 'wrong-type'; where: 'shutdown' | 'status' }
  | { type: 'unknown-key'; where: 'root' | 'listener' }
  | { type: 'bad-address'; address: string }
  | { type: 'header-injection' }
  | { type: 'prototype-key' }
  | { type: 'unknown-upstream' }
  | { type: 'target-credentials' }
  | { type: 'endpoint-credentials' };

export const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({ type: fc.constant('truncate' as const), fraction: fc.double({ min: 0.05, max: 0.95, noNaN: true }) }),
  fc.record({ type: fc.constant('wrong-type' as const), where: fc.constantFrom('shutdown' as const, 'status' as const) }),
  fc.record({ type: fc.constant('unknown-key' as const), where: fc.constantFrom('root' as const, 'listener' as const) }),
  fc.record({
    type: fc.constant('bad-address' as const),
    address: fc.constantFrom(
      '127.0.0.1',
      'localhost:99999',
      '[::1:80',
      'http://127.0.0.1:80',
      '127.0.0.1:-1',
      ':8080',
      '127.0.0.1:80:80',
      '256.1.1.1:80',
      '1.2.3.4.5:80',
    ),
  }),
  fc.record({ type: fc.constant('header-injection' as const) }),
  fc.record({ type: fc.constant('prototype-key' as const) }),
  fc.record({ type: fc.constant('unknown-upstream' as const) }),
  fc.record({ type: fc.constant('target-credentials' as const) }),
  fc.record({ type: fc.constant('endpoint-credentials' as const) }),
);

/** The corrupted text, and the error path the daemon must name ('' for the whole document). */
export function corrupt(spec: ConfigSpec, pools: Pools, style: RenderStyle, corruption: Corruption): { text: string; path: string } {
  const config = configObject(spec, pools, style);
  const listener = (config.listeners as Record<string, unknown>[])[0]!;
  const routes = listener.routes as Record<string, unknown>[];
  // Corruptions of a response need the first route to have one.
  if (routes[0]!.respond === undefined) routes[0] = { path_prefix: '/', respond: { status: 200, body: '' } };
  const respond = routes[0]!.respond as Record<string, unknown>;
  switch (corruption.type) {
    case 'truncate': {
      // A strict prefix of a JSON object never parses: its flow mapping is not closed.
      const text = JSON.stringify(config);
      return { text: text.slice(0, Math.max(1, Math.floor(text.length * corruption.fraction))), path: '' };
    }
    case 'wrong-type':
      if (corruption.where === 'shutdown') {
        config.shutdown_timeout_ms = 'soon';
        return { text: renderObject(config, style), path: 'shutdown_timeout_ms' };
      }
      respond.status = 'ok';
      return { text: renderObject(config, style), path: 'listeners.0.routes.0.respond.status' };
    case 'unknown-key':
      if (corruption.where === 'root') {
        config.extra_setting = true;
        return { text: renderObject(config, style), path: 'extra_setting' };
      }
      listener.extra_setting = true;
      return { text: renderObject(config, style), path: 'listeners.0.extra_setting' };
    case 'bad-address':
      listener.listen = corruption.address;
      return { text: renderObject(config, style), path: 'listeners.0.listen' };
    case 'header-injection':
      respond.headers = { 'x-model': 'a\r\nset-cookie: injected=1' };
      return { text: renderObject(config, style), path: 'listeners.0.routes.0.respond.headers.x-model' };
    case 'prototype-key':
      // JSON.parse keeps `__proto__` as an own key; YAML renders it as a plain key.
      listener.__proto__extra = true;
      return { text: renderObject(config, style).replace('__proto__extra', '__proto__'), path: 'listeners.0.__proto__' };
    case 'unknown-upstream':
      routes[0] = { path_prefix: '/', upstream: 'missing' };
      return { text: renderObject(config, style), path: 'listeners.0.routes.0.upstream' };
    case 'target-credentials':
      config.upstreams = { ...(config.upstreams as object), creds: { targets: [pools.targets[0]!.replace('http://', 'http://user:secret@')] } };
      return { text: renderObject(config, style), path: 'upstreams.creds.targets.0' };
    case 'endpoint-credentials':
      config.tracing = { exporter: 'none', endpoint: pools.otlpUrl.replace('http://', 'http://user:secret@') };
      return { text: renderObject(config, style), path: 'tracing.endpoint' };
  }
}

/** One `registry.acquire` provisioning makes, in order. */
export interface Acquire {
  kind: string;
  /** The model's key: equal keys of one kind are one resource. */
  key: string;
  /** Config path a failure here is reported at. */
  path: string;
  /** The key is not live before this acquire (neither held by the active generation nor acquired earlier in this provisioning): it runs `create`. */
  create: boolean;
}

/** The model's key of the listener on pool port `port`. */
export function listenerKey(port: number): string {
  return `listener-${port}`;
}

/** The model's key of the health state of pool target `target` within upstream `name`. */
export function targetHealthKey(name: string, target: number): string {
  return `${name} target-${target}`;
}

/**
 * Every acquire provisioning `spec` makes, in `provision()` order: tracing; per upstream (in
 * document order: reversed by `reverseKeys`) its targets' health states and its checker when it
 * has a health check, then its targets' pools; then per listener in config order its socket and its protocol stack.
 */
export function plannedAcquires(spec: ConfigSpec, order: Pick<RenderStyle, 'reverseKeys'> = { reverseKeys: false }): Omit<Acquire, 'create'>[] {
  const out: Omit<Acquire, 'create'>[] = [];
  if (spec.tracing !== undefined) out.push({ kind: TRACER_PROVIDER_KIND, key: `tracing-${spec.tracing}`, path: 'tracing' });
  const upstreams = order.reverseKeys ? [...spec.upstreams].reverse() : spec.upstreams;
  for (const u of upstreams) {
    const at = `upstreams.${u.name}`;
    if (u.healthCheck !== undefined) {
      for (const [i, t] of u.targets.entries()) out.push({ kind: TARGET_HEALTH_KIND, key: targetHealthKey(u.name, t), path: `${at}.targets.${i}` });
      out.push({ kind: HEALTH_CHECKER_KIND, key: `${u.name} [${u.targets.join(',')}] hc-${u.healthCheck}`, path: `${at}.health_check` });
    }
    for (const [i, t] of u.targets.entries()) out.push({ kind: UPSTREAM_POOL_KIND, key: `target-${t} pool-${u.pool}`, path: `${at}.targets.${i}` });
  }
  for (const [i, l] of spec.listeners.entries()) {
    out.push({ kind: LISTENER_KIND, key: listenerKey(l.port), path: `listeners.${i}.listen` });
    out.push({ kind: HTTP_STACK_KIND, key: `stack-${l.port}`, path: `listeners.${i}` });
  }
  return out;
}

/**
 * The acquires provisioning `next` (rendered in `order`) makes when `active` is the only live
 * generation, in provisioning order, each marked with whether it creates.
 */
export function acquiresOf(active: ConfigSpec | undefined, next: ConfigSpec, order: Pick<RenderStyle, 'reverseKeys'> = { reverseKeys: false }): Acquire[] {
  const id = (a: Omit<Acquire, 'create'>) => `${a.kind}\0${a.key}`;
  const live = new Set(active ? plannedAcquires(active).map(id) : []);
  return plannedAcquires(next, order).map((a) => {
    const create = !live.has(id(a));
    live.add(id(a));
    return { ...a, create };
  });
}

/** One request the model can predict. */
export interface ModelRequest {
  method: 'GET' | 'POST';
  path: string;
  host: string;
  bodyBytes: number;
}

/** The first route whose prefix and host match, if any. */
export function matchRoute(listener: ListenerSpec, path: string, host: string): RouteSpec | undefined {
  return listener.routes.find(
    (route) =>
      path.startsWith(route.prefix) &&
      (route.host === undefined ||
        (route.host.startsWith('*.') ? host.endsWith(route.host.slice(1)) && host.length > route.host.length - 1 : host === route.host)),
  );
}

/**
 * What a listener answers: the first matching route's response, a proxied one as `expectedProxy`
 * says, else 404. `cursors` is the round-robin position per upstream of the active generation
 * (advanced by proxied requests).
 */
export function expectedResponse(
  spec: ConfigSpec,
  listener: ListenerSpec,
  request: ModelRequest,
  cursors: Record<string, number>,
): { status: number; body: string } {
  const route = matchRoute(listener, request.path, request.host);
  if (!route) return { status: 404, body: '{"error":"no route"}' };
  if (route.action.type === 'respond') return { status: route.action.status, body: route.action.body };
  const { upstream: name, strip } = route.action;
  let path = request.path;
  if (strip) {
    path = path.slice(route.prefix.length);
    if (!path.startsWith('/')) path = `/${path}`;
  }
  return expectedProxy(spec.upstreams.find((u) => u.name === name)!, { ...request, path }, cursors);
}

/**
 * A proxied request, once every health state has settled (targets with a health check are
 * healthy exactly when live; without one all are). As `Balancer` and `proxyRequest`: each
 * attempt picks the next healthy untried target after the previous pick; a dead target refuses
 * the connection and the request moves on while `retries` allow; 503 when no target is healthy
 * at all, 502 when the attempts ran out.
 */
function expectedProxy(upstream: UpstreamSpec, request: ModelRequest, cursors: Record<string, number>): { status: number; body: string } {
  const n = upstream.targets.length;
  const healthy = (i: number) => upstream.healthCheck === undefined || isLive(upstream.targets[i]!);
  const tried = new Set<number>();
  for (let attempt = 0; ; attempt += 1) {
    const cursor = cursors[upstream.name] ?? 0;
    let pick: number | undefined;
    for (let step = 0; step < n && pick === undefined; step += 1) {
      const i = (cursor + step) % n;
      if (healthy(i) && !tried.has(i)) pick = i;
    }
    if (pick === undefined) {
      return attempt === 0
        ? { status: 503, body: JSON.stringify({ error: 'no healthy upstream target', upstream: upstream.name }) }
        : { status: 502, body: JSON.stringify({ error: 'upstream connect error', upstream: upstream.name }) };
    }
    cursors[upstream.name] = (pick + 1) % n;
    tried.add(pick);
    const target = upstream.targets[pick]!;
    if (isLive(target)) return { status: 200, body: liveBody(target, request.method, request.path, request.bodyBytes) };
    if (attempt >= upstream.retries) return { status: 502, body: JSON.stringify({ error: 'upstream connect error', upstream: upstream.name }) };
  }
}
