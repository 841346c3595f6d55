import { httpRequest } from './http.js';

/**
 * The value of the series `name` in a Prometheus text exposition whose labels include every
 * pair of `labels` (summed when several match); undefined when none does.
 */
export function sampleValue(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const present = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1], p[2]]));
    if (Object.entries(labels).every(([k, v]) => present.get(k) === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** Scrape `GET {admin}/metrics` and return `sampleValue` of it, 0 when no series matches. */
export async function metricValue(admin: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { body } = await httpRequest(`${admin}/metrics`);
  return sampleValue(body, name, labels) ?? 0;
}
