import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { StackServing } from '../../resources/http-stack.js';
import type { ServingGeneration } from '../ports.js';
import { ConnectionAuthority } from './authority.js';
import { createRequestHandler } from './handler.js';

export interface ListenerServingOptions {
  /** The generation active right now (read once per request, upgrade and handshake). */
  active: () => ServingGeneration | undefined;
  /** Registry key of the listener served. */
  listenKey: string;
  logger: Logger;
}

/**
 * Everything a listener's protocol stack calls, for one listener: requests, upgrades and SNI,
 * each resolved against the generation active when it arrives. Built once per stack by the
 * daemon's wiring.
 */
export function createListenerServing(options: ListenerServingOptions): StackServing {
  const { active, listenKey } = options;
  const onRequest = createRequestHandler({ ...options, authority: new ConnectionAuthority() });
  return {
    onRequest,
    onUpgrade: (req, socket, head) => answerOnUpgradeSocket(req, socket, head, onRequest),
    // The generation active at ClientHello picks the certificate; undefined: the stack's default.
    sni: (servername) => active()?.sni(listenKey)?.lookup(servername).context,
  };
}

/**
 * Answer an `Upgrade` request as a plain request: a `ServerResponse` on its (detached) socket,
 * closed after the response, so `respond`, `redirect` and 404 work for it as for any request.
 */
export function answerOnUpgradeSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  if (head.byteLength > 0) socket.unshift(head);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  socket.once('error', () => socket.destroy());
  onRequest(req, res);
}
