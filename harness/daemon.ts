import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { createLogger, type Logger } from '../lib/core/log.js';
import { Daemon, type DaemonOptions } from '../lib/daemon/daemon.js';
import { ConfigParser } from '../lib/reload/parser.js';
import type { ReloadResult } from '../lib/reload/reloader.js';
import { FileSource } from '../lib/sources/file.js';
import type { ConfigSource } from '../lib/sources/source.js';
import { onCleanup, onRunEnd } from './cleanup.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

/** A logger and every line it wrote, parsed (`lines`) and raw (`text`). */
export interface MemoryLogs {
  logger: Logger;
  lines(): Record<string, unknown>[];
  text(): string;
}

/** A logger that keeps every line as parsed JSON (and the raw text) for assertions. */
export function memoryLogger(level: 'debug' | 'info' | 'warn' = 'debug'): MemoryLogs {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger(level, stream);
  return {
    logger,
    lines: () =>
      raw
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => raw.join(''),
  };
}

/** A minimal valid config: one listener answering `body` on every path. */
export function basicConfig(options: {
  port: number;
  body?: string;
  tracing?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    shutdown_timeout_ms: 2000,
    ...(options.tracing ? { tracing: options.tracing } : {}),
    listeners: [{ name: 'web', listen: `127.0.0.1:${options.port}`, routes: [{ path_prefix: '/', respond: { status: 200, body: options.body ?? 'hello' } }] }],
    ...options.extra,
  };
}

/** Atomic replace (write a temp file, rename over): what editors and config managers do. */
export async function writeConfigAtomic(file: string, config: Record<string, unknown> | string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, typeof config === 'string' ? config : stringify(config));
  await rename(tmp, file);
}

let parser: ConfigParser | undefined;

/**
 * One `ConfigParser` for every spec daemon of the run, closed at its end: a parser's worker
 * thread, started from the TypeScript sources, takes most of a second to load tsx and the config
 * modules, which every in-process daemon would pay again. Specs about the parser's own lifecycle
 * pass `parser: undefined` to get a daemon with its own.
 */
export function sharedParser(): ConfigParser {
  if (!parser) {
    const created = new ConfigParser();
    parser = created;
    onRunEnd(async () => {
      parser = undefined;
      await created.close();
    });
  }
  return parser;
}

/**
 * A `Daemon` on `source` for specs, not started: it logs to `logs`, binds its admin API on a
 * free loopback port (unless `options` has `adminListen`, even undefined), registers no default
 * metrics and parses with `sharedParser()`; `options` override these. Stopped after the test.
 */
export async function specDaemon(source: ConfigSource, logs: MemoryLogs, options: Partial<Omit<DaemonOptions, 'source'>> = {}): Promise<Daemon> {
  const daemon = new Daemon({
    source,
    logger: logs.logger,
    defaultMetrics: false,
    parser: sharedParser(),
    ...('adminListen' in options ? {} : { adminListen: `127.0.0.1:${await freePort()}` }),
    ...options,
  });
  onCleanup(() => daemon.stop());
  return daemon;
}

export interface TestDaemon {
  daemon: Daemon;
  dir: string;
  file: string;
  /** The daemon's log lines (its source's and registry's too when they log to `logs.logger`). */
  logs: MemoryLogs;
  /** Admin base URL, e.g. `http://127.0.0.1:41234`. */
  admin: string;
  /** Replace the config file atomically. */
  write(config: Record<string, unknown> | string): Promise<void>;
  /** Replace the config file and reload through the daemon (no watcher involved). */
  apply(config: Record<string, unknown> | string): Promise<ReloadResult>;
}

/**
 * Start an in-process daemon (`specDaemon`, not watching unless `watch`) on a real config file in
 * a temp dir. `logs` is where it logs (default: a new memory logger), for specs that give the
 * same logger to something built before the daemon (a registry). Stopped (and its registry
 * closed) after the test.
 */
export async function startDaemon(
  config: Record<string, unknown> | string,
  options: Partial<Omit<DaemonOptions, 'source' | 'logger'>> & { logs?: MemoryLogs } = {},
): Promise<TestDaemon> {
  const dir = await tempDir();
  const file = join(dir, 'hotconf.yaml');
  await writeConfigAtomic(file, config);
  const { logs = memoryLogger(), ...daemonOptions } = options;
  const daemon = await specDaemon(new FileSource({ path: file, logger: logs.logger }), logs, { watch: false, ...daemonOptions });
  await daemon.start();
  const write = (c: Record<string, unknown> | string) => writeConfigAtomic(file, c);
  return {
    daemon,
    dir,
    file,
    logs,
    admin: `http://127.0.0.1:${daemon.adminAddress!.port}`,
    write,
    async apply(c) {
      await write(c);
      return daemon.reload('api');
    },
  };
}
