import { subscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { buildConnector } from 'undici';

/**
 * Upstream connections that accept an unsolicited `100 Continue`.
 *
 * RFC 9110 section 15.2: a client must be able to parse one or more 1xx responses before the
 * final one, even when it did not expect them. undici handles other 1xx responses, but destroys
 * an HTTP/1.1 connection on any `100` (`SocketError: bad response`), which the proxy would answer
 * with 502. hotconf never sends `Expect` upstream, so a `100 Continue` is always unsolicited and
 * carries nothing: each connection drops the `100` responses that come before the final response
 * of the request it is sending, before undici's parser sees them.
 *
 * Where a response starts: undici sends one request at a time per connection (pipelining 1, its
 * default and hotconf's), so the first bytes after a request head was written begin its
 * response. undici announces each request head it writes on the documented diagnostics channel
 * `undici:client:sendHeaders`, with the socket. That subscription is process-wide and holds no
 * state; the per-connection state (`InterimState`) lives on the connection it describes and only
 * on sockets this connector made.
 */

/** Longest `100` response head held while waiting for its end; anything longer is passed on for undici to refuse. */
const MAX_INTERIM_BYTES = 16 * 1024;
const CONTINUE_PREFIXES = ['HTTP/1.1 100 ', 'HTTP/1.1 100\r', 'HTTP/1.0 100 ', 'HTTP/1.0 100\r'].map((p) => Buffer.from(p, 'latin1'));
const PREFIX_LENGTH = CONTINUE_PREFIXES[0]!.length;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

const STATE = Symbol('hotconf.interimState');

/** Per connection: whether the response to the request just sent has not started yet, and bytes held meanwhile. */
interface InterimState {
  awaitingResponse: boolean;
  held: Buffer | undefined;
}

type TrackedSocket = Socket & { [STATE]?: InterimState };

// Stateless and process-wide (see above): it only flags sockets this connector made.
subscribe('undici:client:sendHeaders', (message) => {
  const state = (message as { socket?: TrackedSocket }).socket?.[STATE];
  if (state) state.awaitingResponse = true;
});

/** Bytes at the start of `data` that make one `100` response head; 0 when it is not one; -1 while undecided. */
function continueLength(data: Buffer): number {
  if (data.length < PREFIX_LENGTH) {
    return CONTINUE_PREFIXES.some((prefix) => prefix.subarray(0, data.length).equals(data)) ? -1 : 0;
  }
  if (!CONTINUE_PREFIXES.some((prefix) => data.subarray(0, PREFIX_LENGTH).equals(prefix))) return 0;
  const end = data.indexOf(HEAD_END);
  if (end >= 0) return end + HEAD_END.length;
  return data.length > MAX_INTERIM_BYTES ? 0 : -1;
}

/** Drop the `100` responses that start what `socket` receives after each request head undici writes. */
function dropInterimContinue(socket: TrackedSocket): void {
  const state: InterimState = { awaitingResponse: false, held: undefined };
  socket[STATE] = state;
  const push = socket.push;
  socket.push = function pushWithoutContinue(this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (!state.awaitingResponse || !Buffer.isBuffer(chunk)) {
      if (chunk === null && state.held) push.call(this, state.held);
      state.held = undefined;
      return push.call(this, chunk, encoding);
    }
    let data = state.held ? Buffer.concat([state.held, chunk]) : chunk;
    state.held = undefined;
    for (;;) {
      const length = continueLength(data);
      if (length < 0) {
        state.held = data;
        return true;
      }
      if (length === 0) {
        state.awaitingResponse = false;
        return push.call(this, data);
      }
      data = data.subarray(length);
      if (data.length === 0) return true;
    }
  };
}

/**
 * An undici connector (`Pool`'s `connect` option) as undici's default with `timeoutMs` as the
 * connect timeout, whose connections drop unsolicited `100 Continue` responses (see above).
 */
export function interimTolerantConnector(timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    connect(options, (error, socket) => {
      if (error) callback(error, null);
      else {
        dropInterimContinue(socket as TrackedSocket);
        callback(null, socket);
      }
    });
  };
}
