import { execFile } from 'node:child_process';
import { requireTool } from './util.js';
import type { WrkResult } from './wrk.js';

/**
 * Run h2load (Debian's `nghttp2-client`) against an `https://` `url` over HTTP/2 for `durationS`
 * seconds: `clients` connections, `streams` concurrent streams each. The result has wrk's shape:
 * `socket_errors` are failed, errored and timed-out requests.
 * @throws MissingToolError with the install command when h2load is not installed
 */
export function runH2load(url: string, durationS: number, clients = 8, streams = 16): Promise<WrkResult> {
  const h2load = requireTool('h2load', 'apt-get install -y nghttp2-client');
  return new Promise((resolve, reject) => {
    execFile(
      h2load,
      ['-c', String(clients), '-m', String(streams), '-t', '1', '-D', String(durationS), url],
      { timeout: (durationS + 30) * 1000 },
      (error, stdout) => {
        if (error) return reject(new Error(`h2load failed: ${error.message}\n${stdout}`));
        resolve(parseH2load(stdout));
      },
    );
  });
}

/** Parse h2load's text summary. */
export function parseH2load(text: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  return {
    requests_per_s: num(/finished in [\d.]+m?s, ([\d.]+) req\/s/),
    requests: requests ? Number(requests[3]) : 0,
    socket_errors: requests ? Number(requests[5]) + Number(requests[6]) + Number(requests[7]) - (codes ? Number(codes[3]) + Number(codes[4]) : 0) : 0,
    non_2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
  };
}
