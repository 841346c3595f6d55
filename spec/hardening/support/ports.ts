import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

/**
 * `count` distinct ports free on 127.0.0.1 and outside the kernel's ephemeral range, so that no
 * other process binding port 0 (every other test run on this machine) is handed one of them
 * while a long run keeps freeing and rebinding them. Linux reads the range from
 * /proc/sys/net/ipv4/ip_local_port_range; elsewhere the IANA dynamic range is assumed.
 */
export async function stablePorts(count: number): Promise<number[]> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').then(
    (text) => text.trim().split(/\s+/).map(Number) as [number, number],
    () => [49152, 65535] as [number, number],
  );
  // Below the range when there is room (Linux: 10000-32767), else above it.
  const candidates = range[0] > 11_024 ? rangeOf(10_000, range[0]) : rangeOf(range[1] + 1, 65_536);
  const ports: number[] = [];
  while (ports.length < count && candidates.length > 0) {
    const [port] = candidates.splice(Math.floor(Math.random() * candidates.length), 1);
    if (await bindable(port!)) ports.push(port!);
  }
  if (ports.length < count) throw new Error(`no ${count} free ports outside the ephemeral range ${range.join('-')}`);
  return ports;
}

function rangeOf(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function bindable(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
