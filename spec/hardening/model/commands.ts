/**
 * Commands for the model-based reload test: each acts on the real daemon (in-process, real
 * file, real sockets, real signals) and on the model, then checks the invariants.
 */
import { type Agent, request as httpRequest } from 'node:http';
import { expect } from 'chai';
import fc from 'fast-check';
import sinon from 'sinon';
import { writeConfigAtomic } from '../../../harness/daemon.js';
import { connectionRefused } from '../../../harness/http.js';
import { occupyPort } from '../../../harness/ports.js';
import { waitFor } from '../../../harness/wait.js';
import type { Daemon } from '../../../lib/daemon/daemon.js';
import type { ReloadResult } from '../../../lib/reload/reloader.js';
import { TARGET_HEALTH_KIND } from '../../../lib/resources/health.js';
import { LISTENER_KIND } from '../../../lib/resources/listener.js';
import { TRACER_PROVIDER_KIND } from '../../../lib/resources/tracing.js';
import type { FaultyKinds } from '../faulty-kinds.js';
import {
  type Acquire,
  acquiresOf,
  type ConfigSpec,
  type Corruption,
  configArb,
  corrupt,
  corruptionArb,
  expectedResponse,
  isLive,
  listenerKey,
  type ModelRequest,
  matchRoute,
  PORT_POOL_SIZE,
  type Pools,
  PROBES,
  plannedAcquires,
  type RenderStyle,
  renderConfig,
  specKey,
  styleArb,
  targetHealthKey,
} from './configs.js';

/** What the model knows: the active config, its generation, and the registry's counters per kind. */
export interface Model {
  active: ConfigSpec;
  /** What the config file holds now: a valid spec, or something invalid. */
  file: ConfigSpec | 'invalid';
  /** How the file is written (its key order decides the order upstreams are provisioned in). */
  fileStyle: RenderStyle;
  generation: number;
  counts: Record<string, { created: number; reused: number; createFailures: number }>;
  /** Per pool port: how many times a listener on it was destroyed (a kept connection dies with it). */
  listenerEpoch: number[];
  /** Per pool port: the epoch at the last keepalive request on the kept agent, if any. */
  keptAt: (number | undefined)[];
  /** Round-robin position per upstream of the active generation (each generation has its own balancers). */
  cursors: Record<string, number>;
  /** Health states (`targetHealthKey`) the last check saw settled: a reload that keeps one must not reset it. */
  settled: Set<string>;
}

/** The system under test and the instruments around it. */
export interface Real {
  daemon: Daemon;
  file: string;
  pools: Pools;
  faults: FaultyKinds;
  /** Short-lived probes share this keepalive agent (few sockets, no TIME_WAIT pile-up). */
  probeAgent: Agent;
  /** One kept connection per listener, for the keepalive command. */
  keptAgent: Agent;
  /** Reload events seen, by trigger. */
  reloads: { trigger: string; result: ReloadResult }[];
  /** Counts the commands run, for the run statistics. */
  stats: Record<string, number>;
  /** Counts what was observed (responses by kind, reloads per burst), for the run statistics. */
  observed: Record<string, number>;
}

export function initialModel(spec: ConfigSpec, style: RenderStyle): Model {
  const model: Model = {
    active: spec,
    file: spec,
    fileStyle: style,
    generation: 1,
    counts: {},
    listenerEpoch: Array(PORT_POOL_SIZE).fill(0),
    keptAt: Array(PORT_POOL_SIZE).fill(undefined),
    cursors: {},
    settled: new Set(),
  };
  count(model, acquiresOf(undefined, spec, style), undefined);
  return model;
}

/** Book `acquires` (up to the failing one, which counts as a create failure) into the model. */
function count(model: Model, acquires: Acquire[], failAt: number | undefined): void {
  acquires.forEach((a, i) => {
    if (failAt !== undefined && i > failAt) return;
    const c = (model.counts[a.kind] ??= { created: 0, reused: 0, createFailures: 0 });
    if (i === failAt) c.createFailures += 1;
    else if (a.create) c.created += 1;
    else c.reused += 1;
  });
}

/** A new config became active: ports it dropped lose their listener (after the drain). */
function activate(model: Model, next: ConfigSpec): void {
  const kept = new Set(next.listeners.map((l) => l.port));
  for (const l of model.active.listeners) if (!kept.has(l.port)) model.listenerEpoch[l.port]! += 1;
  // An upstream provisioned again with the same section and tracing is the same `Upstream`
  // (taken over, balancer included): its round-robin position carries on; others start over.
  const carried = (name: string) => {
    const before = model.active.upstreams.find((u) => u.name === name);
    const after = next.upstreams.find((u) => u.name === name);
    return next.tracing === model.active.tracing && before !== undefined && JSON.stringify(before) === JSON.stringify(after);
  };
  model.cursors = Object.fromEntries(Object.entries(model.cursors).filter(([name]) => carried(name)));
  model.active = next;
  model.generation += 1;
}

/**
 * A reload of the file as it is: applied when it holds a valid config other than the active
 * one (the model books it), unchanged when it holds the active one, invalid otherwise.
 */
function expectReloadOfFile(model: Model, result: ReloadResult): void {
  if (model.file === 'invalid') expect(result, JSON.stringify(result)).to.deep.include({ result: 'invalid', generation: model.generation });
  else if (specKey(model.file) === specKey(model.active))
    expect(result, JSON.stringify(result)).to.deep.include({ result: 'unchanged', generation: model.generation });
  else {
    expect(result, JSON.stringify(result)).to.deep.include({ result: 'applied', generation: model.generation + 1 });
    count(model, acquiresOf(model.active, model.file, model.fileStyle), undefined);
    activate(model, model.file);
  }
}

/** Replace the config file with `spec` in `style`, as the model's file from now on. */
async function writeSpec(model: Model, real: Real, spec: ConfigSpec, style: RenderStyle): Promise<void> {
  await writeConfigAtomic(real.file, renderConfig(spec, real.pools, style));
  model.file = spec;
  model.fileStyle = style;
}

/** `request` on `agent`, retried once on a fresh connection if a reused one was closed under it. */
export function send(port: number, request: ModelRequest, agent: Agent): Promise<{ status: number; body: string; reused: boolean }> {
  const attempt = () =>
    new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
      const headers: Record<string, string | number> = { host: request.host };
      if (request.method === 'POST') headers['content-length'] = request.bodyBytes;
      const req = httpRequest({ host: '127.0.0.1', port, method: request.method, path: request.path, headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
        res.on('error', reject);
      });
      req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })));
      req.end(request.method === 'POST' ? Buffer.alloc(request.bodyBytes, 'x') : undefined);
    });
  return attempt().catch((error: NodeJS.ErrnoException & { reusedSocket?: boolean }) => {
    // Node's documented pattern: a kept socket the server closed is only seen on reuse.
    if (error.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) return attempt();
    throw error;
  });
}

/** A GET the listeners are probed with after every command. */
function probeRequest(probe: (typeof PROBES)[number]): ModelRequest {
  return { method: 'GET', path: probe.path, host: probe.host, bodyBytes: 0 };
}

/** Add `by` to `counts[name]` (the run statistics). */
function bump(counts: Record<string, number>, name: string, by = 1): void {
  counts[name] = (counts[name] ?? 0) + by;
}

/** Count a served response by what answered it, for the run statistics. */
function observe(real: Real, listener: ConfigSpec['listeners'][number], request: ModelRequest, status: number): void {
  const route = matchRoute(listener, request.path, request.host);
  const what = route?.action.type === 'proxy' ? `proxied ${status}` : 'answered';
  bump(real.observed, what);
}

/**
 * The invariants, after the drain: exactly one generation, the model's; every live resource is
 * held by it, with `refs` equal to the leases it holds, and shared exactly as the model says
 * (one pool for two upstreams with the same target and settings); the registry's counters are
 * the model's; nothing leaked; health states the model saw settled are still settled (a reload
 * never resets one), and the others settle (dead targets unhealthy, live ones healthy); every
 * listener answers as the model's routes say, proxied routes included; every other pool port
 * is closed.
 */
export async function checkInvariants(model: Model, real: Real): Promise<void> {
  const { daemon, pools } = real;
  await waitFor('the replaced generation to drain and release', () => daemon.reloader.generations().length === 1 && !daemon.reloader.busy, 20_000);
  const [active] = daemon.reloader.generations();
  expect(active!.id, 'active generation').to.equal(model.generation);
  expect(active!.state).to.equal('active');
  expect(daemon.health()).to.deep.equal({ status: 'ok', generation: model.generation, pid: process.pid });

  const listeners = model.active.listeners.map((l) => `127.0.0.1:${pools.ports[l.port]}`).sort();
  const live = daemon.registry.entries();
  const held = new Map<string, number>();
  for (const h of active!.holds()) held.set(`${h.kind} ${h.key}`, (held.get(`${h.kind} ${h.key}`) ?? 0) + 1);
  expect(
    live.every((e) => e.state === 'live' && e.refs === held.get(`${e.kind} ${e.key}`)),
    `refs equal the active generation's leases: ${JSON.stringify(live)} ${JSON.stringify([...held])}`,
  ).to.equal(true);
  expect([...held.keys()].sort(), 'leases of the active generation').to.deep.equal(live.map((e) => `${e.kind} ${e.key}`).sort());
  expect(
    live
      .filter((e) => e.kind === LISTENER_KIND)
      .map((e) => e.key)
      .sort(),
    'live listeners',
  ).to.deep.equal(listeners);
  expect(live.filter((e) => e.kind === TRACER_PROVIDER_KIND).length, 'live tracer providers').to.equal(model.active.tracing === undefined ? 0 : 1);
  // Per kind, how many leases each live resource has: the model's sharing, whatever the real keys.
  const sharing = (leases: { kind: string; key: string }[]) => {
    const perKey = new Map<string, number>();
    for (const { kind, key } of leases) perKey.set(`${kind}\0${key}`, (perKey.get(`${kind}\0${key}`) ?? 0) + 1);
    const perKind: Record<string, number[]> = {};
    for (const [id, n] of perKey) (perKind[id.split('\0')[0]!] ??= []).push(n);
    for (const counts of Object.values(perKind)) counts.sort();
    return perKind;
  };
  expect(sharing(active!.holds()), 'resources and their leases per kind').to.deep.equal(sharing(plannedAcquires(model.active)));

  const stats = daemon.registry.stats();
  for (const kind of new Set([...Object.keys(stats), ...Object.keys(model.counts)])) {
    const s = stats[kind] ?? { created: 0, reused: 0, createFailures: 0, destroyed: 0, live: 0, leakedLeases: 0, destroyFailures: 0, refs: 0 };
    const expected = model.counts[kind] ?? { created: 0, reused: 0, createFailures: 0 };
    expect({ kind, created: s.created, reused: s.reused, createFailures: s.createFailures }, 'registry counters').to.deep.equal({ kind, ...expected });
    expect(s.created - s.destroyed, `${kind} created - destroyed`).to.equal(s.live);
    expect(s.leakedLeases, `${kind} leaked leases`).to.equal(0);
    expect(s.destroyFailures, `${kind} destroy failures`).to.equal(0);
  }
  const report = daemon.leaks();
  expect(report.suspects, 'leak report suspects').to.deep.equal([]);

  await checkHealth(model, real);

  for (const listener of model.active.listeners) {
    const port = pools.ports[listener.port]!;
    for (const probe of PROBES) {
      const request = probeRequest(probe);
      const res = await send(port, request, real.probeAgent);
      observe(real, listener, request, res.status);
      expect({ port, ...probe, status: res.status, body: res.body }).to.deep.equal({
        port,
        ...probe,
        ...expectedResponse(model.active, listener, request, model.cursors),
      });
    }
  }
  const used = new Set(model.active.listeners.map((l) => l.port));
  for (let i = 0; i < PORT_POOL_SIZE; i += 1)
    if (!used.has(i)) expect(await connectionRefused(pools.ports[i]!), `pool port ${pools.ports[i]} is closed`).to.equal(true);
}

/**
 * Health states of the active generation: those the previous check saw settled must still be
 * (a kept state is never reset, whatever the reload rebuilt); the others get a safety timeout to
 * settle. Settled: healthy exactly when the target is live (its probes pass).
 */
async function checkHealth(model: Model, real: Real): Promise<void> {
  const states = model.active.upstreams.flatMap((u) =>
    u.healthCheck === undefined
      ? []
      : u.targets.map((target, i) => ({
          key: targetHealthKey(u.name, target),
          live: isLive(target),
          healthy: () => real.daemon.reloader.active!.upstreams().get(u.name)!.targets[i]!.healthy,
        })),
  );
  expect(real.daemon.registry.entries().filter((e) => e.kind === TARGET_HEALTH_KIND).length, 'live health states').to.equal(states.length);
  for (const state of states)
    if (model.settled.has(state.key)) expect(state.healthy(), `kept health state ${state.key} (live: ${state.live})`).to.equal(state.live);
  const unsettled = states.filter((s) => s.healthy() !== s.live);
  if (unsettled.length > 0) {
    bump(real.observed, 'health settle waits');
    await waitFor(`health states ${unsettled.map((s) => s.key).join(', ')} to settle`, () => states.every((s) => s.healthy() === s.live), 20_000);
  }
  model.settled = new Set(states.map((s) => s.key));
}

type ModelCommand = fc.AsyncCommand<Model, Real>;

/** Count a command run. */
function tally(real: Real, name: string): void {
  bump(real.stats, name);
}

/** Write a valid config and reload: applied, or unchanged when it is the active config in another style. */
class WriteValid implements ModelCommand {
  constructor(
    readonly spec: ConfigSpec,
    readonly style: RenderStyle,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const same = specKey(this.spec) === specKey(model.active);
    tally(real, same ? 'write valid (unchanged)' : 'write valid');
    await writeSpec(model, real, this.spec, this.style);
    expectReloadOfFile(model, await real.daemon.reload('api'));
    await checkInvariants(model, real);
  }
  toString = () => `WriteValid(${specKey(this.spec)}, ${JSON.stringify(this.style)})`;
}

/** Rewrite the active config in another style (order, comments, explicit defaults): unchanged, nothing rebuilt. */
class RewriteActive implements ModelCommand {
  constructor(readonly style: RenderStyle) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, 'rewrite active');
    await writeSpec(model, real, model.active, this.style);
    expectReloadOfFile(model, await real.daemon.reload('api'));
    await checkInvariants(model, real);
  }
  toString = () => `RewriteActive(${JSON.stringify(this.style)})`;
}

/** Write a corrupted config and reload: invalid, naming the corrupted path; nothing changes. */
class WriteInvalid implements ModelCommand {
  constructor(
    readonly spec: ConfigSpec,
    readonly style: RenderStyle,
    readonly corruption: Corruption,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, `write invalid (${this.corruption.type})`);
    const { text, path } = corrupt(this.spec, real.pools, this.style, this.corruption);
    await writeConfigAtomic(real.file, text);
    model.file = 'invalid';
    const result = await real.daemon.reload('api');
    expect(result.result, JSON.stringify(result)).to.equal('invalid');
    expect(result.generation).to.equal(model.generation);
    expect(
      result.errors!.map((e) => e.path),
      JSON.stringify(result.errors),
    ).to.include(path);
    await checkInvariants(model, real);
  }
  toString = () => `WriteInvalid(${specKey(this.spec)}, ${JSON.stringify(this.corruption)})`;
}

/** Reload without touching the file (which may hold what a failed reload could not apply). */
class Reload implements ModelCommand {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, 'reload');
    expectReloadOfFile(model, await real.daemon.reload('api'));
    await checkInvariants(model, real);
  }
  toString = () => 'Reload()';
}

/** Reload a config whose `at`-th create fails (throws, or hangs past the create timeout). */
class FailingReload implements ModelCommand {
  constructor(
    readonly spec: ConfigSpec,
    readonly style: RenderStyle,
    readonly at: number,
    readonly mode: 'throw' | 'hang',
  ) {}
  check = (model: Readonly<Model>) => specKey(this.spec) !== specKey(model.active) && this.creates(model).length > 0;
  creates(model: Readonly<Model>): Acquire[] {
    return acquiresOf(model.active, this.spec, this.style).filter((a) => a.create);
  }
  async run(model: Model, real: Real): Promise<void> {
    const acquires = acquiresOf(model.active, this.spec, this.style);
    const creates = acquires.filter((a) => a.create);
    const failing = creates[this.at % creates.length]!;
    tally(real, `failing create (${this.mode} ${failing.kind})`);
    real.faults.armCreate({ mode: this.mode, at: this.at % creates.length });
    await writeSpec(model, real, this.spec, this.style);
    const result = await real.daemon.reload('api');
    real.faults.disarm();
    expect(result, JSON.stringify(result)).to.deep.include({ result: 'failed', generation: model.generation, path: failing.path });
    count(model, acquires, acquires.indexOf(failing));
    await checkInvariants(model, real);
  }
  toString = () => `FailingReload(${specKey(this.spec)}, at ${this.at}, ${this.mode})`;
}

/** A foreign socket holds a port the new config wants: failed at that listener; nothing changes. */
class PortClash implements ModelCommand {
  constructor(
    readonly spec: ConfigSpec,
    readonly style: RenderStyle,
  ) {}
  check = (model: Readonly<Model>) => model.active.listeners.length < PORT_POOL_SIZE;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, 'port clash');
    const used = new Set(model.active.listeners.map((l) => l.port));
    const clash = [...Array(PORT_POOL_SIZE).keys()].find((i) => !used.has(i))!;
    const spec: ConfigSpec = this.spec.listeners.some((l) => l.port === clash)
      ? this.spec
      : { ...this.spec, listeners: this.spec.listeners.map((l, i) => (i === 0 ? { ...l, port: clash, name: `${l.name}-clash` } : l)) };
    const foreign = await occupyPort(real.pools.ports[clash]!);
    try {
      await writeSpec(model, real, spec, this.style);
      const result = await real.daemon.reload('api');
      const acquires = acquiresOf(model.active, spec, this.style);
      const failAt = acquires.findIndex((a) => a.kind === LISTENER_KIND && a.key === listenerKey(clash));
      expect(result, JSON.stringify(result)).to.deep.include({ result: 'failed', generation: model.generation, path: acquires[failAt]!.path });
      expect(result.error).to.contain('EADDRINUSE');
      count(model, acquires, failAt);
    } finally {
      await foreign.release();
    }
    await checkInvariants(model, real);
  }
  toString = () => `PortClash(${specKey(this.spec)})`;
}

/**
 * Optionally write a config, then send this process `count` SIGHUPs through the daemon's own
 * signal handlers: a handful of reloads, the last one reading the newest file.
 */
class SighupBurst implements ModelCommand {
  constructor(
    readonly spec: ConfigSpec | undefined,
    readonly style: RenderStyle,
    readonly count: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, 'sighup burst');
    if (this.spec) await writeSpec(model, real, this.spec, this.style);
    const exit = sinon.spy();
    let delivered = 0;
    const countSignal = () => (delivered += 1);
    process.on('SIGHUP', countSignal);
    const removeHandlers = real.daemon.handleSignals(exit);
    const before = real.reloads.length;
    try {
      for (let i = 0; i < this.count; i += 1) process.kill(process.pid, 'SIGHUP');
      await waitFor('every SIGHUP to be handled', () => delivered === this.count);
      await real.daemon.reloader.idle();
    } finally {
      removeHandlers();
      process.off('SIGHUP', countSignal);
    }
    const reloads = real.reloads.slice(before);
    expect(exit.called).to.equal(false);
    expect(reloads.every((r) => r.trigger === 'signal')).to.equal(true);
    expect(reloads.length, `${this.count} SIGHUPs → reloads`).to.be.within(1, 3);
    bump(real.observed, 'sighup burst reloads', reloads.length);
    // The first reload reads the file as it is; any later one finds it unchanged.
    expectReloadOfFile(model, reloads[0]!.result);
    for (const later of reloads.slice(1)) expect(later.result.result).to.be.oneOf(model.file === 'invalid' ? ['invalid'] : ['unchanged']);
    await checkInvariants(model, real);
  }
  toString = () => `SighupBurst(${this.spec ? specKey(this.spec) : 'no write'}, ${this.count})`;
}

/**
 * A request on the kept keepalive connection to one listener: answered by the active routes;
 * the connection is the same one as last time exactly when that listener was kept since.
 */
class KeepaliveRequest implements ModelCommand {
  constructor(
    readonly choice: number,
    readonly probe: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, 'keepalive request');
    const listener = model.active.listeners[this.choice % model.active.listeners.length]!;
    const request = probeRequest(PROBES[this.probe % PROBES.length]!);
    const res = await send(real.pools.ports[listener.port]!, request, real.keptAgent);
    observe(real, listener, request, res.status);
    expect({ status: res.status, body: res.body }).to.deep.equal(expectedResponse(model.active, listener, request, model.cursors));
    const epoch = model.listenerEpoch[listener.port]!;
    expect(res.reused, 'the kept connection was reused').to.equal(model.keptAt[listener.port] === epoch);
    if (res.reused) bump(real.observed, 'keepalive reused');
    model.keptAt[listener.port] = epoch;
    await checkInvariants(model, real);
  }
  toString = () => `KeepaliveRequest(${this.choice}, ${this.probe})`;
}

/**
 * A POST with a body through a proxy route whose upstream has a live target, on the probe
 * connections: answered as the model's balancer says (by the live target it picks, which saw
 * the method, the path as the route rewrites it and every body byte; or 502/503).
 */
class ProxyRequest implements ModelCommand {
  constructor(
    readonly choice: number,
    readonly bodyBytes: number,
  ) {}
  /** (listener, probe) pairs whose request the model routes to an upstream with a live target. */
  candidates(model: Readonly<Model>): { listener: ConfigSpec['listeners'][number]; request: ModelRequest }[] {
    return model.active.listeners.flatMap((listener) =>
      PROBES.flatMap((probe) => {
        const route = matchRoute(listener, probe.path, probe.host);
        if (route?.action.type !== 'proxy') return [];
        const upstream = route.action.upstream;
        if (!model.active.upstreams.find((u) => u.name === upstream)!.targets.some(isLive)) return [];
        return [{ listener, request: { method: 'POST' as const, path: probe.path, host: probe.host, bodyBytes: this.bodyBytes } }];
      }),
    );
  }
  check = (model: Readonly<Model>) => this.candidates(model).length > 0;
  async run(model: Model, real: Real): Promise<void> {
    tally(real, 'proxy request');
    const candidates = this.candidates(model);
    const { listener, request } = candidates[this.choice % candidates.length]!;
    const res = await send(real.pools.ports[listener.port]!, request, real.probeAgent);
    observe(real, listener, request, res.status);
    expect({ status: res.status, body: res.body }).to.deep.equal(expectedResponse(model.active, listener, request, model.cursors));
    await checkInvariants(model, real);
  }
  toString = () => `ProxyRequest(${this.choice}, ${this.bodyBytes} bytes)`;
}

/** Every command, with weights favouring the interesting ones. */
export function commandArbs(): fc.Arbitrary<ModelCommand>[] {
  const writeValid = fc.tuple(configArb, styleArb).map(([spec, style]) => new WriteValid(spec, style));
  const proxyRequest = fc.tuple(fc.nat({ max: 8 }), fc.constantFrom(0, 1, 70_000)).map(([choice, bytes]) => new ProxyRequest(choice, bytes));
  return [
    writeValid,
    writeValid,
    styleArb.map((style) => new RewriteActive(style)),
    fc.tuple(configArb, styleArb, corruptionArb).map(([spec, style, corruption]) => new WriteInvalid(spec, style, corruption)),
    fc.constant(new Reload()),
    fc
      .tuple(configArb, styleArb, fc.nat({ max: 3 }), fc.constantFrom<'throw' | 'hang'>('throw', 'throw', 'throw', 'throw', 'throw', 'hang'))
      .map(([spec, style, at, mode]) => new FailingReload(spec, style, at, mode)),
    fc.tuple(configArb, styleArb).map(([spec, style]) => new PortClash(spec, style)),
    fc.tuple(fc.option(configArb, { nil: undefined }), styleArb, fc.constantFrom(2, 50, 200, 1000)).map(([spec, style, n]) => new SighupBurst(spec, style, n)),
    fc.tuple(fc.nat({ max: 2 }), fc.nat({ max: PROBES.length - 1 })).map(([choice, probe]) => new KeepaliveRequest(choice, probe)),
    proxyRequest,
    proxyRequest,
  ];
}
