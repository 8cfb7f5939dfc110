// IP text <-> the byte form the workload API carries (4 bytes for IPv4, 16 for IPv6).
import { type Cidr, parseCidr } from '../../common/ip';

// the codec lives in common/ip.ts (the node proxy uses it too); re-exported for existing importers
export { ipBytes, ipText } from '../../common/ip';

/** "10.0.0.0/8" or a bare address (a /32 or /128). */
export function cidrOf(text: string): Cidr {
  return parseCidr(text);
}
