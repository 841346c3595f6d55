import { randomBytes } from 'node:crypto';

/**
 * Where the WebSocket frames (RFC 6455 section 5.2) of one direction of a relayed byte stream
 * begin and end, so a close frame can be put between two frames without parsing or copying the
 * payloads: per frame only its header (2 to 14 bytes) is read, the payload is counted.
 */
export class FrameCursor {
  /** Payload bytes of the current frame still to come. */
  #remaining = 0;
  /** Bytes of the header being read (a header may be split across chunks). */
  readonly #header: number[] = [];
  /** A close frame (opcode 8) has been seen in this direction. */
  sawClose = false;

  /** True between two frames. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#header.length === 0;
  }

  /** Account for `chunk` as relayed. */
  feed(chunk: Uint8Array): void {
    this.#advance(chunk, false);
  }

  /**
   * Account for the bytes of `chunk` up to the next frame boundary and return how many that is
   * (0 when already between frames; `chunk.length` when the boundary is not in it).
   */
  feedUntilBoundary(chunk: Uint8Array): number {
    return this.#advance(chunk, true);
  }

  #advance(chunk: Uint8Array, stopAtBoundary: boolean): number {
    let i = 0;
    while (i < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return i;
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= take;
        i += take;
        continue;
      }
      this.#header.push(chunk[i]!);
      i += 1;
      const length = headerLength(this.#header);
      if (length !== undefined && this.#header.length === length) {
        if ((this.#header[0]! & 0x0f) === 0x8) this.sawClose = true;
        this.#remaining = payloadLength(this.#header);
        this.#header.length = 0;
      }
    }
    return i;
  }
}

/** Total header length once its first two bytes are known (RFC 6455 section 5.2). */
function headerLength(header: readonly number[]): number | undefined {
  if (header.length < 2) return undefined;
  const len7 = header[1]! & 0x7f;
  const masked = (header[1]! & 0x80) !== 0;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
}

function payloadLength(header: readonly number[]): number {
  const len7 = header[1]! & 0x7f;
  if (len7 < 126) return len7;
  if (len7 === 126) return (header[2]! << 8) | header[3]!;
  let length = 0;
  for (let k = 2; k < 10; k += 1) length = length * 256 + header[k]!;
  return length;
}

/** WebSocket close code 1001: the endpoint is going away (RFC 6455 section 7.4.1). */
export const GOING_AWAY = 1001;

/**
 * A close frame with `code`: unmasked as a server sends it (`masked: false`), or masked with a
 * fresh key as a client must (toward the upstream).
 */
export function closeFrame(code: number, masked: boolean): Buffer {
  const payload = Buffer.from([code >> 8, code & 0xff]);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const key = randomBytes(4);
  for (let k = 0; k < payload.length; k += 1) payload[k]! ^= key[k % 4]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), key, payload]);
}
