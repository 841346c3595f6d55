import { httpRequest } from './http.js';

/**
 * Scrape `GET /metrics` and return the value of the series `name` whose labels include every
 * pair of `labels` (summed when several match), 0 when none does.
 */
export async function metricValue(admin: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { body } = await httpRequest(`${admin}/metrics`);
  let sum = 0;
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const present = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1], p[2]]));
    if (Object.entries(labels).every(([k, v]) => present.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}
