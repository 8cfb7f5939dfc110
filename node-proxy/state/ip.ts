// IP addresses as the node proxy's indexes key them: canonical text (RFC 5952 for IPv6), with
// IPv4-mapped IPv6 (::ffff:10.0.0.1, as dual-stack sockets report IPv4 peers) folded to IPv4.
export { canonicalIp, ipFromBytes, ipToBytes } from '../../common/ip';

/** Index key of an address in a network ('' = the default network). */
export function networkKey(network: string, ip: string): string {
  return `${network}/${ip}`;
}
