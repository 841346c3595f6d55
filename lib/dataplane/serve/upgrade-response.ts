import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * A `ServerResponse` on the socket of an `Upgrade` request, which Node's server has detached:
 * for answering it as a plain request (a route that is not a tunnel, a refused or failed
 * upgrade). The connection is closed once the response is out, and the response emits 'close'
 * (after 'finish', or when the client left first), as the server's own do. `head` (bytes the
 * client sent after the request head) is put back on the socket.
 */
export function responseOnUpgradeSocket(req: IncomingMessage, socket: Duplex, head: Buffer): ServerResponse {
  if (head.byteLength > 0) socket.unshift(head);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
    // Node's server emits 'close' after 'finish' for the responses it made; detached, this one
    // would never get one, and whoever waits for it (the unpin, the span, the access line) with it.
    process.nextTick(() => res.emit('close'));
  });
  socket.once('error', () => socket.destroy());
  return res;
}
