/**
 * WebSocket text frames as the server sends them (RFC 6455, section 5.2): FIN set, opcode 1,
 * unmasked, the payload length in 7, 16 or 64 bits. A tapped message goes to every client whose
 * filters match it, and a server frame is the same bytes for each of them: the hub frames it once
 * and writes the frames of a round in one socket write, where `ws.send` framed it again per
 * client and made two writes of it (header, then payload).
 *
 * Only for connections without permessage-deflate (the hub's server never negotiates it): with
 * compression, frames must go through `ws` in order with the ones it compresses.
 */

const FIN_TEXT = 0x81;

/** `json` as one complete, unmasked text frame. */
export function textFrame(json: string): Buffer {
  const length = Buffer.byteLength(json);
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = FIN_TEXT;
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2); // the high 32 bits: no frame here is 4 GiB
    frame.writeUInt32BE(length, 6);
  }
  frame.write(json, header, 'utf8');
  return frame;
}
