import { createServer, type Server, type Socket } from 'node:net';
import { onCleanup } from './cleanup.js';

/** One request as a byte-logging upstream received it: bytes exactly as they came off the wire. */
export interface RawUpstreamRequest {
  /** The request line and header lines, CRLF-separated, without the blank line (latin1). */
  head: string;
  /** The body bytes as sent, chunked framing included when `chunked`. */
  body: Buffer;
  chunked: boolean;
  /** 0-based number of the connection it came on, in accept order. */
  connection: number;
}

/** What the upstream answers to a complete request: bytes to write (a whole response, 1xx included). */
export type RawResponder = (request: RawUpstreamRequest) => string | Buffer;

/** Writes something as soon as a request head arrived, before its body is read (an early `100 Continue`). */
export type RawHeadHook = (head: string) => string | Buffer | undefined;

/**
 * What to do when the first byte of a request arrives: read and answer it, or close the
 * connection at that very moment without answering (`close`: FIN, as a server whose keepalive
 * timer fired does; `reset`: RST, as a server that crashed does).
 */
export type FirstByteAction = 'answer' | 'close' | 'reset';

/** Decides for a request by its position: its connection (0-based, in accept order) and its index on that connection. */
export type FirstByteHook = (connection: number, request: number) => FirstByteAction;

/** A request whose first byte arrived, and what `onFirstByte` did with it. */
export interface RequestStart {
  connection: number;
  request: number;
  action: FirstByteAction;
}

const OK_RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok';

/**
 * A byte-logging HTTP/1.1 upstream on 127.0.0.1 for specs that must see what the proxy really
 * sends (header spellings, duplicates, framing), which a `node:http` server would normalise. It
 * frames requests itself (`Content-Length` or chunked, keepalive) and answers each with
 * `respond` (default `200 ok`). Closed after the test.
 */
export class ByteLoggingUpstream {
  readonly requests: RawUpstreamRequest[] = [];
  respond: RawResponder;
  onHead: RawHeadHook | undefined;
  /**
   * Closes a connection on the first byte of a chosen request: the race of a server closing an
   * idle kept-alive connection just as the proxy reuses it, made deterministic.
   */
  onFirstByte: FirstByteHook | undefined;
  /** Every request whose first byte arrived (those closed on it included), in order. */
  readonly started: RequestStart[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #connections = 0;
  #port = 0;

  private constructor(respond: RawResponder) {
    this.respond = respond;
    this.#server = createServer((socket) => this.#serve(socket));
  }

  static async start(options: { respond?: RawResponder; onHead?: RawHeadHook; onFirstByte?: FirstByteHook } = {}): Promise<ByteLoggingUpstream> {
    const upstream = new ByteLoggingUpstream(options.respond ?? (() => OK_RESPONSE));
    upstream.onHead = options.onHead;
    upstream.onFirstByte = options.onFirstByte;
    await new Promise<void>((resolve, reject) => {
      upstream.#server.once('error', reject);
      upstream.#server.listen(0, '127.0.0.1', () => resolve());
    });
    upstream.#port = (upstream.#server.address() as { port: number }).port;
    onCleanup(() => upstream.close());
    return upstream;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Header lines of the `i`th request as `[name, value]`, in the order and spelling sent. */
  headerLines(i: number): [string, string][] {
    return this.requests[i]!.head.split('\r\n')
      .slice(1)
      .map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon), line.slice(colon + 1).trim()];
      });
  }

  /** Values of header `name` (case-insensitive) in the `i`th request, one per field line. */
  header(i: number, name: string): string[] {
    return this.headerLines(i)
      .filter(([n]) => n.toLowerCase() === name.toLowerCase())
      .map(([, v]) => v);
  }

  /** TCP connections accepted so far. */
  get connections(): number {
    return this.#connections;
  }

  close(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #serve(socket: Socket): void {
    const connection = this.#connections++;
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let head: string | undefined;
    let index = 0;
    let started = false;
    /** A request began (its first byte is here): false when `onFirstByte` closed the connection. */
    const begin = (): boolean => {
      started = true;
      const action = this.onFirstByte?.(connection, index) ?? 'answer';
      this.started.push({ connection, request: index, action });
      if (action === 'close') socket.destroy();
      else if (action === 'reset') socket.resetAndDestroy();
      return action === 'answer';
    };
    socket.on('data', (chunk: Buffer) => {
      if (!started && !begin()) return;
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (buffered.length > 0 && !started && !begin()) return;
        if (head === undefined) {
          const end = buffered.indexOf('\r\n\r\n');
          if (end < 0) return;
          head = buffered.subarray(0, end).toString('latin1');
          buffered = buffered.subarray(end + 4);
          const early = this.onHead?.(head);
          if (early !== undefined) socket.write(early);
        }
        const framed = frameBody(head, buffered);
        if (!framed) return;
        const request: RawUpstreamRequest = { head, body: buffered.subarray(0, framed.length), chunked: framed.chunked, connection };
        buffered = buffered.subarray(framed.length);
        head = undefined;
        index += 1;
        started = false;
        this.requests.push(request);
        socket.write(this.respond(request));
      }
    });
  }
}

/** Length of the body at the start of `data` as `head` frames it, or undefined while incomplete. */
function frameBody(head: string, data: Buffer): { length: number; chunked: boolean } | undefined {
  const te = /\r\ntransfer-encoding:[^\r]*chunked/i.test(head);
  if (!te) {
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const length = cl ? Number(cl[1]) : 0;
    return data.length >= length ? { length, chunked: false } : undefined;
  }
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) {
      const end = data.indexOf('\r\n\r\n', lineEnd);
      return end < 0 ? undefined : { length: end + 4, chunked: true };
    }
    at = lineEnd + 2 + size + 2;
    if (data.length < at) return undefined;
  }
}
