import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { memoryLogger } from '../../harness/daemon.js';
import { freePort } from '../../harness/ports.js';
import { TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { type HealthCheckConfig, HealthCheckSchema } from '../../lib/config/schema.js';
import { HealthChecker, probeUrl, statusMatcher, TargetHealth } from '../../lib/resources/health.js';
import type { HealthObserver } from '../../lib/resources/kind.js';

function section(overrides: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return HealthCheckSchema.parse({ interval_ms: 10, healthy_threshold: 1, unhealthy_threshold: 1, ...overrides });
}

function checker(options: {
  target: TargetHealth | TargetHealth[];
  section: HealthCheckConfig;
  observer?: HealthObserver;
  logger?: ReturnType<typeof memoryLogger>['logger'];
}): HealthChecker {
  const targets = Array.isArray(options.target) ? options.target : [options.target];
  const c = new HealthChecker({ upstream: 'api', section: options.section, targets, observer: options.observer, logger: options.logger });
  onCleanup(() => c.stop());
  c.start();
  return c;
}

describe('health checks', () => {
  describe('pure derivations', () => {
    it('builds the probe URL from the target origin and the path', () => {
      expect(probeUrl('http://127.0.0.1:9000', { path: '/healthz?deep=1' })).to.equal('http://127.0.0.1:9000/healthz?deep=1');
    });

    it('matches expected_status as a list or as a class', () => {
      const list = statusMatcher([200, 204]);
      const cls = statusMatcher('2xx');
      expect([200, 204, 299, 301].map(list)).to.deep.equal([true, true, false, false]);
      expect([200, 204, 299, 301, 500].map(cls)).to.deep.equal([true, true, true, false, false]);
    });
  });

  describe('TargetHealth', () => {
    it('starts healthy and moves only after the thresholds of consecutive outcomes', () => {
      const state = new TargetHealth('api', 'http://t');
      const owner = {};
      state.claim(owner);
      const thresholds = { healthy_threshold: 2, unhealthy_threshold: 3 };
      expect(state.healthy).to.equal(true);
      expect([false, false, true, false, false].map((ok) => state.record(owner, ok, thresholds))).to.deep.equal([
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
      ]);
      expect(state.record(owner, false, thresholds)).to.equal(false);
      expect(state.record(owner, true, thresholds)).to.equal(undefined);
      expect(state.record(owner, true, thresholds)).to.equal(true);
    });

    it('counts only the newest claimant, and the previous one again once the newest lets go', () => {
      const state = new TargetHealth('api', 'http://t');
      const [old, fresh] = [{}, {}];
      const once = { healthy_threshold: 1, unhealthy_threshold: 1 };
      state.claim(old);
      state.claim(fresh);
      expect(state.record(old, false, once)).to.equal(undefined);
      expect(state.healthy).to.equal(true);
      state.unclaim(fresh);
      expect(state.record(old, false, once)).to.equal(false);
    });
  });

  describe('HealthChecker', () => {
    it('marks a target unhealthy on failing probes and healthy again when it recovers', async () => {
      const upstream = await TestUpstream.start();
      const state = new TargetHealth('api', upstream.origin);
      upstream.healthStatus = 500;
      const { logger, lines } = memoryLogger();
      checker({ target: state, section: section({ healthy_threshold: 2, unhealthy_threshold: 2 }), logger });
      await waitFor('unhealthy', () => !state.healthy);
      upstream.healthStatus = 200;
      await waitFor('healthy', () => state.healthy);
      const changes = lines().filter((l) => l.msg === 'target_health_changed');
      expect(changes.map((l) => l.healthy)).to.deep.equal([false, true]);
      expect(changes[0]).to.include({ component: 'health', upstream: 'api', target: upstream.origin });
    });

    it('counts every probe error, keeps probing, and logs identical errors once', async () => {
      const refused = `http://127.0.0.1:${await freePort()}`;
      const state = new TargetHealth('api', refused);
      const observer = { healthCheckError: sinon.spy() };
      const { logger, lines } = memoryLogger();
      checker({ target: state, section: section(), observer, logger });
      await waitFor('10 probe errors', () => observer.healthCheckError.callCount >= 10);
      expect(observer.healthCheckError.alwaysCalledWithExactly('api')).to.equal(true);
      expect(state.healthy).to.equal(false);
      const errors = lines().filter((l) => l.msg === 'health_probe_error');
      expect(errors).to.have.length(1);
      expect(errors[0]).to.include({ target: refused, code: 'ECONNREFUSED', suppressed: 0 });
    });

    it('keeps probing when the metrics sink throws', async () => {
      const refused = `http://127.0.0.1:${await freePort()}`;
      const state = new TargetHealth('api', refused);
      const observer = { healthCheckError: sinon.stub().throws(new Error('broken sink')) };
      checker({ target: state, section: section(), observer });
      await waitFor('5 probe errors', () => observer.healthCheckError.callCount >= 5);
    });

    it('never overlaps probes of one target: a slow probe delays the next', async () => {
      let running = 0;
      let maxRunning = 0;
      let probes = 0;
      const server = createServer((_req, res) => {
        probes += 1;
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        res.once('close', () => (running -= 1));
        // Answer after the next probe would have been due three times over (interval 10 ms).
        setTimeout(() => res.end(), 30);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
      onCleanup(() => server.closeAllConnections());
      const state = new TargetHealth('api', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      checker({ target: state, section: section({ timeout_ms: 5000 }) });
      await waitFor('5 probes', () => probes >= 5);
      expect(maxRunning).to.equal(1);
      expect(state.healthy).to.equal(true);
    });

    it('times a probe out after timeout_ms and counts it as an error', async () => {
      const server = createServer(() => {});
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
      onCleanup(() => server.closeAllConnections());
      const state = new TargetHealth('api', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const observer = { healthCheckError: sinon.spy() };
      const { logger, lines } = memoryLogger();
      checker({ target: state, section: section({ timeout_ms: 20 }), observer, logger });
      await waitFor('a timed-out probe', () => observer.healthCheckError.callCount >= 1);
      await waitFor('the timeout logged', () => lines().find((l) => l.msg === 'health_probe_error'));
      expect(lines().find((l) => l.msg === 'health_probe_error')).to.include({ code: 'E_PROBE_TIMEOUT' });
      expect(state.healthy).to.equal(false);
    });

    it('stops on stop(): no further probe, and its probe connection closed', async () => {
      const upstream = await TestUpstream.start();
      const stopped = checker({ target: new TargetHealth('api', upstream.origin), section: section() });
      await waitFor('a few probes', () => upstream.healthChecks >= 3);
      await stopped.stop();
      const countAtStop = upstream.healthChecks;
      // A second checker on the same upstream counts 5 more probes: the stopped one added none.
      const witness = await TestUpstream.start();
      checker({ target: new TargetHealth('api', witness.origin), section: section() });
      await waitFor('witness probes', () => witness.healthChecks >= 5);
      expect(upstream.healthChecks).to.equal(countAtStop);
      await waitFor('probe connection closed', () => upstream.openConnections === 0);
      await stopped.stop();
    });

    it('aborts the probe in flight on stop()', async () => {
      let closed = 0;
      let arrived = 0;
      const server = createServer((req) => {
        arrived += 1;
        req.once('close', () => (closed += 1));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const c = checker({
        target: new TargetHealth('api', `http://127.0.0.1:${(server.address() as AddressInfo).port}`),
        section: section({ timeout_ms: 60_000 }),
      });
      await waitFor('a probe in flight', () => arrived === 1);
      await c.stop();
      await waitFor('the probe request closed', () => closed === 1);
      expect(arrived).to.equal(1);
    });

    it('skips probes while a newer checker owns the state, and the newer one starts from the inherited state', async () => {
      const upstream = await TestUpstream.start();
      upstream.healthStatus = 503;
      const state = new TargetHealth('api', upstream.origin);
      const first = checker({ target: state, section: section() });
      await waitFor('unhealthy', () => !state.healthy);
      upstream.healthStatus = 200;
      const second = checker({ target: state, section: section({ healthy_threshold: 100 }) });
      expect(state.healthy).to.equal(false);
      const before = upstream.healthChecks;
      await waitFor('20 more probes', () => upstream.healthChecks >= before + 20);
      // 100 successes needed under the new settings: the old checker's threshold of 1 never applies.
      expect(state.healthy).to.equal(false);
      await second.stop();
      await waitFor('the old checker owns the state again', () => state.healthy);
      await first.stop();
    });
  });
});
