import { isIP } from 'node:net';
import { z } from 'zod';
import { BindPlan, hostPatternProblem, parseListenAddress } from './address.js';

/**
 * The config schema: the single source of truth for config types (`Config = z.infer<...>`).
 * Every object is strict (unknown keys are errors, which also rejects `__proto__` and
 * `constructor` keys), and defaults are filled here so the canonical hash of a document with an
 * explicit default equals the hash of one without it.
 */

/** `HOST:PORT`; see `parseListenAddress`. */
export const ListenAddressSchema = z.string().superRefine((value, ctx) => {
  const parsed = parseListenAddress(value);
  if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
});

/** RFC 9110 field-name token. */
const HeaderNameSchema = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'invalid header name');
/**
 * A field value as Node's HTTP stack accepts it (`checkInvalidHeaderChar`: tab, space, visible
 * ASCII and Latin-1, nothing else): anything more passed validation and then failed every
 * response with a 500. No CR, LF or NUL among them, so a config can never inject a header.
 */
const HeaderValueSchema = z
  .string()
  .regex(
    /^[\t\x20-\x7e\x80-\xff]*$/,
    'header value may contain only tabs, spaces, visible ASCII and Latin-1 characters (no CR, LF, NUL or other control characters)',
  );

/**
 * Headers that frame the message or the connection: the HTTP stack sets them from what it
 * sends (a configured `content-length` would contradict the body, a `transfer-encoding` the
 * framing), so configuring one is an error.
 */
export const FRAMING_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'content-length',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Header name → value; names are case-insensitive, so two spellings of one name are a duplicate. */
const HeadersSchema = z.record(HeaderNameSchema, HeaderValueSchema).superRefine((headers, ctx) => {
  const seen = new Map<string, string>();
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (FRAMING_HEADERS.has(lower)) {
      ctx.addIssue({ code: 'custom', path: [name], message: `${lower} frames the message and is set by hotconf; it cannot be configured` });
    }
    const same = seen.get(lower);
    if (same !== undefined) ctx.addIssue({ code: 'custom', path: [name], message: `duplicate header (also ${same}): header names are case-insensitive` });
    else seen.set(lower, name);
  }
});

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

/** Statuses whose responses have no content (RFC 9110 sections 15.3.5, 15.3.6, 15.4.5). */
const NO_CONTENT_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);

export const RespondSchema = z
  .strictObject({
    /** A final status: an informational (1xx) one is not a response, and a client waits on for the real one. */
    status: z.int().min(200, 'must be a final status, 200-599 (a 1xx status is not a response)').max(599, 'must be a status, 200-599'),
    body: z.string().default(''),
    headers: HeadersSchema.default({}),
  })
  .superRefine((respond, ctx) => {
    if (NO_CONTENT_STATUSES.has(respond.status) && respond.body !== '') {
      ctx.addIssue({ code: 'custom', path: ['body'], message: `must be empty: a ${respond.status} response has no content` });
    }
  });

/** Statuses a redirect may answer with (RFC 9110 section 15.4). */
export const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;

/**
 * A redirect: either to the same request on another scheme, host or port (`scheme`, `host`,
 * `port`: each defaults to the request's; the path and query are kept), or to a fixed
 * `location`. `308` (permanent, method kept) by default.
 */
export const RedirectSchema = z
  .strictObject({
    scheme: z.enum(['http', 'https']).optional(),
    host: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/, 'must be a host name, an IPv4 address or a bracketed IPv6 address')
      .optional(),
    port: z.int().min(1).max(65535).optional(),
    location: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    status: z.union(REDIRECT_STATUSES.map((status) => z.literal(status)) as [z.ZodLiteral<301>, ...z.ZodLiteral<number>[]]).default(308),
  })
  .superRefine((redirect, ctx) => {
    const relative = redirect.scheme !== undefined || redirect.host !== undefined || redirect.port !== undefined;
    if (redirect.location !== undefined && relative) {
      ctx.addIssue({ code: 'custom', path: ['location'], message: 'a fixed location excludes scheme, host and port' });
    } else if (redirect.location === undefined && !relative) {
      ctx.addIssue({ code: 'custom', message: 'needs a location, or at least one of scheme, host, port' });
    }
  });

/** The actions a route can take; a route has exactly one. */
export const ROUTE_ACTIONS = ['respond', 'upstream', 'redirect'] as const;

/**
 * Listener and upstream names: metric and span labels, and (upstreams) the key in `upstreams`
 * that routes refer to.
 */
const NameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, _ . -');

/**
 * An absolute http:// or https:// URL, parsed once, guarded: `problem` adds its own checks on
 * the parsed URL. A value without a scheme (`127.0.0.1:9000`) is named as such: `new URL()` on
 * it throws, and the WHATWG parser reads `localhost:9000` as scheme `localhost:`.
 */
function httpUrl(problem: (url: URL) => string | undefined = () => undefined) {
  return z.string().superRefine((value, ctx) => {
    let message: string | undefined;
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value)) message = `must be an http:// or https:// URL, scheme included (http://${value}, not ${value})`;
    else if (!URL.canParse(value)) message = 'is not a valid URL';
    else {
      const url = new URL(value);
      message = url.protocol === 'http:' || url.protocol === 'https:' ? problem(url) : 'must be an http:// or https:// URL';
    }
    if (message) ctx.addIssue({ code: 'custom', message });
  });
}

export const RouteSchema = z
  .strictObject({
    path_prefix: z
      .string()
      .startsWith('/', 'must start with /')
      .regex(/^[^\s?#]*$/, 'must not contain whitespace, ? or #'),
    /** Matched against the request's `Host` (see `hostPatternProblem`). */
    host: z
      .string()
      .min(1)
      .superRefine((pattern, ctx) => {
        const problem = hostPatternProblem(pattern);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    methods: z.array(z.enum(HTTP_METHODS)).min(1).optional(),
    respond: RespondSchema.optional(),
    redirect: RedirectSchema.optional(),
    /** Name of an entry in `upstreams`. */
    upstream: NameSchema.optional(),
    /** Remove `path_prefix` from the path sent upstream (upstream routes only). */
    strip_prefix: z.boolean().default(false),
  })
  .superRefine((route, ctx) => {
    const present = ROUTE_ACTIONS.filter((action) => route[action] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a route needs exactly one of: ${ROUTE_ACTIONS.join(', ')}` });
    }
    if (route.strip_prefix && route.upstream === undefined) {
      ctx.addIssue({ code: 'custom', path: ['strip_prefix'], message: 'applies to upstream routes only' });
    }
  });

/** TLS versions a listener may require as its minimum. */
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
/** Application protocols a TLS listener may offer with ALPN. */
export const TLS_ALPN = ['h2', 'http/1.1'] as const;

/** A DNS name a certificate serves: `example.com`, or a one-label wildcard `*.example.com`. */
const ServerNameSchema = z
  .string()
  .regex(
    /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
    'must be a DNS name or a one-label wildcard (*.example.com)',
  );

/**
 * One certificate of a TLS listener. The files are read on every reload (relative paths resolve
 * against the working directory) and watched; the key file's contents are a secret, never logged
 * or shown.
 */
export const TlsCertificateSchema = z.strictObject({
  /** PEM chain: the leaf first, then intermediates. */
  cert_file: z.string().min(1),
  /** PEM private key of the leaf. */
  key_file: z.string().min(1),
  /** Names this certificate is chosen for by SNI; default: the certificate's DNS subject alternative names. */
  server_names: z.array(ServerNameSchema).min(1).optional(),
});

/** TLS termination of a listener; the first certificate is also the default (no SNI, unknown name). */
export const TlsSchema = z
  .strictObject({
    certificates: z.array(TlsCertificateSchema).min(1),
    min_version: z.enum(TLS_VERSIONS).default('TLSv1.2'),
    /** Protocols offered with ALPN; `[http/1.1]` turns HTTP/2 off. */
    alpn: z.array(z.enum(TLS_ALPN)).min(1).default(['h2', 'http/1.1']),
  })
  .superRefine((tls, ctx) => {
    if (new Set(tls.alpn).size !== tls.alpn.length) ctx.addIssue({ code: 'custom', path: ['alpn'], message: 'lists a protocol twice' });
  });

/** An IPv4 or IPv6 address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`). */
const CidrSchema = z.string().refine((value) => {
  const slash = value.indexOf('/');
  const family = isIP(slash < 0 ? value : value.slice(0, slash));
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = value.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}, 'must be an IP address or a CIDR block (10.0.0.0/8, fd00::/8)');

/**
 * Request headers never written to an access log, whatever `request_headers` asks: credentials
 * and session state (as Envoy's and Caddy's logs hide them). `redact_headers` adds to them.
 */
export const ACCESS_LOG_REDACTED_HEADERS: readonly string[] = ['authorization', 'cookie', 'set-cookie', 'proxy-authorization'];

/**
 * A listener's access log: one line per request, or per WebSocket tunnel at its end (nginx's
 * `access_log`, Caddy's `log`, Envoy's file access log). On by default, to stdout beside the
 * daemon's own events; `path` writes to that file instead (relative paths resolve against the
 * working directory), reopened on SIGUSR1 for logrotate.
 */
export const AccessLogSchema = z.strictObject({
  enabled: z.boolean().default(true),
  path: z.string().min(1).optional(),
  /** Keep the query string in `path` (it may carry tokens, so it is left out by default). */
  include_query: z.boolean().default(false),
  /** Request headers logged under `request_headers` (lowercased); a redacted one is logged as `[REDACTED]`. */
  request_headers: z.array(HeaderNameSchema).default([]),
  /** Headers redacted besides `ACCESS_LOG_REDACTED_HEADERS` (your API keys: `x-api-key`). */
  redact_headers: z.array(HeaderNameSchema).default([]),
});

export const ListenerSchema = z.strictObject({
  name: NameSchema,
  listen: ListenAddressSchema,
  tls: TlsSchema.optional(),
  routes: z.array(RouteSchema).default([]),
  /**
   * Peers (load balancers, CDNs) whose forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`,
   * `Forwarded`) are kept and extended; from any other peer they are replaced (Caddy's
   * `trusted_proxies`).
   */
  trusted_proxies: z.array(CidrSchema).default([]),
  /** Client connections open at once; more are closed as they are accepted (Node's `server.maxConnections`). */
  max_connections: z.int().min(1).max(1_000_000).default(4096),
  access_log: AccessLogSchema.prefault({}),
});

export const BatchSchema = z
  .strictObject({
    scheduled_delay_ms: z.int().min(1).default(5000),
    max_queue_size: z.int().min(1).default(2048),
    max_export_batch_size: z.int().min(1).default(512),
    export_timeout_ms: z.int().min(1).default(30000),
  })
  .superRefine((batch, ctx) => {
    if (batch.max_export_batch_size > batch.max_queue_size) {
      ctx.addIssue({ code: 'custom', path: ['max_export_batch_size'], message: 'must not exceed max_queue_size' });
    }
  });

/**
 * `service_name`, `exporter`, `endpoint` and `timeout_ms` have no default here: left unset, they
 * are filled from the standard `OTEL_*` variables, else defaulted, when the pipeline is built
 * (`resolveTracing` in lib/telemetry/otel-env.ts), as the OpenTelemetry SDKs let the config win.
 */
export const TracingSchema = z.strictObject({
  service_name: z.string().min(1).optional(),
  exporter: z.enum(['none', 'console', 'otlp-http', 'otlp-proto', 'otlp-grpc']).optional(),
  /** No credentials in the URL: it is shown in `/config` and logs; secrets go in `headers`. */
  endpoint: httpUrl((url) =>
    url.username || url.password
      ? 'must not contain credentials (user:password@): send them in tracing.headers (e.g. authorization), which are kept secret'
      : undefined,
  ).optional(),
  /** Secret: redacted in logs and `/config`. */
  headers: HeadersSchema.default({}),
  /** Budget of one export request (as `OTEL_EXPORTER_OTLP_TIMEOUT`), in ms; unset: `batch.export_timeout_ms`. */
  timeout_ms: z.int().min(1).max(600_000).optional(),
  sample_ratio: z.number().min(0).max(1).default(1),
  batch: BatchSchema.prefault({}),
});

/**
 * An upstream target: an http(s) origin (`http://127.0.0.1:9000`), no path, query, fragment or
 * credentials. Stored as written; `targetOrigin` gives the normalised origin used as key.
 */
const TargetSchema = httpUrl((url) =>
  url.pathname !== '/' || url.search || url.hash || url.username || url.password
    ? 'must be an origin (scheme://host:port) without path, query, fragment or credentials'
    : undefined,
);

/** `[200, 204]`, or a class like `"2xx"`. */
const ExpectedStatusSchema = z.union([z.array(z.int().min(100).max(599)).min(1), z.string().regex(/^[1-5]xx$/, 'must be a status class like "2xx"')]);

/** Active health checking of an upstream's targets (thresholds as Envoy's and nginx's). */
export const HealthCheckSchema = z.strictObject({
  path: z
    .string()
    .startsWith('/', 'must start with /')
    .regex(/^[^\s#]*$/, 'must not contain whitespace or #')
    .default('/healthz'),
  interval_ms: z.int().min(10).max(3_600_000).default(2000),
  timeout_ms: z.int().min(1).max(600_000).default(1000),
  healthy_threshold: z.int().min(1).max(100).default(2),
  unhealthy_threshold: z.int().min(1).max(100).default(3),
  expected_status: ExpectedStatusSchema.default([200]),
});

export const UpstreamPoolSchema = z.strictObject({
  /** Connections per target (undici `Pool` `connections`). */
  connections: z.int().min(1).max(10_000).default(64),
  /** Idle keepalive connections are closed after this (undici `keepAliveTimeout`, and its cap). */
  keep_alive_timeout_ms: z.int().min(1).max(3_600_000).default(4000),
});

export const LOAD_BALANCING = ['round_robin', 'random', 'least_request'] as const;
/** `via` (RFC 9110 section 7.6.3) or `forwarded` (RFC 7239) added to proxied requests; x-forwarded-* are always set. */
export const FORWARDED_HEADERS = ['none', 'via', 'forwarded'] as const;

export const UpstreamSchema = z
  .strictObject({
    targets: z.array(TargetSchema).min(1),
    load_balancing: z.enum(LOAD_BALANCING).default('round_robin'),
    /** Budget for the whole exchange with the upstream, retries included, in ms. */
    timeout_ms: z.int().min(1).max(3_600_000).default(30000),
    connect_timeout_ms: z.int().min(1).max(600_000).default(5000),
    pool: UpstreamPoolSchema.prefault({}),
    /** Extra attempts after a connect error, each to another target. */
    retries: z.int().min(0).max(10).default(1),
    forwarded_header: z.enum(FORWARDED_HEADERS).default('none'),
    /**
     * Request bodies up to this size are read whole before a connection is taken (nginx's
     * `proxy_request_buffering`, in memory), so a client that trickles its body holds none;
     * larger bodies stream once this much arrived. 0: every body streams.
     */
    request_buffer_bytes: z
      .int()
      .min(0)
      .max(64 * 1024 * 1024)
      .default(64 * 1024),
    /** Response bytes read ahead of a slow client (nginx's `proxy_buffering`, in memory): a response that fits frees its connection at once. */
    response_buffer_bytes: z
      .int()
      .min(1)
      .max(64 * 1024 * 1024)
      .default(64 * 1024),
    /** A client that sends no body byte, or reads no response byte, for this long is cut (nginx's `client_body_timeout`, `send_timeout`). */
    body_idle_timeout_ms: z.int().min(1).max(3_600_000).default(10_000),
    /** Requests that may wait for a busy target's connection (per target; Envoy's `max_pending_requests`); more get 503 at once. */
    max_pending_requests: z.int().min(0).max(1_000_000).default(1024),
    /** How long a request waits for a connection before it gets 503. */
    queue_timeout_ms: z.int().min(1).max(3_600_000).default(2000),
    health_check: HealthCheckSchema.optional(),
  })
  .superRefine((upstream, ctx) => {
    const seen = new Map<string, number>();
    upstream.targets.forEach((target, i) => {
      if (!URL.canParse(target)) return;
      const origin = new URL(target).origin;
      const same = seen.get(origin);
      if (same !== undefined) ctx.addIssue({ code: 'custom', path: ['targets', i], message: `duplicate target ${origin} (also targets.${same})` });
      else seen.set(origin, i);
    });
  });

/** Where the admin API binds when the config (or, for etcd, the command line) names no address. */
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:9901';

/** Drain budget of a replaced generation, and of a stop, when the config sets none (ms). */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

export const AdminSchema = z.strictObject({
  listen: ListenAddressSchema.default(DEFAULT_ADMIN_LISTEN),
  /**
   * File holding the bearer token the admin API requires (read once at start; relative paths
   * resolve against the working directory). Required for a non-loopback `listen` unless
   * `HOTCONF_ADMIN_TOKEN` is set.
   */
  token_file: z.string().min(1).optional(),
  /**
   * Host names the admin API answers to besides the loopback ones (`hotconf.internal`,
   * `10.0.0.5`, `[fd00::5]`), in `Host` and `Origin`: a DNS-rebinding defence (see
   * `AdminRequestGuard`). Unset: loopback names only when bound to loopback, any host otherwise.
   * Applied by every reload.
   */
  allowed_hosts: z
    .array(
      z.string().superRefine((host, ctx) => {
        const problem = host.includes('*') ? 'must be a host name, without wildcard' : hostPatternProblem(host);
        if (problem) ctx.addIssue({ code: 'custom', message: problem.replace(/^never matches: /, 'never matches a Host: ') });
      }),
    )
    .optional(),
});

export const ConfigSchema = z
  .strictObject({
    admin: AdminSchema.prefault({}),
    shutdown_timeout_ms: z.int().min(0).max(3_600_000).default(DEFAULT_SHUTDOWN_TIMEOUT_MS),
    /**
     * After a reload that removes a WebSocket tunnel's route (or its target), how long the tunnel
     * has, once both ends got a close frame 1001, before its sockets are destroyed, in ms.
     */
    tunnel_close_delay_ms: z.int().min(0).max(3_600_000).default(5000),
    tracing: TracingSchema.optional(),
    upstreams: z.record(NameSchema, UpstreamSchema).default({}),
    listeners: z.array(ListenerSchema),
  })
  .superRefine((config, ctx) => {
    const names = new Map<string, number>();
    const binds = new BindPlan();
    binds.add(config.admin.listen, 'admin');
    config.listeners.forEach((listener, i) => {
      const sameName = names.get(listener.name);
      if (sameName !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'name'],
          message: `duplicate listener name "${listener.name}" (also listeners.${sameName}.name)`,
        });
      } else names.set(listener.name, i);
      // Addresses are compared as they bind: `LOCALHOST:80` is `localhost:80`, which clashes with `127.0.0.1:80`.
      const path = ['listeners', i, 'listen'];
      const earlier = binds.add(listener.listen, `listeners.${i}`);
      if (earlier?.owner === 'admin') {
        const message =
          earlier.relation === 'same'
            ? `address ${listener.listen} is the admin address`
            : `address ${listener.listen} clashes with the admin address (${earlier.listen}): binding both fails`;
        ctx.addIssue({ code: 'custom', path, message });
      } else if (earlier) {
        const message =
          earlier.relation === 'same'
            ? `address ${listener.listen} is already used by ${earlier.owner}`
            : `address ${listener.listen} clashes with ${earlier.owner} (${earlier.listen}): binding both fails`;
        ctx.addIssue({ code: 'custom', path, message });
      }
      listener.routes.forEach((route, j) => {
        if (route.upstream !== undefined && !Object.hasOwn(config.upstreams, route.upstream)) {
          ctx.addIssue({ code: 'custom', path: ['listeners', i, 'routes', j, 'upstream'], message: `unknown upstream "${route.upstream}"` });
        }
      });
    });
  });

/** A validated, defaults-filled, deeply frozen config. */
export type Config = z.infer<typeof ConfigSchema>;
export type ListenerConfig = Config['listeners'][number];
export type RouteConfig = ListenerConfig['routes'][number];
export type RespondConfig = z.infer<typeof RespondSchema>;
export type RedirectConfig = z.infer<typeof RedirectSchema>;
export type TracingConfig = z.infer<typeof TracingSchema>;
export type UpstreamConfig = z.infer<typeof UpstreamSchema>;
export type HealthCheckConfig = z.infer<typeof HealthCheckSchema>;
export type TlsConfig = z.infer<typeof TlsSchema>;
export type AccessLogConfig = z.infer<typeof AccessLogSchema>;
export type TlsCertificateConfig = z.infer<typeof TlsCertificateSchema>;
