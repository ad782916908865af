/**
 * MQTT 3.1.1's Remaining Length (section 2.2.3): 1 to 4 bytes, 7 bits each, low bits first, the
 * high bit saying another byte follows. Shared by everything here that writes MQTT packets by hand.
 */

/** Bytes the Remaining Length `n` takes. */
export function remainingLengthSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/** Write the Remaining Length `n` at `at`; returns the offset after it. */
export function writeRemainingLength(buf: Uint8Array, at: number, n: number): number {
  do {
    let byte = n % 0x80;
    n = Math.floor(n / 0x80);
    if (n > 0) byte |= 0x80;
    buf[at++] = byte;
  } while (n > 0);
  return at;
}
