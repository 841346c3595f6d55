import { readdirSync } from 'node:fs';
import { activeHandles } from '../lib/admin/leaks.js';

/**
 * Active libuv handles and requests of this process of `type` (`TCPSocketWrap`, `FSEventWrap`,
 * ...), or of every type: what a spec or a soak compares before and after to see a leak.
 */
export function handleCount(type?: string): number {
  const byType = activeHandles();
  if (type !== undefined) return byType[type] ?? 0;
  return Object.values(byType).reduce((a, b) => a + b, 0);
}

/** Open file descriptors of a process (`/proc/PID/fd`; Linux). */
export function openFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
