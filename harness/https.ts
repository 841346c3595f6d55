import type { IncomingHttpHeaders } from 'node:http';
import { type Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';

/** A response over TLS, with what the handshake gave. */
export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** SHA-256 fingerprint of the server certificate (undefined on a resumed session, which sends none). */
  fingerprint256: string | undefined;
  sessionReused: boolean;
  /** Local port of the client socket: equal ports on one agent mean one connection. */
  localPort: number | undefined;
  /** The negotiated TLS version (`TLSv1.3`). */
  protocol: string | null;
}

export interface HttpsRequestOptions {
  /** The CA the client trusts (verification is always on). */
  ca: Buffer;
  /** SNI name, `Host`, and the name the certificate is verified against (Node checks the servername). Default `localhost`. */
  servername?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  agent?: Agent | false;
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/** One HTTPS/1.1 request to 127.0.0.1:`port` with `node:https`, the certificate verified against `ca`. */
export function httpsRequest(port: number, options: HttpsRequestOptions): Promise<HttpsResponse> {
  const servername = options.servername ?? 'localhost';
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        servername,
        ca: options.ca,
        maxVersion: options.maxVersion,
        headers: { host: servername, ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const peer = socket.getPeerCertificate();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            fingerprint256: peer && 'fingerprint256' in peer ? peer.fingerprint256 : undefined,
            sessionReused: socket.isSessionReused(),
            localPort: socket.localPort,
            protocol: socket.getProtocol(),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
