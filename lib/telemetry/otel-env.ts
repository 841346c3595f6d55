import { parseKeyPairsIntoRecord } from '@opentelemetry/core';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../config/schema.js';
import { HotconfError } from '../core/errors.js';

/** Environment variables by name, as `process.env` holds them. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** The exporters a `tracing` section can name. */
export type TracingExporter = NonNullable<TracingConfig['exporter']>;

/**
 * A `tracing` section with every field the config may leave to the environment filled: what a
 * tracing pipeline is built from (and keyed by), so a change of the environment that changes
 * the pipeline is a different key. Headers are secret as the config's are.
 */
export interface ResolvedTracing {
  readonly service_name: string;
  readonly exporter: TracingExporter;
  readonly endpoint: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Budget of one export request, in ms. */
  readonly timeout_ms: number;
  /** Resource attributes besides `service.name` (from `OTEL_RESOURCE_ATTRIBUTES`). */
  readonly resource_attributes: Readonly<Record<string, string>>;
  readonly sample_ratio: number;
  readonly batch: TracingConfig['batch'];
}

/** An `OTEL_*` variable hotconf reads holds a value it cannot use; `variable` names it. */
export class OtelEnvError extends HotconfError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super('E_OTEL_ENV_INVALID', `environment variable ${variable}: ${message}`);
    this.variable = variable;
  }
}

/** Where a collector listens when neither the config nor the environment says, by transport. */
export const DEFAULT_OTLP_HTTP_ENDPOINT = 'http://127.0.0.1:4318/v1/traces';
export const DEFAULT_OTLP_GRPC_ENDPOINT = 'http://127.0.0.1:4317';
export const DEFAULT_SERVICE_NAME = 'hotconf';
/** The exporter when neither `exporter` nor `OTEL_EXPORTER_OTLP_*PROTOCOL` names one (hotconf's, not the spec's `http/protobuf`). */
export const DEFAULT_EXPORTER: TracingExporter = 'otlp-http';

/** `OTEL_EXPORTER_OTLP_PROTOCOL` values (OpenTelemetry's exporter spec) and the exporter each one means. */
const PROTOCOL_EXPORTERS: Readonly<Record<string, TracingExporter>> = {
  grpc: 'otlp-grpc',
  'http/protobuf': 'otlp-proto',
  'http/json': 'otlp-http',
};

/** The signal path OTLP/HTTP exporters append to `OTEL_EXPORTER_OTLP_ENDPOINT`. */
const TRACES_PATH = 'v1/traces';

/**
 * Fill what `section` leaves unset from the standard OpenTelemetry SDK variables, as the OTel
 * SDKs do (the config wins, a signal-specific `OTEL_EXPORTER_OTLP_TRACES_*` variable wins over
 * the generic `OTEL_EXPORTER_OTLP_*`; empty variables count as unset):
 *
 * - `exporter` ← `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` →
 *   `otlp-grpc`, `http/protobuf` → `otlp-proto`, `http/json` → `otlp-http`); else `otlp-http`.
 * - `endpoint` ← `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT`
 *   (+ `/v1/traces` for the HTTP exporters, as is for gRPC); else `http://127.0.0.1:4318/v1/traces`
 *   (HTTP) or `http://127.0.0.1:4317` (gRPC).
 * - `headers` ← `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, then the
 *   config's, merged per header name (`k=v,k2=v2`, percent-decoded).
 * - `timeout_ms` ← `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT` (ms); else
 *   `batch.export_timeout_ms`.
 * - `service_name` ← `OTEL_SERVICE_NAME`, then `service.name` in `OTEL_RESOURCE_ATTRIBUTES`;
 *   else `hotconf`. The other `OTEL_RESOURCE_ATTRIBUTES` entries (`k=v,k2=v2`, percent-decoded)
 *   become `resource_attributes`.
 *
 * Pure: reads only `env`. Unlike the SDKs, which drop a bad value with a diagnostic nobody sees,
 * a bad value is an error naming the variable, so the reload fails and the last good config
 * keeps serving.
 *
 * @throws OtelEnvError for an unknown protocol, an endpoint that is not an http(s) URL, a timeout
 *   that is not a positive number, or `OTEL_RESOURCE_ATTRIBUTES` entries that are not `key=value`
 */
export function resolveTracing(section: TracingConfig, env: Environment): ResolvedTracing {
  const exporter = section.exporter ?? envProtocol(env) ?? DEFAULT_EXPORTER;
  const attributes = resourceAttributes(env);
  const { [ATTR_SERVICE_NAME]: attributeServiceName, ...resource_attributes } = attributes;
  return {
    service_name: section.service_name ?? variable(env, 'OTEL_SERVICE_NAME') ?? attributeServiceName ?? DEFAULT_SERVICE_NAME,
    exporter,
    endpoint: section.endpoint ?? envEndpoint(env, exporter) ?? (exporter === 'otlp-grpc' ? DEFAULT_OTLP_GRPC_ENDPOINT : DEFAULT_OTLP_HTTP_ENDPOINT),
    headers: {
      ...parseKeyPairsIntoRecord(variable(env, 'OTEL_EXPORTER_OTLP_HEADERS')),
      ...parseKeyPairsIntoRecord(variable(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS')),
      ...section.headers,
    },
    timeout_ms:
      section.timeout_ms ??
      envTimeout(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ??
      envTimeout(env, 'OTEL_EXPORTER_OTLP_TIMEOUT') ??
      section.batch.export_timeout_ms,
    resource_attributes,
    sample_ratio: section.sample_ratio,
    batch: section.batch,
  };
}

/** `env[name]` trimmed; undefined when unset or blank (as the SDK's `getStringFromEnv`). */
function variable(env: Environment, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function envProtocol(env: Environment): TracingExporter | undefined {
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const value = variable(env, name);
    if (value === undefined) continue;
    const exporter = Object.hasOwn(PROTOCOL_EXPORTERS, value) ? PROTOCOL_EXPORTERS[value] : undefined;
    if (!exporter) throw new OtelEnvError(name, `must be one of ${Object.keys(PROTOCOL_EXPORTERS).join(', ')} (got "${value}")`);
    return exporter;
  }
  return undefined;
}

function envEndpoint(env: Environment, exporter: TracingExporter): string | undefined {
  const specific = variable(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  if (specific !== undefined) return httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specific);
  const base = variable(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (base === undefined) return undefined;
  httpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', base);
  if (exporter === 'otlp-grpc') return base;
  return `${base.endsWith('/') ? base : `${base}/`}${TRACES_PATH}`;
}

function httpUrl(name: string, value: string): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') throw new OtelEnvError(name, 'must be an http:// or https:// URL');
  return value;
}

function envTimeout(env: Environment, name: string): number | undefined {
  const value = variable(env, name);
  if (value === undefined) return undefined;
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms <= 0) throw new OtelEnvError(name, `must be a number of milliseconds greater than 0 (got "${value}")`);
  return ms;
}

/** `OTEL_RESOURCE_ATTRIBUTES` parsed as the SDK's env detector does: `k=v` pairs, `,` and `=` percent-encoded. */
function resourceAttributes(env: Environment): Record<string, string> {
  const name = 'OTEL_RESOURCE_ATTRIBUTES';
  const raw = variable(env, name);
  const out: Record<string, string> = {};
  if (raw === undefined) return out;
  for (const entry of raw.split(',')) {
    if (entry.trim() === '') continue;
    const parts = entry.split('=');
    const key = parts[0]?.trim();
    if (parts.length !== 2 || !key) throw new OtelEnvError(name, `entry "${entry}" is not key=value (percent-encode , and = in keys and values)`);
    try {
      out[decodeURIComponent(key)] = decodeURIComponent(parts[1]!.trim());
    } catch {
      throw new OtelEnvError(name, `entry "${entry}" is not valid percent-encoding`);
    }
  }
  return out;
}
