import { expect } from 'chai';
import { canonicalHash } from '../../lib/config/hash.js';
import { validateConfig } from '../../lib/config/parse.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';

function config(upstreams: Record<string, unknown>, routes: Record<string, unknown>[] = [{ path_prefix: '/', upstream: 'api' }]): Record<string, unknown> {
  return { upstreams, listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes }] };
}

function issuesOf(data: unknown): { path: string; message: string }[] {
  try {
    validateConfig(data);
  } catch (error) {
    if (error instanceof ConfigInvalidError) return [...error.issues];
    throw error;
  }
  throw new Error('expected the config to be invalid');
}

describe('config: upstreams', () => {
  it('fills every default, with units in the names', () => {
    const valid = validateConfig(config({ api: { targets: ['http://127.0.0.1:9000'], health_check: {} } }));
    expect(valid.upstreams.api).to.deep.equal({
      targets: ['http://127.0.0.1:9000'],
      load_balancing: 'round_robin',
      timeout_ms: 30000,
      connect_timeout_ms: 5000,
      pool: { connections: 64, keep_alive_timeout_ms: 4000 },
      retries: 1,
      forwarded_header: 'none',
      request_buffer_bytes: 65536,
      response_buffer_bytes: 65536,
      body_idle_timeout_ms: 10000,
      max_pending_requests: 1024,
      queue_timeout_ms: 2000,
      health_check: { path: '/healthz', interval_ms: 2000, timeout_ms: 1000, healthy_threshold: 2, unhealthy_threshold: 3, expected_status: [200] },
    });
    expect(valid.listeners[0]!.routes[0]).to.include({ upstream: 'api', strip_prefix: false });
  });

  it('hashes a spelled-out default like its absence', () => {
    const bare = validateConfig(config({ api: { targets: ['http://127.0.0.1:9000'] } }));
    const spelled = validateConfig(
      config({ api: { targets: ['http://127.0.0.1:9000'], retries: 1, pool: { connections: 64 } } }, [
        { path_prefix: '/', upstream: 'api', strip_prefix: false },
      ]),
    );
    expect(canonicalHash(spelled)).to.equal(canonicalHash(bare));
  });

  it('rejects a route naming an unknown upstream, at the route path', () => {
    expect(issuesOf(config({ api: { targets: ['http://127.0.0.1:9000'] } }, [{ path_prefix: '/', upstream: 'nope' }]))).to.deep.equal([
      { path: 'listeners.0.routes.0.upstream', message: 'unknown upstream "nope"' },
    ]);
  });

  it('rejects a route with both respond and upstream, and strip_prefix on a respond route', () => {
    const issues = issuesOf(
      config({ api: { targets: ['http://127.0.0.1:9000'] } }, [
        { path_prefix: '/', upstream: 'api', respond: { status: 200 } },
        { path_prefix: '/', respond: { status: 200 }, strip_prefix: true },
      ]),
    );
    expect(issues).to.deep.include({ path: 'listeners.0.routes.0', message: 'a route needs exactly one of: respond, upstream, redirect' });
    expect(issues).to.deep.include({ path: 'listeners.0.routes.1.strip_prefix', message: 'applies to upstream routes only' });
  });

  it('accepts expected_status as a list or a class and rejects anything else', () => {
    const hc = (expected_status: unknown) => config({ api: { targets: ['http://127.0.0.1:9000'], health_check: { expected_status } } });
    expect(validateConfig(hc('2xx')).upstreams.api!.health_check!.expected_status).to.equal('2xx');
    expect(validateConfig(hc([200, 204])).upstreams.api!.health_check!.expected_status).to.deep.equal([200, 204]);
    expect(issuesOf(hc('2XX')).map((i) => i.path)).to.deep.equal(['upstreams.api.health_check.expected_status']);
    expect(issuesOf(hc([])).map((i) => i.path)).to.deep.equal(['upstreams.api.health_check.expected_status']);
  });

  it('requires targets to be distinct http(s) origins', () => {
    const issues = issuesOf(config({ api: { targets: ['http://127.0.0.1:9000', 'http://127.0.0.1:9000/', 'http://h/path', 'ftp://h', 'http://u:p@other'] } }));
    expect(issues.map((i) => i.path)).to.have.members([
      'upstreams.api.targets.1',
      'upstreams.api.targets.2',
      'upstreams.api.targets.3',
      'upstreams.api.targets.4',
    ]);
    expect(issuesOf(config({ api: { targets: [] } })).map((i) => i.path)).to.deep.equal(['upstreams.api.targets']);
  });

  it('rejects unknown keys and out-of-range settings at their paths', () => {
    const issues = issuesOf(
      config({ api: { targets: ['http://127.0.0.1:9000'], load_balancing: 'fastest', retries: -1, pool: { conns: 2 }, health_check: { interval_ms: 0 } } }),
    );
    expect(issues.map((i) => i.path)).to.have.members([
      'upstreams.api.load_balancing',
      'upstreams.api.retries',
      'upstreams.api.pool.conns',
      'upstreams.api.health_check.interval_ms',
    ]);
  });
});
