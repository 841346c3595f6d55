import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/** Log levels accepted by `--log-level`, lowest first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Create the daemon's root pino logger: JSON lines, one event per line, `msg` is the event name.
 * Components take `logger.child({ component })`. Defaults to stdout, written synchronously so
 * that the final lines before `process.exit` are never lost.
 */
export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: true });
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/**
 * The destination `logger` writes to (shared by its children): for writers of whole pre-built
 * lines that must go where the daemon's events go, one writer per stream (the access log).
 */
export function logDestination(logger: Logger): DestinationStream {
  return (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!;
}

/** A logger that drops everything: the default for library users who pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
