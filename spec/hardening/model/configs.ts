/**
 * The model's view of a config: small abstract specs drawn from small pools (so reloads reuse
 * resources, repeat configs and collide on ports), how to render them as real documents, how to
 * corrupt them, and what the model expects of them: which resources provisioning acquires (and
 * creates) in which order, and what each listener answers.
 *
 * Adding a resource kind: give `ConfigSpec` its section, render it in `renderConfig`, and
 * list its acquires in `acquiresOf` in the order `provision()` runs them.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { LISTENER_KIND } from '../../../lib/resources/listener.js';
import { TRACER_PROVIDER_KIND } from '../../../lib/resources/tracing.js';

export interface RouteSpec {
  prefix: string;
  host: string | undefined;
  status: number;
  body: string;
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
  listeners: ListenerSpec[];
}

/** How a spec is written out: each style of one spec must hash the same. */
export interface RenderStyle {
  format: 'yaml' | 'json';
  reverseKeys: boolean;
  explicitDefaults: boolean;
  comment: boolean;
}

/** The world a spec is rendered into: real ports and the OTLP receiver's URL. */
export interface Pools {
  ports: readonly number[];
  otlpUrl: string;
}

export const PORT_POOL_SIZE = 4;

/** Distinct tracing sections (their canonical forms differ, so each is its own resource). */
export function tracingPool(pools: Pools): Record<string, unknown>[] {
  return [
    { exporter: 'none', service_name: 'alpha' },
    { exporter: 'none', service_name: 'beta', sample_ratio: 0.5 },
    { exporter: 'otlp-http', endpoint: pools.otlpUrl, service_name: 'gamma', headers: { authorization: 'Bearer model-secret' }, batch: { scheduled_delay_ms: 100 } },
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

const routeArb: fc.Arbitrary<RouteSpec> = fc.record({
  prefix: fc.constantFrom(...PREFIXES),
  host: fc.constantFrom(...HOSTS),
  status: fc.constantFrom(200, 201, 404, 503),
  body: fc.constantFrom(...BODIES),
});

export const configArb: fc.Arbitrary<ConfigSpec> = fc.record({
  shutdownMs: fc.constantFrom(1000, 2000),
  tracing: fc.option(fc.nat({ max: TRACING_POOL_SIZE - 1 }), { nil: undefined, freq: 3 }),
  listeners: fc
    .uniqueArray(fc.record({ port: fc.nat({ max: PORT_POOL_SIZE - 1 }), name: fc.constantFrom(...NAMES), routes: fc.array(routeArb, { minLength: 1, maxLength: 3 }) }), {
      minLength: 1,
      maxLength: 3,
      selector: (l) => l.port,
    })
    // Names must be unique too: suffix the port index.
    .map((listeners) => listeners.map((l) => ({ ...l, name: `${l.name}-${l.port}` }))),
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
export function configObject(spec: ConfigSpec, pools: Pools, style: Pick<RenderStyle, 'explicitDefaults'> = { explicitDefaults: false }): Record<string, unknown> {
  const config: Record<string, unknown> = {
    shutdown_timeout_ms: spec.shutdownMs,
    listeners: spec.listeners.map((l) => ({
      name: l.name,
      listen: `127.0.0.1:${pools.ports[l.port]}`,
      routes: l.routes.map((r) => ({
        path_prefix: r.prefix,
        ...(r.host === undefined ? {} : { host: r.host }),
        respond: { status: r.status, body: r.body, ...(style.explicitDefaults ? { headers: {} } : {}) },
      })),
    })),
  };
  if (spec.tracing !== undefined) config.tracing = { ...tracingPool(pools)[spec.tracing] };
  if (style.explicitDefaults) {
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
  return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reverseKeys(v)]));
}

/** One way to break a valid document, and the error path the daemon must report for it. */
export type Corruption =
  | { type: 'truncate'; fraction: number }
  | { type: 'wrong-type'; where: 'shutdown' | 'status' }
  | { type: 'unknown-key'; where: 'root' | 'listener' }
  | { type: 'bad-address'; address: string }
  | { type: 'header-injection' }
  | { type: 'prototype-key' };

export const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({ type: fc.constant('truncate' as const), fraction: fc.double({ min: 0.05, max: 0.95, noNaN: true }) }),
  fc.record({ type: fc.constant('wrong-type' as const), where: fc.constantFrom('shutdown' as const, 'status' as const) }),
  fc.record({ type: fc.constant('unknown-key' as const), where: fc.constantFrom('root' as const, 'listener' as const) }),
  fc.record({ type: fc.constant('bad-address' as const), address: fc.constantFrom('127.0.0.1', 'localhost:99999', '[::1:80', 'http://127.0.0.1:80', '127.0.0.1:-1', ':8080', '127.0.0.1:80:80') }),
  fc.record({ type: fc.constant('header-injection' as const) }),
  fc.record({ type: fc.constant('prototype-key' as const) }),
);

/** The corrupted text, and the error path the daemon must name ('' for the whole document). */
export function corrupt(spec: ConfigSpec, pools: Pools, style: RenderStyle, corruption: Corruption): { text: string; path: string } {
  const config = configObject(spec, pools, style);
  const listener = (config.listeners as Record<string, unknown>[])[0]!;
  const respond = (listener.routes as { respond: Record<string, unknown> }[])[0]!.respond;
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
  }
}

/** One `registry.acquire` provisioning makes, in order. */
export interface Acquire {
  kind: string;
  key: string;
  /** Config path a failure here is reported at. */
  path: string;
  /** The key is not live before this reload: the acquire runs `create`. */
  create: boolean;
}

/**
 * The acquires provisioning `next` makes when `active` is the only live generation, in
 * provisioning order (tracing, then listeners in config order).
 */
export function acquiresOf(active: ConfigSpec | undefined, next: ConfigSpec, pools: Pools): Acquire[] {
  const out: Acquire[] = [];
  if (next.tracing !== undefined) out.push({ kind: TRACER_PROVIDER_KIND, key: `tracing-${next.tracing}`, path: 'tracing', create: active?.tracing !== next.tracing });
  next.listeners.forEach((l, i) => {
    const live = active?.listeners.some((a) => a.port === l.port) ?? false;
    out.push({ kind: LISTENER_KIND, key: `127.0.0.1:${pools.ports[l.port]}`, path: `listeners.${i}.listen`, create: !live });
  });
  return out;
}

/** What a listener answers: the first route whose prefix and host match, else 404. */
export function expectedResponse(listener: ListenerSpec, path: string, host: string): { status: number; body: string } {
  for (const route of listener.routes) {
    if (!path.startsWith(route.prefix)) continue;
    if (route.host !== undefined && !(route.host.startsWith('*.') ? host.endsWith(route.host.slice(1)) && host.length > route.host.length - 1 : host === route.host)) continue;
    return { status: route.status, body: route.body };
  }
  return { status: 404, body: '{"error":"no route"}' };
}
