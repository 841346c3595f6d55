import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { stablePorts } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { TestUpstream, type UpstreamHandler } from '../../harness/upstream.js';
import { silentLogger } from '../../lib/core/log.js';
import { Daemon } from '../../lib/daemon/daemon.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { FileSource } from '../../lib/sources/file.js';
import { FaultyKinds } from './faulty-kinds.js';
import { checkInvariants, commandArbs, initialModel, type Model, type Real } from './model/commands.js';
import { configArb, LIVE_TARGETS, liveBody, PORT_POOL_SIZE, type Pools, renderConfig, styleArb, TARGET_POOL_SIZE } from './model/configs.js';

/** A live target: reads the whole body, answers who it is and what it received (see `liveBody`). */
function identifying(index: number): UpstreamHandler {
  return (req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.byteLength));
    req.on('end', () => {
      const body = liveBody(index, req.method ?? '', req.url ?? '', bytes);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  };
}

/**
 * Model-based reload test (fast-check `commands` + `asyncModelRun`) against the real daemon,
 * in-process: real config file, real listeners on a pool of real ports, real upstreams (test
 * upstreams on loopback, and ports nothing listens on) with real health checks, real signals.
 *
 * CI runs a fixed seed. HOTCONF_MODEL_RUNS=N runs N sequences from a random seed;
 * HOTCONF_MODEL_SEED=S (and HOTCONF_MODEL_PATH=P) replays a failure, as printed when one occurs.
 */
const FIXED_SEED = 20261124;
const CI_RUNS = 300;
const runs = Number(process.env.HOTCONF_MODEL_RUNS ?? CI_RUNS);
const seed =
  process.env.HOTCONF_MODEL_SEED !== undefined
    ? Number(process.env.HOTCONF_MODEL_SEED)
    : process.env.HOTCONF_MODEL_RUNS
      ? Date.now() ^ (Math.random() * 0x7fffffff)
      : FIXED_SEED;
const path = process.env.HOTCONF_MODEL_PATH;

describe('hardening: model-based reloads against the real daemon', function () {
  // Hundreds of sequences of real reloads: a generous safety limit, far above the normal run.
  this.timeout(Math.max(600_000, runs * 4000));

  it(`keeps one generation serving the model's config, proxied routes included, with every resource held by it as often as it leases it and nothing leaked (${runs} sequences, seed ${seed})`, async () => {
    const receiver = await OtlpReceiver.start();
    const live = await Promise.all(Array.from({ length: LIVE_TARGETS }, (_, i) => TestUpstream.start({ handler: identifying(i) })));
    // Dead targets: ports outside the ephemeral range that no listener of the model uses either.
    const ports = await stablePorts(PORT_POOL_SIZE + TARGET_POOL_SIZE - LIVE_TARGETS);
    const pools: Pools = {
      ports: ports.slice(0, PORT_POOL_SIZE),
      otlpUrl: receiver.url,
      targets: [...live.map((u) => u.origin), ...ports.slice(PORT_POOL_SIZE).map((p) => `http://127.0.0.1:${p}`)],
    };
    const dir = await tempDir();
    const stats: Record<string, number> = {};
    const observed: Record<string, number> = {};
    let sequences = 0;

    const property = fc.asyncProperty(
      configArb,
      styleArb,
      fc.commands(commandArbs(), { maxCommands: 12, size: 'medium', replayPath: path }),
      async (initial, style, commands) => {
        sequences += 1;
        const file = join(dir, 'hotconf.yaml');
        await writeFile(file, renderConfig(initial, pools, style));
        const logger = silentLogger();
        const registry = new ResourceRegistry({ createTimeoutMs: 200, destroyTimeoutMs: 1000, logger });
        const faults = new FaultyKinds();
        const daemon = new Daemon({
          source: new FileSource({ path: file, logger }),
          logger,
          registry,
          kinds: faults.kinds,
          adminListen: '127.0.0.1:0',
          watch: false,
          defaultMetrics: false,
          // Kept connections must outlive any pause between commands.
          httpLimits: { keepAliveTimeoutMs: 600_000 },
        });
        const probeAgent = new Agent({ keepAlive: true, maxSockets: 4 });
        const keptAgent = new Agent({ keepAlive: true, maxSockets: 1 });
        const real: Real = { daemon, file, pools, faults, probeAgent, keptAgent, reloads: [], stats, observed };
        daemon.reloader.subscribe((event) => {
          if (event.type === 'reload') real.reloads.push({ trigger: event.trigger, result: event.result });
        });
        try {
          await daemon.start();
          const model: Model = initialModel(initial, style);
          await checkInvariants(model, real);
          await fc.asyncModelRun(() => ({ model, real }), commands);
          // Leases are only found leaked once collected: collect, then look again.
          global.gc?.();
          await new Promise((resolve) => setImmediate(resolve));
          for (const [kind, s] of Object.entries(registry.stats())) if (s.leakedLeases !== 0) throw new Error(`${kind}: ${s.leakedLeases} leaked lease(s)`);
        } finally {
          probeAgent.destroy();
          keptAgent.destroy();
          await daemon.stop();
          await registry.close();
        }
      },
    );

    const details = await fc.check(property, { seed, numRuns: runs, ...(path ? { path } : {}) });
    const commandsRun = Object.values(stats).reduce((n, v) => n + v, 0);
    const list = (counts: Record<string, number>) =>
      Object.entries(counts)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    console.log(`        ${sequences} sequences, ${commandsRun} commands: ${list(stats)}\n        observed: ${list(observed)}`);
    if (details.failed) {
      const replay = `replay: HOTCONF_MODEL_SEED=${details.seed} HOTCONF_MODEL_PATH='${details.counterexamplePath}' npx mocha --grep model-based`;
      throw new Error(`${fc.defaultReportMessage(details)}\n${replay}\n${(details.errorInstance as Error)?.stack ?? String(details.errorInstance)}`);
    }
  });
});
