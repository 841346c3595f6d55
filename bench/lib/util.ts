import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** The p-th percentile (0-100) of `values`, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Round to `digits` decimals, for the report. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export interface MachineFacts {
  cpu_model: string;
  cores: number;
  node_version: string;
  date: string;
}

export function machineFacts(): MachineFacts {
  return { cpu_model: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node_version: process.version, date: new Date().toISOString() };
}

/** The soft limit on open files of this process (`/proc/self/limits`). */
export function openFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = Number(line?.trim().split(/\s+/)[3]);
  return Number.isFinite(soft) ? soft : 1024;
}

/** A required external tool is missing: the part fails loudly with the command that installs it. */
export class MissingToolError extends Error {
  constructor(tool: string, install: string) {
    super(`${tool} is not installed; run: ${install}   (or: npm run bench:setup)`);
  }
}

/** Path of `tool` on PATH, or throw MissingToolError. */
export function requireTool(tool: string, install: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new MissingToolError(tool, install);
  }
}

/** A progress line on stderr for long parts: rewritten in place on a TTY, every 10% otherwise. */
export function progress(label: string): (done: number, total: number) => void {
  let lastDecile = -1;
  return (done, total) => {
    if (process.stderr.isTTY) {
      process.stderr.write(`\r  ${label} ${done}/${total}${done === total ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor((done / total) * 10);
    if (decile !== lastDecile) {
      lastDecile = decile;
      process.stderr.write(`  ${label} ${done}/${total}\n`);
    }
  };
}
