import { type ClientHttp2Session, connect, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { onCleanup } from './cleanup.js';

/** A response on an HTTP/2 stream. */
export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * An HTTP/2 session (`node:http2`) over TLS to 127.0.0.1:`port`, the certificate verified against
 * `ca` for `servername`. `goaways` counts the GOAWAY frames it received. Closed after the test.
 */
export async function h2Session(port: number, ca: Buffer, servername: string): Promise<{ session: ClientHttp2Session; goaways: () => number }> {
  // The default :authority is `servername:port`.
  const session = connect(`https://127.0.0.1:${port}`, { ca, servername });
  let goaways = 0;
  session.on('goaway', () => (goaways += 1));
  session.on('error', () => {});
  onCleanup(() => session.destroy());
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  return { session, goaways: () => goaways };
}

/** One request on `session`; `headers` may set `:path`, `:method`, `:authority` and any other header. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let responseHeaders: IncomingHttpHeaders = {};
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') }));
    if (body !== undefined) stream.end(body);
  });
}
