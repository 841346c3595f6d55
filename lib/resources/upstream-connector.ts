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
 * carries nothing: each connection drops the `100` responses among the interim responses that
 * come before the final response of the request it is sending, before undici's parser sees them.
 *
 * Where a response starts: undici sends one request at a time per connection (pipelining 1, its
 * default and hotconf's), so the first bytes after a request head was written begin its
 * response. undici announces each request head it writes on the documented diagnostics channel
 * `undici:client:sendHeaders`, with the socket. That subscription is process-wide and holds no
 * state; the per-connection state (`InterimState`) lives on the connection it describes and only
 * on sockets this connector made.
 */

/** Longest interim response head held while waiting for its end; anything longer is passed on for undici to refuse. */
const MAX_INTERIM_BYTES = 16 * 1024;
const VERSIONS = ['HTTP/1.1 ', 'HTTP/1.0 '].map((v) => Buffer.from(v, 'latin1'));
const STATUS_AT = 9;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const DIGIT_0 = 0x30;

function isDigit(byte: number): boolean {
  return byte >= DIGIT_0 && byte <= DIGIT_0 + 9;
}

/**
 * Whether `data` can start an interim (1xx) response head other than `101` (which ends HTTP on
 * the connection), as far as its bytes go: version, `1`, two digits, then SP or CR.
 */
function mayStartInterim(data: Buffer): boolean {
  const version = data.subarray(0, STATUS_AT);
  if (!VERSIONS.some((v) => v.subarray(0, version.length).equals(version))) return false;
  if (data.length > STATUS_AT && data[STATUS_AT] !== DIGIT_0 + 1) return false;
  if (data.length > STATUS_AT + 1 && !isDigit(data[STATUS_AT + 1]!)) return false;
  if (data.length > STATUS_AT + 2 && !isDigit(data[STATUS_AT + 2]!)) return false;
  if (data.length > STATUS_AT + 3 && data[STATUS_AT + 3] !== 0x20 && data[STATUS_AT + 3] !== 0x0d) return false;
  return !(data.length > STATUS_AT + 2 && data[STATUS_AT + 1] === DIGIT_0 && data[STATUS_AT + 2] === DIGIT_0 + 1);
}

/** Length of the interim response head at the start of `data`; 0 when it does not start with one; -1 while undecided. */
function interimLength(data: Buffer): number {
  if (!mayStartInterim(data)) return 0;
  const end = data.indexOf(HEAD_END);
  if (end >= 0) return end + HEAD_END.length;
  return data.length > MAX_INTERIM_BYTES ? 0 : -1;
}

/** The interim head at the start of `data` is a `100`. */
function isContinue(data: Buffer): boolean {
  return data[STATUS_AT + 1] === DIGIT_0 && data[STATUS_AT + 2] === DIGIT_0;
}

const STATE = Symbol('hotconf.interimState');

/**
 * Per connection: whether the response to the request just sent has not started yet, and bytes
 * held meanwhile; how many requests were sent on it, and whether any byte came since the last.
 */
interface InterimState {
  awaitingResponse: boolean;
  held: Buffer | undefined;
  requests: number;
  receivedSinceRequest: boolean;
}

const LOST_REUSED = Symbol('hotconf.lostReusedConnection');

/**
 * Whether `error` ended a request sent on a kept-alive connection (one that carried an earlier
 * request) that was closed or reset before any byte of the response came: the upstream closed
 * it as idle while the request was on its way, and never saw it or never answered it. A client
 * may send an idempotent request again on a new connection (RFC 9112 section 9.3.1), as browsers
 * and Envoy's `reset` retry policy do. Only errors of connections this connector made are marked.
 */
export function lostReusedConnection(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { [LOST_REUSED]?: true })[LOST_REUSED] === true;
}

type TrackedSocket = Socket & { [STATE]?: InterimState };

// Stateless and process-wide (see above): it only flags sockets this connector made.
subscribe('undici:client:sendHeaders', (message) => {
  const state = (message as { socket?: TrackedSocket }).socket?.[STATE];
  if (state) {
    state.awaitingResponse = true;
    state.requests += 1;
    state.receivedSinceRequest = false;
  }
});

/**
 * Drop the `100` responses among the interim responses that start what `socket` receives after
 * each request head undici writes; other interim responses (`103 Early Hints`) pass to undici,
 * which handles them, and the final response ends the watch.
 */
function dropInterimContinue(socket: TrackedSocket): void {
  const state: InterimState = { awaitingResponse: false, held: undefined, requests: 0, receivedSinceRequest: false };
  socket[STATE] = state;
  // Registered before undici's own listener, so the error is marked before undici fails the request with it.
  socket.on('error', (error: Error & { [LOST_REUSED]?: true }) => {
    if (state.requests > 1 && !state.receivedSinceRequest) error[LOST_REUSED] = true;
  });
  const push = socket.push;
  socket.push = function pushWithoutContinue(this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null) state.receivedSinceRequest = true;
    if (!state.awaitingResponse || !Buffer.isBuffer(chunk)) {
      if (chunk === null && state.held) push.call(this, state.held);
      state.held = undefined;
      return push.call(this, chunk, encoding);
    }
    let data = state.held ? Buffer.concat([state.held, chunk]) : chunk;
    state.held = undefined;
    for (;;) {
      const length = interimLength(data);
      if (length < 0) {
        state.held = data;
        return true;
      }
      if (length === 0) {
        state.awaitingResponse = false;
        return push.call(this, data);
      }
      if (!isContinue(data)) push.call(this, data.subarray(0, length));
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
