import { expect } from 'chai';
import { TracingSchema } from '../../lib/config/schema.js';
import { type Environment, OtelEnvError, resolveTracing } from '../../lib/telemetry/otel-env.js';

/** `tracing` as the schema leaves it (defaults filled, the env-fillable fields unset unless given). */
function section(fields: Record<string, unknown> = {}) {
  return TracingSchema.parse(fields);
}

function errorOf(fn: () => unknown): OtelEnvError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(OtelEnvError);
    expect((error as OtelEnvError).code).to.equal('E_OTEL_ENV_INVALID');
    return error as OtelEnvError;
  }
  throw new Error('expected resolveTracing to throw');
}

describe('resolveTracing: OTEL_* variables fill what the tracing section leaves unset', () => {
  it('defaults without config or environment: otlp-http to 127.0.0.1:4318, service hotconf, the batch export timeout', () => {
    expect(resolveTracing(section(), {})).to.deep.include({
      exporter: 'otlp-http',
      endpoint: 'http://127.0.0.1:4318/v1/traces',
      service_name: 'hotconf',
      headers: {},
      timeout_ms: 30_000,
      resource_attributes: {},
      sample_ratio: 1,
    });
    expect(resolveTracing(section({ exporter: 'otlp-grpc' }), {}).endpoint).to.equal('http://127.0.0.1:4317');
  });

  it('fills every unset field from the environment', () => {
    const env: Environment = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=t1,authorization=Bearer%20abc',
      OTEL_EXPORTER_OTLP_TIMEOUT: '7000',
      OTEL_SERVICE_NAME: 'edge',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=a%2Cb',
    };
    expect(resolveTracing(section(), env)).to.deep.include({
      exporter: 'otlp-proto',
      endpoint: 'http://collector:4318/v1/traces',
      headers: { 'x-tenant': 't1', authorization: 'Bearer abc' },
      timeout_ms: 7000,
      service_name: 'edge',
      resource_attributes: { 'deployment.environment': 'prod', team: 'a,b' },
    });
  });

  it('lets the config win over the environment, field by field and header by header', () => {
    const env: Environment = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=env,x-env-only=1',
      OTEL_EXPORTER_OTLP_TIMEOUT: '7000',
      OTEL_SERVICE_NAME: 'from-env',
    };
    const config = section({
      exporter: 'otlp-http',
      endpoint: 'http://mine:4318/v1/traces',
      headers: { 'x-tenant': 'config' },
      timeout_ms: 1234,
      service_name: 'from-config',
    });
    expect(resolveTracing(config, env)).to.deep.include({
      exporter: 'otlp-http',
      endpoint: 'http://mine:4318/v1/traces',
      headers: { 'x-tenant': 'config', 'x-env-only': '1' },
      timeout_ms: 1234,
      service_name: 'from-config',
    });
  });

  it('prefers the traces-specific variables over the generic ones', () => {
    const env: Environment = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://specific:4317',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=generic,b=generic',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'a=specific',
      OTEL_EXPORTER_OTLP_TIMEOUT: '7000',
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '9000',
    };
    expect(resolveTracing(section(), env)).to.deep.include({
      exporter: 'otlp-grpc',
      endpoint: 'http://specific:4317',
      headers: { a: 'specific', b: 'generic' },
      timeout_ms: 9000,
    });
  });

  it('appends /v1/traces to the generic endpoint for OTLP/HTTP only, and takes the traces endpoint as is', () => {
    const generic = (exporter: string, endpoint: string) => resolveTracing(section({ exporter }), { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }).endpoint;
    expect(generic('otlp-http', 'http://c:4318')).to.equal('http://c:4318/v1/traces');
    expect(generic('otlp-proto', 'https://c/otlp/')).to.equal('https://c/otlp/v1/traces');
    expect(generic('otlp-grpc', 'http://c:4317')).to.equal('http://c:4317');
    expect(resolveTracing(section(), { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom' }).endpoint).to.equal('http://c:4318/custom');
  });

  it('takes service.name from OTEL_RESOURCE_ATTRIBUTES when OTEL_SERVICE_NAME is unset, and OTEL_SERVICE_NAME over it', () => {
    const attributes = 'service.name=from-attributes,zone=z1';
    expect(resolveTracing(section(), { OTEL_RESOURCE_ATTRIBUTES: attributes })).to.deep.include({
      service_name: 'from-attributes',
      resource_attributes: { zone: 'z1' },
    });
    expect(resolveTracing(section(), { OTEL_RESOURCE_ATTRIBUTES: attributes, OTEL_SERVICE_NAME: 'named' }).service_name).to.equal('named');
  });

  it('treats empty and blank variables as unset', () => {
    const blank: Environment = { OTEL_EXPORTER_OTLP_PROTOCOL: '', OTEL_EXPORTER_OTLP_ENDPOINT: ' ', OTEL_SERVICE_NAME: '', OTEL_EXPORTER_OTLP_TIMEOUT: '' };
    expect(resolveTracing(section(), blank)).to.deep.include({
      exporter: 'otlp-http',
      endpoint: 'http://127.0.0.1:4318/v1/traces',
      service_name: 'hotconf',
      timeout_ms: 30_000,
    });
  });

  it('rejects a value it cannot use, naming the variable', () => {
    expect(errorOf(() => resolveTracing(section(), { OTEL_EXPORTER_OTLP_PROTOCOL: 'http' })).variable).to.equal('OTEL_EXPORTER_OTLP_PROTOCOL');
    expect(errorOf(() => resolveTracing(section(), { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector:4318' })).message).to.match(
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http/,
    );
    expect(errorOf(() => resolveTracing(section(), { OTEL_EXPORTER_OTLP_TIMEOUT: '0' })).variable).to.equal('OTEL_EXPORTER_OTLP_TIMEOUT');
    expect(errorOf(() => resolveTracing(section(), { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: 'soon' })).variable).to.equal('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT');
    expect(errorOf(() => resolveTracing(section(), { OTEL_RESOURCE_ATTRIBUTES: 'a=b=c' })).variable).to.equal('OTEL_RESOURCE_ATTRIBUTES');
    expect(errorOf(() => resolveTracing(section(), { OTEL_RESOURCE_ATTRIBUTES: 'a=%E0%A4%A' })).variable).to.equal('OTEL_RESOURCE_ATTRIBUTES');
  });

  it('ignores the environment for a field the config sets, even when the variable is invalid', () => {
    expect(resolveTracing(section({ exporter: 'otlp-grpc' }), { OTEL_EXPORTER_OTLP_PROTOCOL: 'carrier-pigeon' }).exporter).to.equal('otlp-grpc');
  });
});
