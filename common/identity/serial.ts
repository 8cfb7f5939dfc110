// Certificate serial numbers, for the control plane's CA and for test PKIs alike.
import { randomBytes } from 'node:crypto';

/** A random positive 128-bit serial number (hex). */
export function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x01; // positive, and no leading zero byte to strip
  return b.toString('hex');
}
