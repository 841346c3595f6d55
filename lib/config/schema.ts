import { z } from 'zod';
import { parseListenAddress } from './address.js';

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
/** A field value: no CR, LF or NUL, so a config can never inject a header or split a response. */
const HeaderValueSchema = z.string().regex(/^[^\r\n\0]*$/, 'header value must not contain CR, LF or NUL');
const HeadersSchema = z.record(HeaderNameSchema, HeaderValueSchema);

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

export const RespondSchema = z.strictObject({
  status: z.int().min(100).max(599),
  body: z.string().default(''),
  headers: HeadersSchema.default({}),
});

/** The actions a route can take; a route has exactly one. */
export const ROUTE_ACTIONS = ['respond'] as const;

export const RouteSchema = z
  .strictObject({
    path_prefix: z.string().startsWith('/', 'must start with /').regex(/^[^\s?#]*$/, 'must not contain whitespace, ? or #'),
    host: z.string().min(1).regex(/^[^\s/]+$/, 'must be a host name without scheme or path').optional(),
    methods: z.array(z.enum(HTTP_METHODS)).min(1).optional(),
    respond: RespondSchema.optional(),
  })
  .superRefine((route, ctx) => {
    const present = ROUTE_ACTIONS.filter((action) => route[action] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a route needs exactly one of: ${ROUTE_ACTIONS.join(', ')}` });
    }
  });

export const ListenerSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, _ . -'),
  listen: ListenAddressSchema,
  routes: z.array(RouteSchema).default([]),
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

export const TracingSchema = z.strictObject({
  service_name: z.string().min(1).default('hotconf'),
  exporter: z.enum(['none', 'console', 'otlp-http']).default('otlp-http'),
  endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).default('http://127.0.0.1:4318/v1/traces'),
  /** Secret: redacted in logs and `/config`. */
  headers: HeadersSchema.default({}),
  sample_ratio: z.number().min(0).max(1).default(1),
  batch: BatchSchema.prefault({}),
});

export const AdminSchema = z.strictObject({
  listen: ListenAddressSchema.default('127.0.0.1:9901'),
  /**
   * File holding the bearer token the admin API requires (read once at start; relative paths
   * resolve against the working directory). Required for a non-loopback `listen` unless
   * `HOTCONF_ADMIN_TOKEN` is set.
   */
  token_file: z.string().min(1).optional(),
});

export const ConfigSchema = z
  .strictObject({
    admin: AdminSchema.prefault({}),
    shutdown_timeout_ms: z.int().min(0).max(3_600_000).default(10000),
    tracing: TracingSchema.optional(),
    listeners: z.array(ListenerSchema),
  })
  .superRefine((config, ctx) => {
    const names = new Map<string, number>();
    const addresses = new Map<string, number>();
    config.listeners.forEach((listener, i) => {
      const sameName = names.get(listener.name);
      if (sameName !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'name'], message: `duplicate listener name "${listener.name}" (also listeners.${sameName}.name)` });
      } else names.set(listener.name, i);
      const sameAddress = addresses.get(listener.listen);
      if (sameAddress !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'listen'], message: `address ${listener.listen} is already used by listeners.${sameAddress}` });
      } else addresses.set(listener.listen, i);
      if (listener.listen === config.admin.listen) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'listen'], message: `address ${listener.listen} is the admin address` });
      }
    });
  });

/** A validated, defaults-filled, deeply frozen config. */
export type Config = z.infer<typeof ConfigSchema>;
export type ListenerConfig = Config['listeners'][number];
export type RouteConfig = ListenerConfig['routes'][number];
export type RespondConfig = z.infer<typeof RespondSchema>;
export type TracingConfig = z.infer<typeof TracingSchema>;
