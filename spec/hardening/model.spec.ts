import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import fc from 'fast-check';
import { Daemon } from '../../lib/daemon.js';
import { silentLogger } from '../../lib/log.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { FileSource } from '../../lib/sources/file.js';
import { OtlpReceiver } from '../helpers/otlp-receiver.js';
import { tempDir } from '../helpers/tmp.js';
import { commandArbs, initialModel, type Model, type Real } from './model/commands.js';
import { PORT_POOL_SIZE, configArb, renderConfig, styleArb, type Pools } from './model/configs.js';
import { FaultyKinds } from './support/faults.js';
import { stablePorts } from './support/ports.js';

/**
 * Model-based reload test (fast-check `commands` + `asyncModelRun`) against the real daemon,
 * in-process: real config file, real listeners on a pool of real ports, real signals.
 *
 * CI runs a fixed seed. HOTCONF_MODEL_RUNS=N runs N sequences from a random seed;
 * HOTCONF_MODEL_SEED=S (and HOTCONF_MODEL_PATH=P) replays a failure, as printed when one occurs.
 */
const FIXED_SEED = 20261124;
const CI_RUNS = 300;
const runs = Number(process.env.HOTCONF_MODEL_RUNS ?? CI_RUNS);
const seed = process.env.HOTCONF_MODEL_SEED !== undefined ? Number(process.env.HOTCONF_MODEL_SEED) : process.env.HOTCONF_MODEL_RUNS ? Date.now() ^ (Math.random() * 0x7fffffff) : FIXED_SEED;
const path = process.env.HOTCONF_MODEL_PATH;

describe('hardening: model-based reloads against the real daemon', function () {
  // Hundreds of sequences of real reloads: a generous safety limit, far above the normal run.
  this.timeout(Math.max(600_000, runs * 4000));

  it(`keeps one generation serving the model's config, with every resource held once and nothing leaked (${runs} sequences, seed ${seed})`, async () => {
    const receiver = await OtlpReceiver.start();
    const pools: Pools = { ports: await stablePorts(PORT_POOL_SIZE), otlpUrl: receiver.url };
    const dir = await tempDir();
    const stats: Record<string, number> = {};
    let sequences = 0;

    const property = fc.asyncProperty(configArb, styleArb, fc.commands(commandArbs(), { maxCommands: 12, size: "medium", replayPath: path }), async (initial, style, commands) => {
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
      const real: Real = { daemon, file, pools, faults, probeAgent, keptAgent, reloads: [], stats };
      daemon.reloader.subscribe((event) => {
        if (event.type === 'reload') real.reloads.push({ trigger: event.trigger, result: event.result });
      });
      try {
        await daemon.start();
        const model: Model = initialModel(initial, pools);
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
    });

    const details = await fc.check(property, { seed, numRuns: runs, ...(path ? { path } : {}) });
    const commandsRun = Object.entries(stats).filter(([k]) => !k.startsWith('sighup burst reloads') && k !== 'keepalive reused').reduce((n, [, v]) => n + v, 0);
    console.log(`        ${sequences} sequences, ${commandsRun} commands: ${Object.entries(stats).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (details.failed) {
      const replay = `replay: HOTCONF_MODEL_SEED=${details.seed} HOTCONF_MODEL_PATH='${details.counterexamplePath}' npx mocha --grep model-based`;
      throw new Error(`${fc.defaultReportMessage(details)}\n${replay}\n${(details.errorInstance as Error)?.stack ?? String(details.errorInstance)}`);
    }
  });
});
