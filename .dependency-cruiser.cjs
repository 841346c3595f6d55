/**
 * Dependency rules, run by `npm test` (`npm run deps`).
 *
 * Layers, in order; data flows one way (source → documents → parse → validate → provision →
 * swap → drain), and a module imports only from its own layer and the layers before it:
 *
 *   core → config → registry → sources → net → telemetry → resources → dataplane → reload → cluster → admin → daemon → cli
 *
 * - core: errors, log, once, emitter, timeout (imports no other hotconf module)
 * - dataplane declares the ports it needs from a generation (`ServingGeneration`); reload
 *   implements them; only daemon wiring knows both.
 * - lib/index.ts is the package's public surface and may re-export any layer.
 * - spec/ is imported by nothing but spec/; harness/ (real servers for specs and benches) imports
 *   only lib/ and itself.
 */
const LAYERS = ['core', 'config', 'registry', 'sources', 'net', 'telemetry', 'resources', 'dataplane', 'reload', 'cluster', 'admin', 'daemon', 'cli'];

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `lib/${layer}/ may import only from ${LAYERS.slice(0, i + 1).join(', ')}`,
  severity: 'error',
  from: { path: `^lib/${layer}/` },
  to: { path: `^lib/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only imports included: a cycle means two modules are one, or a port is missing.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'lib-root-is-the-index',
      comment: 'Only lib/index.ts may sit at the root of lib/; every other module belongs to a layer folder.',
      severity: 'error',
      from: { path: '^lib/[^/]+\\.ts$', pathNot: '^lib/index\\.ts$' },
      to: {},
    },
    {
      name: 'nothing-imports-the-index',
      comment: 'lib/index.ts is for package users; modules import what they use directly.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^lib/index\\.ts$' },
    },
    {
      name: 'no-spec-outside-spec',
      comment: 'spec/ is imported by spec/ only (benches and the harness never depend on a spec).',
      severity: 'error',
      from: { pathNot: '^spec/' },
      to: { path: '^spec/' },
    },
    {
      name: 'lib-imports-no-tooling',
      comment: 'lib/ ships; bench/ and harness/ do not.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(bench|harness)/' },
    },
    {
      name: 'harness-imports-no-bench',
      severity: 'error',
      from: { path: '^harness/' },
      to: { path: '^bench/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      // Exception: vega-lite (bench plots only) ships an `exports` map the resolver does not
      // follow; tsc resolves it, and bench/run.ts fails loudly if it cannot load.
      to: { couldNotResolve: true, pathNot: '^vega-lite$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'], conditionNames: ['import', 'node', 'default'] },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
