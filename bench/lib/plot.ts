import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { SoakSample } from '../parts/soak.js';

/**
 * The soak plot: open fds, active handles and heap after GC against reload count, hotconf beside
 * the eager counterfactual, one row per metric with its own y scale. Rendered by vega-lite →
 * vega → SVG (headless, no canvas needed).
 */
export async function soakSvg(series: Record<string, SoakSample[]>): Promise<string> {
  const values = Object.entries(series).flatMap(([implementation, samples]) =>
    samples.flatMap((s) => [
      { implementation, metric: 'open fds', reloads: s.reloads, value: s.fds },
      { implementation, metric: 'active handles', reloads: s.reloads, value: s.handles },
      { implementation, metric: 'heap after GC (MiB)', reloads: s.reloads, value: s.heap_bytes / 1024 / 1024 },
    ]),
  );
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Leak soak: resources held against reload count',
    data: { values },
    facet: { row: { field: 'metric', type: 'nominal', title: null, sort: ['open fds', 'active handles', 'heap after GC (MiB)'] } },
    spec: {
      width: 560,
      height: 150,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'reloads', type: 'quantitative', title: 'reloads' },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'implementation', type: 'nominal', title: null, legend: { labelLimit: 400, orient: 'top' } },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
