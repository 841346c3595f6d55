import type { Logger } from '../core/log.js';

export interface ProcessSignalOptions {
  /** The component logger the `signal` and `stop_failed` events go to. */
  log: Logger;
  /** What SIGHUP does (a reload; never rejects). */
  reload: () => void;
  /**
   * What SIGUSR1 does: reopen the log files (logrotate's `postrotate`, as nginx); never throws.
   * Installing it replaces Node's default for SIGUSR1 (starting the inspector).
   */
  reopen: () => unknown;
  /** The graceful stop SIGTERM and SIGINT start. */
  stop: () => Promise<unknown>;
  /** Ends the process: 0 after a clean stop, 1 when it failed or on a second signal. */
  exit: (code: number) => void;
}

/**
 * Install a hotconf process's signal handlers (one process, or a cluster primary): SIGHUP calls
 * `reload`; SIGUSR1 calls `reopen`; SIGTERM and SIGINT call `stop` and then `exit(0)` (1 if the stop itself failed); a
 * second SIGTERM/SIGINT during the stop exits 1 at once. Returns a function that removes them.
 */
export function handleProcessSignals(options: ProcessSignalOptions): () => void {
  const { log, exit } = options;
  let stopping = false;
  const onHup = () => {
    log.info({ signal: 'SIGHUP' }, 'signal');
    options.reload();
  };
  const onUsr1 = () => {
    log.info({ signal: 'SIGUSR1' }, 'signal');
    options.reopen();
  };
  const onStop = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'signal');
    if (stopping) return exit(1);
    stopping = true;
    options.stop().then(
      () => exit(0),
      (err) => {
        log.error({ err }, 'stop_failed');
        exit(1);
      },
    );
  };
  process.on('SIGHUP', onHup);
  process.on('SIGUSR1', onUsr1);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  return () => {
    process.off('SIGHUP', onHup);
    process.off('SIGUSR1', onUsr1);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
  };
}
