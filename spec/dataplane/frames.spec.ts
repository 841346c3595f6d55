import { expect } from 'chai';
import fc from 'fast-check';
import { closeFrame, FrameCursor } from '../../lib/dataplane/tunnel/frames.js';

/** A frame as a sender writes it: FIN + opcode, the length in 7, 16 or 64 bits, an optional mask key. */
function frame(opcode: number, payloadLength: number, masked: boolean): Buffer {
  const lengthBytes =
    payloadLength < 126
      ? [payloadLength]
      : payloadLength < 65536
        ? [126, payloadLength >> 8, payloadLength & 0xff]
        : [127, 0, 0, 0, 0, (payloadLength >>> 24) & 0xff, (payloadLength >> 16) & 0xff, (payloadLength >> 8) & 0xff, payloadLength & 0xff];
  const header = Buffer.from([0x80 | opcode, (masked ? 0x80 : 0) | lengthBytes[0]!, ...lengthBytes.slice(1), ...(masked ? [1, 2, 3, 4] : [])]);
  return Buffer.concat([header, Buffer.alloc(payloadLength, 0x61)]);
}

describe('WebSocket frame cursor', () => {
  it('finds every frame boundary however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ length: fc.oneof(fc.integer({ min: 0, max: 130 }), fc.integer({ min: 65530, max: 65545 })), masked: fc.boolean() }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => frame(2, f.length, f.masked)));
          const boundaries = new Set<number>([0]);
          let at = 0;
          for (const f of frames) boundaries.add((at += frame(2, f.length, f.masked).length));
          const cursor = new FrameCursor();
          let offset = 0;
          let cut = 0;
          while (offset < stream.length) {
            const end = Math.min(stream.length, offset + cuts[cut++ % cuts.length]!);
            const chunk = stream.subarray(offset, end);
            // Stop at the first boundary inside the chunk, then feed the rest.
            const upTo = cursor.feedUntilBoundary(chunk);
            expect(cursor.atBoundary || upTo === chunk.length).to.equal(true);
            if (cursor.atBoundary) expect(boundaries.has(offset + upTo), `boundary at ${offset + upTo}`).to.equal(true);
            cursor.feed(chunk.subarray(upTo));
            offset = end;
            expect(cursor.atBoundary).to.equal(boundaries.has(offset));
          }
        },
      ),
    );
  });

  it('notices a close frame, and builds close frames a peer can read', () => {
    const cursor = new FrameCursor();
    cursor.feed(frame(1, 3, true));
    expect(cursor.sawClose).to.equal(false);
    cursor.feed(closeFrame(1001, true));
    expect(cursor.sawClose).to.equal(true);
    expect(closeFrame(1001, false)).to.deep.equal(Buffer.from([0x88, 0x02, 0x03, 0xe9]));
    const masked = closeFrame(1001, true);
    expect(masked.subarray(0, 2)).to.deep.equal(Buffer.from([0x88, 0x82]));
    const key = masked.subarray(2, 6);
    expect([masked[6]! ^ key[0]!, masked[7]! ^ key[1]!]).to.deep.equal([0x03, 0xe9]);
  });
});
