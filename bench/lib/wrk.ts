import { execFile } from 'node:child_process';
import { requireTool } from './util.js';

export interface WrkResult {
  requests_per_s: number;
  requests: number;
  /** connect + read + write + timeout socket errors. */
  socket_errors: number;
  non_2xx: number;
}

/**
 * Run wrk (Debian's package) against `url` with keepalive connections for `durationS` seconds.
 * @throws MissingToolError with the install command when wrk is not installed
 */
export function runWrk(url: string, durationS: number, connections = 32): Promise<WrkResult> {
  const wrk = requireTool('wrk', 'apt-get install -y wrk');
  return new Promise((resolve, reject) => {
    execFile(wrk, ['-t1', `-c${connections}`, `-d${durationS}s`, url], { timeout: (durationS + 30) * 1000 }, (error, stdout) => {
      if (error) return reject(new Error(`wrk failed: ${error.message}`));
      resolve(parseWrk(stdout));
    });
  });
}

/** Parse wrk's text summary. */
export function parseWrk(text: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requests_per_s: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    socket_errors: socket ? socket.slice(1, 5).reduce((a, b) => a + Number(b), 0) : 0,
    non_2xx: num(/Non-2xx or 3xx responses: (\d+)/),
  };
}
