import { isUtf8 } from 'node:buffer';
import { ConfigInvalidError } from '../core/errors.js';

/** Byte order marks of encodings other than UTF-8, longest first. */
const FOREIGN_BOMS: readonly [bytes: readonly number[], encoding: string][] = [
  [[0x00, 0x00, 0xfe, 0xff], 'UTF-32BE'],
  [[0xff, 0xfe, 0x00, 0x00], 'UTF-32LE'],
  [[0xfe, 0xff], 'UTF-16BE'],
  [[0xff, 0xfe], 'UTF-16LE'],
];

/**
 * A document's bytes as text. hotconf reads UTF-8 only (a UTF-8 byte order mark is allowed);
 * anything else is refused saying what it looks like, instead of being decoded into replacement
 * characters that the schema then reports as a misleading `expected object`.
 *
 * @throws ConfigInvalidError (path '') naming the encoding of a UTF-16 or UTF-32 byte order mark,
 *   where a NUL byte is (binary data, or UTF-16 without a byte order mark), or where the first
 *   bytes that are not UTF-8 are
 */
export function decodeDocument(bytes: Uint8Array, origin?: string): string {
  const invalid = (message: string) => new ConfigInvalidError([{ path: '', message }], origin);
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const foreign = FOREIGN_BOMS.find(([bom]) => bom.every((byte, i) => buffer[i] === byte));
  if (foreign) {
    const [bom, encoding] = foreign;
    const hex = bom.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
    throw invalid(`document is ${encoding} text (it starts with the byte order mark ${hex}); hotconf reads UTF-8: convert it (iconv -f ${encoding} -t UTF-8)`);
  }
  const nul = buffer.indexOf(0);
  if (nul >= 0) throw invalid(`document looks binary or UTF-16: it has a NUL byte at ${position(buffer, nul)}; hotconf reads UTF-8 text`);
  if (!isUtf8(buffer)) {
    throw invalid(`document is not UTF-8 text: the bytes at ${position(buffer, firstInvalidUtf8(buffer))} are not UTF-8; hotconf reads UTF-8 text`);
  }
  return buffer.toString('utf8');
}

/** `line L (byte offset N)`, L 1-based. */
function position(bytes: Buffer, offset: number): string {
  let line = 1;
  for (let i = bytes.indexOf(0x0a); i >= 0 && i < offset; i = bytes.indexOf(0x0a, i + 1)) line += 1;
  return `line ${line} (byte offset ${offset})`;
}

/**
 * Offset of the first byte that does not start or continue a well-formed UTF-8 sequence (RFC
 * 3629 section 4: no overlong forms, no surrogates, nothing past U+10FFFF). Called only once
 * `isUtf8` said no, to say where.
 */
function firstInvalidUtf8(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    // The sequence's length, and the range its second byte must be in (later ones are 80-BF).
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) low = 0xa0;
      if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) low = 0x90;
      if (b === 0xf4) high = 0x8f;
    } else return i;
    for (let k = 1; k < length; k += 1) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? low : 0x80) || c > (k === 1 ? high : 0xbf)) return i;
    }
    i += length;
  }
  return i;
}
