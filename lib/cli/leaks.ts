import type { LeakReport, LeakTrend } from '../admin/leaks.js';
import { type AdminClientOptions, AdminUnreachableError, adminBaseUrl, callAdmin, cliAdminToken, EXIT_UNREACHABLE, isAdminCallError } from './admin-client.js';
import type { Io } from './io.js';

/**
 * `hotconf leaks [--admin URL] [--token-file FILE] [--json]`: print the daemon's leak report as a
 * table per kind (or the raw JSON). Exit 0 clean, 1 when a leak is suspected, 2 when the daemon
 * is unreachable or refuses the token.
 */
export async function leaksCommand(options: AdminClientOptions & { json?: boolean }, io: Io): Promise<number> {
  const base = adminBaseUrl(options.admin);
  let report: LeakReport;
  try {
    const { status, body } = await callAdmin(base, 'GET', '/leaks', { token: await cliAdminToken(options.tokenFile) });
    if (status !== 200) throw new AdminUnreachableError(`${base}/leaks answered ${status}`);
    report = body as LeakReport;
  } catch (error) {
    if (!isAdminCallError(error)) throw error;
    io.err(`${error.message}\n`);
    return EXIT_UNREACHABLE;
  }
  io.out(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatLeakReport(report));
  return report.ok ? 0 : 1;
}

/** The human table: one row per kind, then generations, handles and suspects. */
export function formatLeakReport(report: LeakReport): string {
  const header = ['KIND', 'LIVE', 'REFS', 'CREATED', 'REUSED', 'DESTROYED', 'FAILURES', 'LEAKED'];
  const rows = Object.entries(report.resources)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, s]) => [kind, s.live, s.refs, s.created, s.reused, s.destroyed, s.createFailures + s.destroyFailures, s.leakedLeases].map(String));
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const out = [...table.map(line), ''];
  out.push(
    `generations live: ${report.generations_live}${report.generations.map((g) => ` [${g.id} ${g.state}${g.inflight ? `, ${g.inflight} in flight` : ''}]`).join('')}`,
  );
  out.push(
    `handles: ${
      Object.entries(report.handles)
        .map(([t, n]) => `${t}=${n}`)
        .join(' ') || 'none'
    }`,
  );
  if (report.trend) out.push(formatTrend(report.trend));
  if (report.suspects.length === 0) out.push('suspects: none', 'ok: nothing leaked');
  else {
    out.push(`suspects: ${report.suspects.length}`);
    for (const s of report.suspects)
      out.push(
        `  ${s.reason}${s.resource ? ` ${s.resource}` : s.kind ? ` ${s.kind}` : ''}${s.key ? ` ${s.key}` : ''}${s.generation ? ` generation ${s.generation}` : ''}: ${s.detail}`,
      );
  }
  return `${out.join('\n')}\n`;
}

/** One line: the slope of every series, steepest first (`handles:TCPServerWrap +1.00, fds +0.98, ...`). */
function formatTrend(trend: LeakTrend): string {
  const slopes = Object.entries(trend.slopes)
    .sort(([, a], [, b]) => b - a)
    .map(([name, slope]) => `${name} ${slope >= 0 ? '+' : ''}${slope.toFixed(2)}`);
  return `trend over the last ${trend.reloads} reloads (threshold ${trend.threshold_per_reload} per reload): ${slopes.join(', ') || 'no reloads yet'}`;
}
