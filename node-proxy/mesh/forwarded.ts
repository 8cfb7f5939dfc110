// The client address an HBONE CONNECT carries in `forwarded` (RFC 7239; read and written by
// common/hbone/headers.ts). The source node proxy sends the app's own address and port,
// `for="10.200.1.2:58320"` (`for="[fd00::2]:58320"`): the
// tunnel's TCP connection is shared by many streams, so its address says nothing about which app
// connection a stream stands for. The destination logs the app's address:port as the source and
// keeps the tunnel's peer address in a separate field.
import { forwardedEndpoint } from '../../common/hbone/headers';
import type { Endpoint } from '../connections/table';
import { canonicalIp } from '../state/ip';

/**
 * The source a destination reports for one HBONE stream: the app's address:port from `forwarded`
 * when the header speaks for the tunnel's own peer (same IP: the source node proxy dials from the
 * client pod's netns), else the tunnel's peer itself (a waypoint's, or a client that sent nothing
 * or another address: the log never names an address the verified peer does not have).
 */
export function streamSource(tunnelPeer: Endpoint, forwarded: string | undefined): Endpoint {
  const f = forwardedEndpoint(forwarded);
  if (f?.port !== undefined && f.address === (canonicalIp(tunnelPeer.address) ?? tunnelPeer.address)) return { address: tunnelPeer.address, port: f.port };
  return tunnelPeer;
}
