import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { HotconfError } from '../../core/errors.js';
import { sendJson } from '../../net/json.js';

/**
 * The client's request body on its way upstream, after nginx's `proxy_request_buffering` (in
 * memory, bounded): a body up to the upstream's `request_buffer_bytes` is read whole before any
 * target or connection is chosen, so a client that trickles it holds no upstream connection, and
 * it can be sent again to another target after a connect error. A larger body streams once that
 * much arrived: what was read first, then the rest as the client sends it.
 */

/** The client sent no body byte for `body_idle_timeout_ms` (nginx's `client_body_timeout`): 408. */
export class BodyIdleTimeoutError extends HotconfError {
  constructor(idleMs: number, direction: 'request' | 'response') {
    super('E_BODY_IDLE_TIMEOUT', direction === 'request' ? `request body idle for ${idleMs} ms` : `the client read nothing of the response for ${idleMs} ms`);
  }
}

/** A body that streams: the chunks read before it outgrew the buffer, then the rest of `req`. */
export class StreamedBody {
  readonly head: readonly Buffer[];
  /** Set once an attempt began sending it: it cannot be sent again. */
  started = false;

  constructor(head: readonly Buffer[]) {
    this.head = head;
  }
}

/** A request body as the proxy sends it: none, read whole, or streamed. */
export type RequestBody = undefined | Buffer | StreamedBody;

/**
 * Whether `req` has a body to send (`Content-Length` other than 0, or any `Transfer-Encoding`;
 * an HTTP/2 request, unless its HEADERS frame ended the stream).
 */
export function hasBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2) return !(req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Read `req`'s body into memory up to `limitBytes`, then call `ready` once: with the whole body
 * (`Buffer`), or with a `StreamedBody` when it is larger (`req` is paused at that point and the
 * caller streams the rest). A body that sends nothing for `idleMs` gets `408` and the connection
 * is closed; a client that leaves first gets nothing. Callback-based: it allocates a buffer list
 * and one timer per request with a body, nothing per chunk.
 */
export function bufferRequestBody(
  req: IncomingMessage,
  res: ServerResponse,
  limitBytes: number,
  idleMs: number,
  ready: (body: Buffer | StreamedBody) => void,
): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const stop = () => {
    clearTimeout(idle);
    req.off('data', onData);
    req.off('end', onEnd);
    res.off('close', stop);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    bytes += chunk.byteLength;
    idle.refresh();
    if (bytes <= limitBytes) return;
    // Paused before the listener goes, so no chunk is emitted to nobody.
    req.pause();
    stop();
    ready(new StreamedBody(chunks));
  };
  const onEnd = () => {
    stop();
    ready(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
  };
  // Unref'd: the client's socket, not this timer, keeps the request alive.
  const idle = setTimeout(() => {
    stop();
    if (!res.headersSent) sendJson(res, 408, { error: new BodyIdleTimeoutError(idleMs, 'request').message }, true);
    else res.destroy();
  }, idleMs).unref();
  req.on('data', onData);
  req.on('end', onEnd);
  res.once('close', stop);
}

/**
 * `body` as a `Readable` for undici to send: the chunks read first, then `req` as the client
 * sends it, with backpressure both ways (`req` is paused while undici's socket is full, and
 * resumed when undici reads again). `req` is read only once undici starts sending it
 * (`body.started`), so an attempt that fails to connect leaves it unread for the next one.
 * Destroying the reader (undici does on any error or abort) detaches it from `req` without
 * destroying `req`, whose socket is the client's connection. `onIdle` is called when the client
 * sends nothing for `idleMs` while undici waits for it (time the upstream takes to accept a chunk
 * does not count). One reader, one listener set and one timer per streamed attempt; nothing per chunk.
 */
export function streamedBody(req: IncomingMessage, body: StreamedBody, idleMs: number, onIdle: () => void): Readable {
  let idle: NodeJS.Timeout | undefined;
  // Set while undici wants more and the client has not sent it yet: only then does idleness count.
  let awaitingClient = false;
  const onData = (chunk: Buffer) => {
    awaitingClient = false;
    if (!reader.push(chunk)) req.pause();
  };
  const onEnd = () => {
    detach();
    reader.push(null);
  };
  const onAborted = () => reader.destroy(new Error('the client closed the connection'));
  const detach = () => {
    clearTimeout(idle);
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onAborted);
  };
  const reader = new Readable({
    read() {
      if (!body.started) {
        body.started = true;
        for (const chunk of body.head) this.push(chunk);
        if (req.readableEnded) {
          this.push(null);
          return;
        }
        req.on('data', onData);
        req.once('end', onEnd);
        req.once('close', onAborted);
        idle = setTimeout(() => awaitingClient && onIdle(), idleMs).unref();
      }
      awaitingClient = true;
      idle?.refresh();
      req.resume();
    },
    destroy(error, callback) {
      detach();
      req.pause();
      callback(error);
    },
  });
  return reader;
}
