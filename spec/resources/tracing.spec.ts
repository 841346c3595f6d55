import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { expect } from 'chai';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';
import { createSpanExporter, tracerProviderFactory, tracerProviderKind } from '../../lib/resources/tracing.js';

const SERVER = 2;

function otlp(receiver: OtlpReceiver, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { exporter: 'otlp-http', endpoint: receiver.url, batch: { scheduled_delay_ms: 20 }, ...extra };
}

/** Set `vars` in `process.env` (undefined: unset) for the current test; restored after it. */
function withEnv(vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(vars);
  onCleanup(() => apply(saved));
}

describe('tracing', () => {
  it('exports a server span per request with the HTTP semantic conventions', async () => {
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    await startDaemon(basicConfig({ port, tracing: otlp(receiver, { service_name: 'edge' }) }));
    await httpRequest(`http://127.0.0.1:${port}/hello/there?x=1`, { headers: { 'user-agent': 'spec-agent' } });
    const span = await waitFor('the server span', () => receiver.spans.find((s) => s.kind === SERVER));
    expect(span.name).to.equal('GET /');
    expect(span.serviceName).to.equal('edge');
    expect(span.attributes).to.deep.include({
      'http.request.method': 'GET',
      'url.path': '/hello/there',
      'url.query': 'x=1',
      'url.scheme': 'http',
      'http.route': '/',
      'http.response.status_code': 200,
      'server.port': port,
      'user_agent.original': 'spec-agent',
      'network.protocol.version': '1.1',
      'hotconf.generation': 1,
    });
    expect(span.parentSpanId).to.equal(undefined);
  });

  it('continues the trace of an incoming traceparent', async () => {
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    await startDaemon(basicConfig({ port, tracing: otlp(receiver) }));
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    await httpRequest(`http://127.0.0.1:${port}/`, { headers: { traceparent: `00-${traceId}-${parentId}-01` } });
    const span = await waitFor('the server span', () => receiver.spans.find((s) => s.kind === SERVER));
    expect(span.traceId).to.equal(traceId);
    expect(span.parentSpanId).to.equal(parentId);
  });

  it('marks 5xx responses and unmatched routes on the span', async () => {
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    const config = basicConfig({ port, tracing: otlp(receiver) });
    (config.listeners as { routes: unknown[] }[])[0]!.routes = [{ path_prefix: '/boom', respond: { status: 503, body: 'down' } }];
    await startDaemon(config);
    await httpRequest(`http://127.0.0.1:${port}/boom`);
    await httpRequest(`http://127.0.0.1:${port}/nothing`);
    await waitFor('two spans', () => receiver.spans.length >= 2);
    const boom = receiver.spans.find((s) => s.attributes['url.path'] === '/boom')!;
    const missing = receiver.spans.find((s) => s.attributes['url.path'] === '/nothing')!;
    expect(boom.attributes).to.include({ 'http.response.status_code': 503, 'error.type': '503' });
    expect(missing.name).to.equal('GET');
    expect(missing.attributes).to.include({ 'http.response.status_code': 404 });
    expect(missing.attributes).to.not.have.property('http.route');
  });

  it('traces each reload as a hotconf.reload span', async () => {
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    const t = await startDaemon(basicConfig({ port, tracing: otlp(receiver) }));
    await t.apply(basicConfig({ port, body: 'next', tracing: otlp(receiver) }));
    const span = await waitFor('the reload span', () => receiver.spans.find((s) => s.name === 'hotconf.reload'));
    expect(span.attributes).to.include({ 'hotconf.reload.trigger': 'api', 'hotconf.reload.result': 'applied', 'hotconf.generation': 2 });
  });

  it('flushes a replaced pipeline and destroys its exporter agent, so its connection closes', async () => {
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    // A long batch delay: nothing is exported until the pipeline is flushed on destroy.
    const slow = (name: string) => otlp(receiver, { service_name: name, batch: { scheduled_delay_ms: 60_000 } });
    const t = await startDaemon(basicConfig({ port, tracing: slow('first') }));
    for (let i = 0; i < 3; i++) await getText(`http://127.0.0.1:${port}/`);
    expect(receiver.spans).to.have.length(0);
    await t.apply(basicConfig({ port, tracing: slow('second') }));
    await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
    expect(receiver.spans.filter((s) => s.serviceName === 'first' && s.kind === SERVER)).to.have.length(3);
    expect(receiver.connectionsOpened).to.be.greaterThan(0);
    await waitFor('the first pipeline connection to close', () => receiver.openConnections === 0);
    expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 2, destroyed: 1, destroyFailures: 0 });
  });

  describe('every OTLP exporter owns its transport', () => {
    const EXPORTERS = [
      { exporter: 'otlp-http', protocol: 'http' },
      { exporter: 'otlp-proto', protocol: 'http' },
      { exporter: 'otlp-grpc', protocol: 'grpc' },
    ] as const;

    for (const { exporter, protocol } of EXPORTERS) {
      it(`${exporter}: exports the server span, and a replaced pipeline flushes and leaves no open connection`, async () => {
        const receiver = await OtlpReceiver.start({ protocol });
        const port = await freePort();
        // A long batch delay: nothing is exported until the pipeline is flushed on destroy.
        const tracing = (name: string) => ({ exporter, endpoint: receiver.url, service_name: name, batch: { scheduled_delay_ms: 60_000 } });
        const t = await startDaemon(basicConfig({ port, tracing: tracing('first') }));
        await httpRequest(`http://127.0.0.1:${port}/a?b=1`);
        expect(receiver.spans).to.have.length(0);
        await t.apply(basicConfig({ port, tracing: tracing('second') }));
        await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
        const span = receiver.spans.find((s) => s.serviceName === 'first' && s.kind === SERVER);
        expect(span?.attributes).to.include({ 'url.path': '/a', 'url.query': 'b=1', 'http.response.status_code': 200 });
        expect(span?.traceId).to.match(/^[0-9a-f]{32}$/);
        expect(receiver.connectionsOpened).to.be.greaterThan(0);
        await waitFor(`the first ${exporter} pipeline's connection to close`, () => receiver.openConnections === 0);
        expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 2, destroyed: 1, destroyFailures: 0 });
        // The second pipeline exports through a transport of its own, destroyed when the daemon stops.
        await httpRequest(`http://127.0.0.1:${port}/`);
        await t.daemon.stop();
        expect(receiver.spans.filter((s) => s.serviceName === 'second' && s.kind === SERVER)).to.have.length(1);
        await waitFor(`the second ${exporter} pipeline's connection to close`, () => receiver.openConnections === 0);
      });
    }
  });

  describe('sample_ratio apart from the pipeline (OpenTelemetry specification #3771)', () => {
    it('changing only sample_ratio builds no exporter or batch processor, and sampling follows the new ratio', async () => {
      const receiver = await OtlpReceiver.start();
      const createExporter = sinon.spy(createSpanExporter);
      const kinds = { tracer_provider: { ...tracerProviderKind, factory: (section: never) => tracerProviderFactory(section, { createExporter }) } };
      const port = await freePort();
      const config = (sample_ratio: number) => basicConfig({ port, body: `ratio ${sample_ratio}`, tracing: otlp(receiver, { sample_ratio }) });
      const t = await startDaemon(config(1), { kinds });
      const served = (path: string) => receiver.spans.filter((s) => s.kind === SERVER && s.attributes['url.path'] === path);

      await getText(`http://127.0.0.1:${port}/one`);
      await waitFor('the span of a request at ratio 1', () => served('/one').length === 1);
      expect((await t.apply(config(0))).result).to.equal('applied');
      for (let i = 0; i < 20; i++) expect(await getText(`http://127.0.0.1:${port}/zero`)).to.equal('ratio 0');
      expect((await t.apply(config(1))).result).to.equal('applied');
      await getText(`http://127.0.0.1:${port}/again`);
      // Spans are exported in the order they end: once the later one arrived, any from ratio 0 would have too.
      await waitFor('the span of a request at ratio 1 again', () => served('/again').length === 1);
      expect(served('/zero')).to.have.length(0);

      expect(createExporter.callCount, 'exporters built').to.equal(1);
      expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 1, reused: 2, live: 1 });
      expect(receiver.connectionsOpened).to.equal(1);
    });

    it('gives each generation a sampler of its own ratio over the one shared pipeline', async () => {
      const receiver = await OtlpReceiver.start();
      const port = await freePort();
      const config = (sample_ratio: number) => basicConfig({ port, body: `ratio ${sample_ratio}`, tracing: otlp(receiver, { sample_ratio }) });
      const t = await startDaemon(config(0));
      const first = t.daemon.reloader.active!;
      await t.apply(config(1));
      const second = t.daemon.reloader.active!;
      expect(second.tracing!.pipeline).to.equal(first.tracing!.pipeline);
      expect(first.tracer.startSpan('old').isRecording()).to.equal(false);
      const span = second.tracer.startSpan('new');
      expect(span.isRecording()).to.equal(true);
      span.end();
    });
  });

  describe('OTEL_* variables', () => {
    it('fill what the tracing section leaves unset: protocol, endpoint, headers, service name and resource attributes', async () => {
      const receiver = await OtlpReceiver.start();
      withEnv({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url.replace('/v1/traces', ''),
        OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=spec-tenant',
        OTEL_SERVICE_NAME: 'from-env',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=spec',
      });
      const port = await freePort();
      await startDaemon(basicConfig({ port, tracing: { batch: { scheduled_delay_ms: 20 } } }));
      await httpRequest(`http://127.0.0.1:${port}/`);
      const span = await waitFor('the server span', () => receiver.spans.find((s) => s.kind === SERVER));
      expect(span.serviceName).to.equal('from-env');
      expect(span.resource).to.include({ 'deployment.environment': 'spec' });
      expect(receiver.lastHeaders).to.include({ 'content-type': 'application/x-protobuf', 'x-tenant': 'spec-tenant' });
    });

    it('lose to the config, and a change of the environment is a new pipeline at the next reload', async () => {
      const receiver = await OtlpReceiver.start();
      withEnv({ OTEL_SERVICE_NAME: 'env-one', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'a', tracing: otlp(receiver, { service_name: 'from-config' }) }));
      await httpRequest(`http://127.0.0.1:${port}/`);
      expect((await waitFor('the server span', () => receiver.spans.find((s) => s.kind === SERVER))).serviceName).to.equal('from-config');
      expect(receiver.lastHeaders['content-type']).to.equal('application/json');

      // Without service_name in the config, the environment's name applies; changing it rebuilds.
      const fromEnv = (body: string) => basicConfig({ port, body, tracing: otlp(receiver) });
      await t.apply(fromEnv('b'));
      withEnv({ OTEL_SERVICE_NAME: 'env-two' });
      await t.apply(fromEnv('c'));
      await t.apply(fromEnv('d'));
      expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 3, reused: 1 });
      await httpRequest(`http://127.0.0.1:${port}/`);
      await waitFor('a span named by the new environment', () => receiver.spans.find((s) => s.kind === SERVER && s.serviceName === 'env-two'));
    });

    it('fail the reload naming the variable when one is unusable; the last good config keeps serving', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'good', tracing: { exporter: 'none' } }));
      withEnv({ OTEL_EXPORTER_OTLP_TIMEOUT: 'soon' });
      const result = await t.apply(basicConfig({ port, body: 'next', tracing: { exporter: 'none', service_name: 'x' } }));
      expect(result).to.include({ result: 'failed', path: 'tracing' });
      expect(result.error).to.include('OTEL_EXPORTER_OTLP_TIMEOUT');
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('good');
    });
  });

  describe('the Caddy per-reload leak, reproduced against the same SDK', () => {
    const RELOADS = 20;

    it('eager pattern: an exporter and batch processor built on every reload leaks one connection per reload', async () => {
      const receiver = await OtlpReceiver.start();
      // Caddy's tracerProviderFactory: a ref-counted provider that only uses the processor it is
      // given when it creates the provider; on the reuse path the eagerly built one is dropped.
      let shared: NodeTracerProvider | undefined;
      const getOrCreate = (processor: BatchSpanProcessor) => (shared ??= new NodeTracerProvider({ spanProcessors: [processor] }));
      for (let i = 0; i < RELOADS; i++) {
        const exporter = new OTLPTraceExporter({ url: receiver.url });
        const processor = new BatchSpanProcessor(exporter, { scheduledDelayMillis: 20 });
        // The module uses its own processor once (a reload span) before the provider is shared.
        const scratch = new NodeTracerProvider({ spanProcessors: [processor] });
        scratch.getTracer('caddy').startSpan('reload').end();
        await processor.forceFlush();
        getOrCreate(processor);
      }
      await waitFor('all reload spans', () => receiver.spans.length === RELOADS);
      console.log(`      eager: ${RELOADS} reloads → ${receiver.openConnections} exporter connections left open`);
      expect(receiver.openConnections).to.equal(RELOADS);
      await shared!.shutdown();
    });

    it('registry pattern: the same reloads build one pipeline and keep at most its own connections', async () => {
      const receiver = await OtlpReceiver.start();
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'r0', tracing: otlp(receiver) }));
      for (let i = 1; i <= RELOADS; i++) {
        expect((await t.apply(basicConfig({ port, body: `r${i}`, tracing: otlp(receiver) }))).result).to.equal('applied');
        await getText(`http://127.0.0.1:${port}/`);
      }
      await waitFor('the request spans', () => receiver.spans.filter((s) => s.kind === SERVER).length === RELOADS);
      console.log(`      registry: ${RELOADS} reloads → ${receiver.openConnections} exporter connection(s) open, ${receiver.connectionsOpened} ever opened`);
      expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 1, reused: RELOADS, live: 1 });
      expect(receiver.openConnections).to.be.at.most(2);
      expect(receiver.connectionsOpened).to.be.at.most(2);
    });
  });
});
