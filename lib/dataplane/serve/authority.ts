import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { namesCover, type SniTable } from './sni.js';

/** What the TLS side of a connection tells: whether the client sent SNI, and the certificate it got. */
interface PeerTls extends Pick<TLSSocket, 'encrypted' | 'getCertificate'> {
  /** The SNI name the client sent (Node sets it on server sockets; false without SNI). */
  readonly servername?: string | false;
}

/**
 * Which names the certificate of each TLS connection serves, remembered per connection (the
 * HTTP/1.1 socket or the HTTP/2 session) in a `WeakMap`: per-connection state, computed at its
 * first request and gone with it. Nothing per-request is stored.
 *
 * A request whose `Host` / `:authority` the connection's certificate does not serve is
 * misdirected (RFC 9110 section 15.5.20: 421), which is what an HTTP/2 client that coalesced
 * connections for two names needs to hear. Connections without SNI (by IP address) are not
 * checked: they got the default certificate without asking for a name.
 */
export class ConnectionAuthority {
  readonly #names = new WeakMap<object, readonly string[] | null>();

  /** True when `host` may be served on the connection of `req`; always true for plain HTTP. */
  allows(req: IncomingMessage, host: string, sni: SniTable | undefined): boolean {
    const socket = req.socket as unknown as PeerTls;
    if (!socket.encrypted) return true;
    // An HTTP/2 request's socket is a per-stream proxy: the session is the connection.
    const connection: object = (req as { stream?: { session?: object } }).stream?.session ?? req.socket;
    let names = this.#names.get(connection);
    if (names === undefined) {
      names = served(socket, sni);
      this.#names.set(connection, names);
    }
    return names === null || namesCover(names, host);
  }
}

/** The names the connection's certificate serves, or null when the client sent no SNI. */
function served(socket: PeerTls, sni: SniTable | undefined): readonly string[] | null {
  // An IP address is no server name (RFC 6066 section 3), though some clients send one.
  if (!socket.servername || isIP(socket.servername) !== 0) return null;
  const certificate = socket.getCertificate();
  const fingerprint = certificate && 'fingerprint256' in certificate ? certificate.fingerprint256 : undefined;
  const entry = fingerprint === undefined ? undefined : sni?.byFingerprint(fingerprint);
  if (entry) return entry.material.names;
  // Rotated since the handshake: the certificate's own DNS names.
  const san = certificate && 'subjectaltname' in certificate ? String(certificate.subjectaltname ?? '') : '';
  return san
    .split(', ')
    .filter((name) => name.startsWith('DNS:'))
    .map((name) => name.slice(4).toLowerCase());
}
