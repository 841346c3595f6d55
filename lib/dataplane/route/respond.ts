import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { RouteConfig } from '../../config/schema.js';
import type { RouteAction } from '../ports.js';

/** A static response, precomputed once per generation: status, headers and body bytes fixed. */
export class RespondAction implements RouteAction {
  readonly type = 'respond';
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;

  constructor(status: number, headers: OutgoingHttpHeaders, body: Buffer) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** Write the response; a `HEAD` gets the headers (content-length included) and no body. */
  run(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(this.status, this.headers);
    res.end(req.method === 'HEAD' ? undefined : this.body);
  }
}

/**
 * Compile a `respond` route: body bytes, content-type and content-length fixed once. A 204 and a
 * 304 get neither: RFC 9110 §8.6 forbids Content-Length on a 204, and a 304's would have to be
 * the selected representation's (§15.4.5), which a static route does not have; a default
 * Content-Type would likewise describe content that is not there. A 205 keeps
 * `content-length: 0`, the zero-length content §15.3.6 asks for.
 */
export function compileRespond(route: RouteConfig, index: number): RespondAction {
  const respond = route.respond;
  if (!respond) throw new Error(`route ${index} has no respond action`);
  const body = Buffer.from(respond.body, 'utf8');
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(respond.headers)) headers[name.toLowerCase()] = value;
  if (respond.status !== 204 && respond.status !== 304) {
    headers['content-type'] ??= 'text/plain; charset=utf-8';
    headers['content-length'] = String(body.byteLength);
  }
  return new RespondAction(respond.status, headers, body);
}
