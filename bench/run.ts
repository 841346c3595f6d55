/**
 * `npm run bench [-- --quick] [-- --only part,part]`: every part measured side by side in one
 * run, printed as it finishes, then a markdown table; results in bench/results/latest.{json,md}
 * and the soak plot in bench/results/soak.svg (a `--quick` or `--only` run: bench/results/quick/). A part that cannot run (a tool missing) fails
 * loudly with the install command and makes the run exit 1; it is never skipped silently.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { soakSvg } from './lib/plot.js';
import { machineFacts, round } from './lib/util.js';
import { h2Part, httpsStormPart, wsSurvivalPart } from './parts/edge.js';
import { etcdFleetPart } from './parts/etcd-fleet.js';
import { proxyCpuPart } from './parts/proxy-cpu.js';
import { registryPart } from './parts/registry.js';
import { reloadEtcdPart } from './parts/reload-etcd.js';
import { reloadFilePart } from './parts/reload-file.js';
import { SCALE_CHANGES, scalePart } from './parts/scale.js';
import { eagerPart, type SoakRun, soakClusterPart, soakPart } from './parts/soak.js';
import { stormPart } from './parts/storm.js';

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

interface Part {
  name: string;
  /** The part's result fields (numbers, for latest.json). */
  run(quick: boolean): Promise<object>;
  /** One line for the console when the part finished. */
  line(result: Record<string, unknown>): string;
}

type Results = Record<string, Record<string, unknown>>;

const soakSamples: Record<string, SoakRun['samples']> = {};

/** Keep a soak run's samples for the plot under `label`; its other fields are the result. */
function soakResult<R extends SoakRun>(label: string, run: R): Omit<R, 'samples'> {
  const { samples, ...numbers } = run;
  soakSamples[label] = samples;
  return numbers;
}

const PARTS: Part[] = [
  {
    name: 'registry',
    run: registryPart,
    line: (r) =>
      `registry: reuse path ${fmt(r.acquire_release_ops_per_s)} ops/s vs raw Map ${fmt(r.raw_map_ops_per_s)} ops/s (ratio ${round(Number(r.ratio_to_raw_map), 3)})`,
  },
  {
    name: 'reload_file',
    run: reloadFilePart,
    line: (r) => `reload_file: p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms over ${r.samples} changes`,
  },
  {
    name: 'reload_etcd',
    run: reloadEtcdPart,
    line: (r) => `reload_etcd: put → served p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms; raw watch floor p50 ${r.watch_floor_p50_ms} ms over ${r.samples} puts`,
  },
  {
    name: 'etcd_fleet',
    run: etcdFleetPart,
    line: (r) =>
      `etcd_fleet: ${r.fleet} daemons, put → served by all p50 ${r.served_all_p50_ms} ms, p99 ${r.served_all_p99_ms} ms; applied by all p50 ${r.applied_all_p50_ms} ms; raw watch floor p50 ${r.watch_floor_p50_ms} ms over ${r.samples} puts`,
  },
  {
    name: 'storm',
    run: stormPart,
    line: (r) =>
      `storm: hotconf ${fmt(r.baseline_rps)} → ${fmt(r.storm_rps)} rps under ${r.storm_reloads} reloads, ${r.errors} errors; hotconf --workers 2 ${fmt(r.w2_baseline_rps)} → ${fmt(r.w2_storm_rps)} rps under ${r.w2_storm_reloads} reloads, ${r.w2_errors} errors; caddy ${fmt(r.caddy_baseline_rps)} → ${fmt(r.caddy_storm_rps)} rps under ${r.caddy_storm_reloads} reloads, ${r.caddy_errors} errors`,
  },
  {
    name: 'https_storm',
    run: httpsStormPart,
    line: (r) =>
      `https_storm: hotconf ${fmt(r.baseline_rps)} → ${fmt(r.storm_rps)} rps under ${r.storm_reloads} reloads (1 in 5 a rotation), ${r.errors} errors; caddy ${fmt(r.caddy_baseline_rps)} → ${fmt(r.caddy_storm_rps)} rps under ${r.caddy_storm_reloads} reloads, ${r.caddy_errors} errors`,
  },
  {
    name: 'h2_throughput',
    run: h2Part,
    line: (r) =>
      `h2_throughput (h2load): hotconf ${fmt(r.baseline_rps)} → ${fmt(r.storm_rps)} rps under ${r.storm_reloads} reloads, ${r.errors} errors; caddy ${fmt(r.caddy_baseline_rps)} → ${fmt(r.caddy_storm_rps)} rps under ${r.caddy_storm_reloads} reloads, ${r.caddy_errors} errors`,
  },
  {
    name: 'websocket_survival',
    run: wsSurvivalPart,
    line: (r) =>
      `websocket_survival: after ${r.reloads} unrelated reloads hotconf ${r.open_after}/${r.tunnels} open (${r.echoing_after} echoing), caddy ${r.caddy_open_after}/${r.tunnels} open (${r.caddy_echoing_after} echoing)`,
  },
  {
    name: 'proxy_cpu',
    run: proxyCpuPart,
    line: (r) =>
      `proxy_cpu: µs of proxy CPU per request: hotconf ${r.hotconf_w1_cpu_us} (1 worker, ${fmt(r.hotconf_w1_rps)} rps), ${r.hotconf_w2_cpu_us} (2 workers, ${fmt(r.hotconf_w2_rps)} rps), traced ${r.hotconf_w1_traced_cpu_us} / 1% ${r.hotconf_w1_sampled_1pct_cpu_us}, access log to a file ${r.hotconf_w1_access_log_cpu_us}; caddy ${r.caddy_cpu_us} (${fmt(r.caddy_rps)} rps, access log ${r.caddy_access_log_cpu_us}); nginx ${r.nginx_cpu_us} (${fmt(r.nginx_rps)} rps, access log ${r.nginx_access_log_cpu_us})`,
  },
  {
    name: 'scale',
    run: scalePart,
    line: (r) =>
      (
        [
          ['r1000', 'hotconf 1,000 routes (file)'],
          ['r10000', 'hotconf 10,000 routes (file)'],
          ['caddy10000', 'caddy 10,000 routes'],
          ['dir100000', 'hotconf 100,000 routes (--config-dir)'],
        ] as const
      )
        .filter(([prefix]) => r[`${prefix}_startup_ms`] !== undefined)
        .map(
          ([prefix, label]) =>
            `scale ${label}: start ${fmt(r[`${prefix}_startup_ms`])} ms, RSS ${fmt(Number(r[`${prefix}_rss_after_start_bytes`]) / 2 ** 20)} MiB (${fmt(Number(r[`${prefix}_rss_per_1000_routes_bytes`]) / 2 ** 20)} MiB per 1,000 routes, ${fmt(Number(r[`${prefix}_rss_growth_over_reloads_bytes`]) / 2 ** 20)} MiB over ${r[`${prefix}_reloads`]} reloads, peak ${fmt(Number(r[`${prefix}_peak_rss_over_reloads_bytes`]) / 2 ** 20)} MiB), ${scaleHeapLine(r, prefix)}, one-route change → served p50 ${r[`${prefix}_change_p50_ms`]} ms / p99 ${r[`${prefix}_change_p99_ms`]} ms, last/first route ${fmt(r[`${prefix}_last_route_rps`])} / ${fmt(r[`${prefix}_first_route_rps`])} rps`,
        )
        .join('; '),
  },
  {
    name: 'soak',
    // One process in this one (GC forced before each sample), then a `--workers 2` cluster as a
    // child process (fds of every process, handles of every worker), side by side.
    run: async (quick) => ({
      ...soakResult('hotconf', await soakPart(quick ? 1000 : 5000)),
      ...(await soakClusterPart(2, quick ? 300 : 2000)),
    }),
    line: (r) =>
      `soak: ${r.reloads} reloads, fd Δ ${r.fd_delta}, handles Δ ${r.handles_delta}, heap Δ ${fmt(r.heap_delta_bytes)} B, exporter sockets leaked ${r.sockets_leaked}; ${trendLine(r)}; the daemon's /leaks: ${r.daemon_growing || 'nothing growing'}; --workers 2: ${r.w2_reloads} reloads, largest fd Δ ${r.w2_fd_delta} (primary ${r.w2_primary_fd_delta}, workers ${r.w2_worker1_fd_delta} / ${r.w2_worker2_fd_delta}), largest handles Δ ${r.w2_handles_delta}, trend fds ${signed(r.w2_fds_per_reload)} handles ${signed(r.w2_handles_per_reload)} per reload (growing: ${r.w2_growing || 'none'}), /leaks ${r.w2_leaks_ok ? 'ok' : 'NOT ok'}`,
  },
  {
    name: 'eager_counterfactual',
    run: async (quick) => soakResult('eager (Caddy pattern)', await eagerPart(quick ? 1000 : 5000)),
    line: (r) =>
      `eager counterfactual: ${r.reloads} reloads, sockets leaked ${r.sockets_leaked}, fd Δ ${r.fd_delta}, handles Δ ${r.handles_delta}, heap Δ ${fmt(r.heap_delta_bytes)} B; ${trendLine(r)}`,
  },
];

/** The scale part's live heap after a full collection across its reloads, or that the server has none to read (Caddy). */
function scaleHeapLine(r: Record<string, unknown>, prefix: string): string {
  if (typeof r[`${prefix}_heap_after_gc_reloads_bytes`] !== 'number') return 'live heap not measured (no inspector)';
  const mib = (field: string) => fmt(Number(r[`${prefix}_${field}`]) / 2 ** 20);
  return `live heap after a full collection ${mib('heap_after_gc_start_bytes')} → ${mib('heap_after_gc_changes_bytes')} → ${mib('heap_after_gc_reloads_bytes')} MiB (start → ${SCALE_CHANGES} changes → all reloads: ${signed(Number(r[`${prefix}_heap_growth_over_reloads_bytes`]) / 2 ** 20)} MiB)`;
}

/**
 * Bound on the scale part's live-heap growth over its untimed reloads: 1 % of the live heap or
 * 2 MiB, whichever is larger. A reload that kept its generation alive would add the whole
 * generation's tables each time (about 1.2 MB per 1,000 routes, README "RSS across reloads"),
 * tens of MiB over 80 reloads even at 1,000 routes; what does move without a leak is V8's own
 * bookkeeping (hash tables that double, compiled code, feedback): 1 MB at 100,000 routes
 * (141 MB live) in the README's run. 2 MiB over 80 reloads still catches ~26 KB kept per reload.
 */
function scaleHeapBound(heapBytes: number): number {
  return Math.max(0.01 * heapBytes, 2 * 2 ** 20);
}

/** The least-squares slopes of a soak run and what grows past 0.5 per reload. */
function trendLine(r: Record<string, unknown>): string {
  return `trend per reload: fds ${signed(r.fds_per_reload)}, handles ${signed(r.handles_per_reload)}, exporter connections ${signed(r.exporter_connections_per_reload)} (growing: ${r.growing || 'none'})`;
}

function signed(value: unknown): string {
  const n = Number(value);
  return `${n >= 0 ? '+' : ''}${n.toFixed(3)}`;
}

function fmt(value: unknown): string {
  return Number(value).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

interface Goal {
  goal: string;
  measured: string;
  met: boolean | null;
}

/** The README's goals, checked against this run (null: the part did not run). */
function goals(r: Results): Goal[] {
  const out: Goal[] = [];
  const has = (part: string) => r[part] && !r[part]!.error;
  const n = (part: string, field: string) => Number(r[part]?.[field]);
  out.push(
    has('registry')
      ? {
          goal: 'registry reuse path ≥ 0.2 × raw Map loop',
          measured: `${round(n('registry', 'ratio_to_raw_map'), 3)} ×`,
          met: n('registry', 'ratio_to_raw_map') >= 0.2,
        }
      : { goal: 'registry reuse path ≥ 0.2 × raw Map loop', measured: 'not run', met: null },
  );
  out.push(
    has('reload_file')
      ? { goal: 'file change → served p50 ≤ 100 ms', measured: `${n('reload_file', 'p50_ms')} ms`, met: n('reload_file', 'p50_ms') <= 100 }
      : { goal: 'file change → served p50 ≤ 100 ms', measured: 'not run', met: null },
  );
  if (has('reload_etcd')) {
    const ratio = n('reload_etcd', 'p50_ms') / n('reload_etcd', 'watch_floor_p50_ms');
    out.push({ goal: 'etcd put → served p50 ≤ 3 × raw watch round trip', measured: `${round(ratio, 2)} ×`, met: ratio <= 3 });
  } else out.push({ goal: 'etcd put → served p50 ≤ 3 × raw watch round trip', measured: 'not run', met: null });
  if (has('storm')) {
    const ratio = n('storm', 'storm_rps') / n('storm', 'baseline_rps');
    out.push({
      goal: 'storm throughput ≥ 0.9 × baseline, zero errors',
      measured: `${round(ratio, 3)} ×, ${n('storm', 'errors')} errors`,
      met: ratio >= 0.9 && n('storm', 'errors') === 0,
    });
    out.push({
      goal: 'storm with --workers 2: zero errors',
      measured: `${n('storm', 'w2_errors')} errors under ${n('storm', 'w2_storm_reloads')} reloads (${fmt(n('storm', 'w2_baseline_rps'))} → ${fmt(n('storm', 'w2_storm_rps'))} rps)`,
      met: n('storm', 'w2_errors') === 0,
    });
    out.push({
      goal: 'proxy throughput vs Caddy (same machine)',
      measured: `${round(n('storm', 'baseline_rps') / n('storm', 'caddy_baseline_rps'), 2)} ×`,
      met: null,
    });
  } else {
    out.push({ goal: 'storm throughput ≥ 0.9 × baseline, zero errors', measured: 'not run', met: null });
    out.push({ goal: 'storm with --workers 2: zero errors', measured: 'not run', met: null });
  }
  for (const part of ['https_storm', 'h2_throughput']) {
    if (!has(part)) {
      out.push({ goal: `${part}: zero errors under reloads and rotations`, measured: 'not run', met: null });
      continue;
    }
    out.push({
      goal: `${part}: zero errors under reloads and rotations`,
      measured: `${n(part, 'errors')} errors (caddy ${n(part, 'caddy_errors')})`,
      met: n(part, 'errors') === 0,
    });
    out.push({
      goal: `${part}: storm rps vs Caddy's (same machine)`,
      measured: `${round(n(part, 'storm_rps') / n(part, 'caddy_storm_rps'), 2)} ×`,
      met: null,
    });
  }
  if (has('websocket_survival')) {
    out.push({
      goal: 'websocket_survival: every tunnel open and echoing after the reloads',
      measured: `hotconf ${n('websocket_survival', 'echoing_after')}/${n('websocket_survival', 'tunnels')}, caddy ${n('websocket_survival', 'caddy_echoing_after')}/${n('websocket_survival', 'tunnels')}`,
      met: n('websocket_survival', 'echoing_after') === n('websocket_survival', 'tunnels'),
    });
  } else out.push({ goal: 'websocket_survival: every tunnel open and echoing after the reloads', measured: 'not run', met: null });
  if (has('proxy_cpu')) {
    const cpu = n('proxy_cpu', 'cpu_ratio_workers1_to_caddy');
    const rps = n('proxy_cpu', 'rps_ratio_workers2_to_caddy');
    out.push({ goal: 'proxy CPU per request, --workers 1 ≤ 1.0 × Caddy (moonshot ≤ 0.6 ×)', measured: `${round(cpu, 2)} ×`, met: cpu <= 1 });
    out.push({ goal: 'requests/s, --workers 2 ≥ 1.0 × Caddy', measured: `${round(rps, 2)} ×`, met: rps >= 1 });
  }
  if (has('scale') && r.scale!.r10000_startup_ms !== undefined) {
    const change = n('scale', 'r10000_change_p50_ms');
    const ratio = n('scale', 'r10000_last_to_first');
    out.push({ goal: 'scale: one-route change in a 10,000-route file served p50 ≤ 50 ms', measured: `${change} ms`, met: change <= 50 });
    out.push({ goal: 'scale: last-route requests/s ≥ 0.9 × first-route at 10,000 routes', measured: `${round(ratio, 3)} ×`, met: ratio >= 0.9 });
  }
  if (has('scale')) {
    const cases = ['r1000', 'r10000', 'dir100000'].filter((prefix) => typeof r.scale![`${prefix}_heap_growth_over_reloads_bytes`] === 'number');
    const goal = 'scale: live heap flat across 100 reloads (after a full collection)';
    if (cases.length === 0) out.push({ goal, measured: 'not run', met: null });
    else {
      const growth = (prefix: string) => n('scale', `${prefix}_heap_growth_over_reloads_bytes`);
      const bound = (prefix: string) => scaleHeapBound(n('scale', `${prefix}_heap_after_gc_changes_bytes`));
      out.push({
        goal,
        measured: cases
          .map(
            (prefix) =>
              `${prefix} ${signed(growth(prefix) / 2 ** 20)} MiB over ${n('scale', `${prefix}_reloads`) - SCALE_CHANGES} reloads (bound ${fmt(bound(prefix) / 2 ** 20)} MiB, live ${fmt(n('scale', `${prefix}_heap_after_gc_reloads_bytes`) / 2 ** 20)} MiB)`,
          )
          .join('; '),
        met: cases.every((prefix) => growth(prefix) <= bound(prefix)),
      });
    }
  }
  if (has('scale') && r.scale!.dir100000_startup_ms !== undefined) {
    const change = n('scale', 'dir100000_change_p50_ms');
    out.push({
      goal: 'scale: one-route change in one fragment of a 100,000-route --config-dir served p50 ≤ 20 ms',
      measured: `${change} ms`,
      met: change <= 20,
    });
  }
  if (has('soak')) {
    const fd = n('soak', 'fd_delta');
    const handles = n('soak', 'handles_delta');
    out.push({ goal: 'soak fd and handle deltas ≤ 3', measured: `fd Δ ${fd}, handles Δ ${handles}`, met: fd <= 3 && handles <= 3 });
    if (r.soak!.w2_reloads !== undefined) {
      const w2fd = n('soak', 'w2_fd_delta');
      const w2handles = n('soak', 'w2_handles_delta');
      out.push({
        goal: 'soak with --workers 2: fd and handle deltas ≤ 3 per process',
        measured: `largest over ${n('soak', 'w2_reloads')} reloads: fd Δ ${w2fd} (primary ${n('soak', 'w2_primary_fd_delta')}, workers ${n('soak', 'w2_worker1_fd_delta')} / ${n('soak', 'w2_worker2_fd_delta')}), handles Δ ${w2handles}`,
        met: w2fd <= 3 && w2handles <= 3 && r.soak!.w2_leaks_ok === true,
      });
    }
  }
  if (has('soak') || has('eager_counterfactual')) {
    const side = (part: string) => (has(part) ? `fds ${signed(n(part, 'fds_per_reload'))}, handles ${signed(n(part, 'handles_per_reload'))}` : 'not run');
    out.push({
      goal: 'soak trend ≤ 0.5 per reload, nothing growing (eager beside it)',
      measured: `hotconf ${side('soak')}; eager ${side('eager_counterfactual')} per reload`,
      met: has('soak') ? r.soak!.growing === '' && (r.soak!.daemon_growing ?? '') === '' : null,
    });
  }
  if (has('eager_counterfactual')) {
    out.push({
      goal: 'eager counterfactual leak shown beside it',
      measured: `${n('eager_counterfactual', 'sockets_leaked')} sockets over ${n('eager_counterfactual', 'reloads')} reloads`,
      met: n('eager_counterfactual', 'sockets_leaked') > 0,
    });
  }
  return out;
}

function markdown(r: Results, machine: ReturnType<typeof machineFacts>, quick: boolean): string {
  const rows: string[] = ['| part | field | value |', '|---|---|---:|'];
  for (const [part, fields] of Object.entries(r)) {
    for (const [field, value] of Object.entries(fields)) rows.push(`| ${part} | ${field} | ${typeof value === 'number' ? fmt(value) : String(value)} |`);
  }
  const goalRows = [
    '| goal | measured | met |',
    '|---|---|---|',
    ...goals(r).map((g) => `| ${g.goal} | ${g.measured} | ${g.met === null ? '–' : g.met ? 'yes' : 'no'} |`),
  ];
  return [
    `Run ${machine.date}${quick ? ' (--quick)' : ''} on ${machine.cpu_model}, ${machine.cores} cores, Node ${machine.node_version}.`,
    '',
    ...goalRows,
    '',
    ...rows,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const onlyArg =
    args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? (args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined);
  const only = onlyArg ? new Set(onlyArg.split(',')) : undefined;
  const machine = machineFacts();
  console.log(`hotconf bench${quick ? ' --quick' : ''}: ${machine.cpu_model}, ${machine.cores} cores, Node ${machine.node_version}`);
  const results: Results = {};
  let failed = 0;
  for (const part of PARTS) {
    if (only && !only.has(part.name)) continue;
    const started = Date.now();
    try {
      results[part.name] = (await part.run(quick)) as Record<string, unknown>;
      console.log(`✔ ${part.line(results[part.name]!)}  [${round((Date.now() - started) / 1000, 1)} s]`);
    } catch (error) {
      failed += 1;
      results[part.name] = { error: (error as Error).message };
      console.log(`✘ ${part.name} FAILED: ${(error as Error).message}`);
    }
  }
  // Only a full run of every part replaces the committed results; a quick or partial run writes
  // beside them (bench/results/quick/, ignored by git), so it leaves the checkout unmodified.
  const dir = quick || only ? `${RESULTS}quick/` : RESULTS;
  const shown = quick || only ? 'bench/results/quick/' : 'bench/results/';
  await mkdir(dir, { recursive: true });
  const json = { machine, quick, ...results, goals: goals(results), soak_samples: soakSamples };
  const md = markdown(results, machine, quick);
  await writeFile(`${dir}latest.json`, `${JSON.stringify(json, null, 2)}\n`);
  await writeFile(`${dir}latest.md`, md);
  if (Object.keys(soakSamples).length > 0) await writeFile(`${dir}soak.svg`, await soakSvg(soakSamples));
  console.log(`\n${md}`);
  console.log(`results: ${shown}latest.json, latest.md${Object.keys(soakSamples).length > 0 ? ', soak.svg' : ''}`);
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
