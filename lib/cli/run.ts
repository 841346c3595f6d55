import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN_ENV } from '../admin/token.js';
import { DEFAULT_ADMIN_LISTEN } from '../config/schema.js';
import { errorMessage, UsageError } from '../core/errors.js';
import { createLogger, type Logger, type LogLevel } from '../core/log.js';
import { ClusterPrimary, runClusterWorker } from '../daemon/cluster.js';
import { Daemon, type DaemonOptions } from '../daemon/daemon.js';
import { DirectorySource } from '../sources/directory.js';
import { EtcdSource } from '../sources/etcd/etcd.js';
import { FileSource } from '../sources/file.js';
import type { ConfigSource } from '../sources/source.js';
import { type EtcdCliOptions, EXIT_USAGE, etcdConnection, parseDuration } from './etcd-options.js';

/** The config `hotconf run` serves when given none: the demo shipped with the package. */
export const DEMO_CONFIG = fileURLToPath(new URL('../../fixtures/demo.yaml', import.meta.url));

export interface RunOptions extends EtcdCliOptions {
  config?: string;
  /** `--config-dir`: every `*.yaml`/`*.yml`/`*.json` file in it is a fragment of the config. */
  configDir?: string;
  /** `--max-document-bytes`: the size limit of the config file, or of each fragment. */
  maxDocumentBytes?: string;
  /** `--max-total-bytes`: the size limit of all fragments together. */
  maxTotalBytes?: string;
  watch: boolean;
  admin?: string;
  logLevel: LogLevel;
  /** `--startup-timeout` (etcd): give up waiting for the first config, e.g. `30s`. */
  startupTimeout?: string;
  /** `--workers`: `1` (one process, the default), a number of cluster workers, or `auto` (one per core). */
  workers?: string;
}

/**
 * `--workers` as a count: `auto` is the number of cores (`os.availableParallelism()`).
 * @throws UsageError for anything but a positive integer or `auto`
 */
export function parseWorkers(value: string | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto') return availableParallelism();
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`--workers ${value}: expected a positive number or auto`);
  return Number(value);
}

/**
 * A byte count flag: a positive integer, optionally with a `k`, `m` or `g` suffix (KiB, MiB, GiB).
 * Undefined when the flag is not given.
 * @throws UsageError naming `flag` for anything else
 */
export function parseBytes(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^([1-9]\d*)([kmg]?)$/i.exec(value.trim());
  if (!match) throw new UsageError(`${flag} ${value}: expected a positive number of bytes, optionally with k, m or g (KiB, MiB, GiB)`);
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bytes = Number(match[1]) * scale;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${flag} ${value}: too large`);
  return bytes;
}

/**
 * `hotconf run`: start the daemon and keep it running until SIGTERM/SIGINT. SIGHUP reloads.
 * A config that is missing or invalid at start prints the reason (naming the file) on stderr and
 * exits 1. An uncaught exception or unhandled rejection anywhere is logged with its stack and
 * exits 1: a supervisor restarts a dead daemon, nobody restarts a half-alive one.
 * `$HOTCONF_ADMIN_TOKEN` is the admin token (over the config's `admin.token_file`).
 *
 * `deps` replaces the resource factory builders and sets registry timeouts: fault-injection
 * specs run this very command in a child process with factories that throw or hang.
 */
export async function runCommand(options: RunOptions, deps: Pick<DaemonOptions, 'kinds' | 'registryOptions'> = {}): Promise<void> {
  const logger = createLogger(options.logLevel);
  exitOnCrash(logger);
  if (cluster.isWorker) {
    // A forked cluster worker: the primary sends it every config; it has no source of its own.
    runClusterWorker({ logger, ...deps });
    return;
  }
  let workers: number;
  let source: ConfigSource;
  let adminListen = options.admin;
  let maxDocumentBytes: number | undefined;
  let maxTotalBytes: number | undefined;
  try {
    const etcd = await etcdConnection(options);
    const given = [options.config !== undefined && '--config', options.configDir !== undefined && '--config-dir', etcd && '--etcd'].filter(Boolean);
    if (given.length > 1) throw new UsageError(`${given.join(' and ')} exclude each other`);
    const startupTimeoutMs = parseDuration('--startup-timeout', options.startupTimeout);
    maxDocumentBytes = parseBytes('--max-document-bytes', options.maxDocumentBytes);
    maxTotalBytes = parseBytes('--max-total-bytes', options.maxTotalBytes);
    workers = parseWorkers(options.workers);
    if (etcd) {
      source = new EtcdSource({ ...etcd, startupTimeoutMs, logger });
      // The admin API must be up before the first read (`/healthz` 503 while etcd is
      // unreachable), so before any config can name its address.
      adminListen ??= DEFAULT_ADMIN_LISTEN;
    } else if (options.configDir !== undefined) {
      source = new DirectorySource({ path: options.configDir, maxFragmentBytes: maxDocumentBytes, maxTotalBytes, logger });
    } else {
      source = new FileSource({ path: options.config ?? DEMO_CONFIG, maxDocumentBytes, logger });
    }
  } catch (error) {
    process.stderr.write(`hotconf run: ${errorMessage(error)}\n`);
    process.exit(EXIT_USAGE);
  }
  if (workers > 1) {
    await runPrimary(source, workers, adminListen, options, logger, { maxDocumentBytes, maxTotalBytes });
    return;
  }
  const daemon = new Daemon({
    source,
    logger,
    adminListen,
    maxDocumentBytes,
    maxTotalBytes,
    adminToken: process.env[ADMIN_TOKEN_ENV],
    watch: options.watch,
    installGlobalTelemetry: true,
    ...deps,
  });
  daemon.handleSignals();
  try {
    const result = await daemon.start();
    const active = daemon.reloader.active!;
    logger.info(
      {
        generation: result.generation,
        source: source.describe(),
        admin: daemon.adminAddress,
        listeners: [...active.listeners()].map(([key, l]) => ({ key, address: l.handle.address.address, port: l.handle.address.port })),
      },
      'started',
    );
  } catch (error) {
    // SIGTERM/SIGINT while starting (etcd still unreachable, a slow first provision) is a
    // requested stop, not a failed start: the signal handler exits 0 once the stop is done.
    if (daemon.stopRequested) return;
    process.stderr.write(`hotconf: ${errorMessage(error)}\n`);
    logger.fatal({ err: error }, 'start_failed');
    process.exit(1);
  }
}

/** `run --workers N` (N ≥ 2): the cluster primary; workers re-run this command as forks. */
async function runPrimary(
  source: ConfigSource,
  workers: number,
  adminListen: string | undefined,
  options: RunOptions,
  logger: Logger,
  limits: { maxDocumentBytes?: number; maxTotalBytes?: number },
): Promise<void> {
  const primary = new ClusterPrimary({ source, workers, logger, adminListen, adminToken: process.env[ADMIN_TOKEN_ENV], watch: options.watch, ...limits });
  primary.handleSignals();
  try {
    const result = await primary.start();
    const { config } = primary.coordinator.committed!.loaded;
    logger.info(
      {
        generation: result.generation,
        revision: result.generation,
        workers: primary.coordinator.workers(),
        source: source.describe(),
        admin: primary.adminAddress,
        listeners: config.listeners.map((l) => ({ key: l.listen, name: l.name })),
      },
      'started',
    );
  } catch (error) {
    process.stderr.write(`hotconf: ${errorMessage(error)}\n`);
    logger.fatal({ err: error }, 'start_failed');
    process.exit(1);
  }
}

function exitOnCrash(logger: Logger): void {
  process.on('uncaughtException', (err, origin) => {
    logger.fatal({ err, origin }, 'uncaught_exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled_rejection');
    process.exit(1);
  });
}
