// Recovering where a captured outbound connection was going: connect4/connect6 recorded it and
// sockops re-keyed it by what the node proxy sees on the accepted socket (netns cookie, client
// address, client port). Lookup and removal go through this interface, so the connection handling
// does not depend on the map's byte layout.
import type { Endpoint } from '../connections/table';

export interface OriginalDestinations {
  /** Takes (looks up and removes) the original destination of the connection from `client`. */
  take(netnsCookie: bigint, client: Endpoint): Endpoint | undefined;
  /**
   * The fd of the map behind take(), when there is one: the capture listeners then take each
   * connection's original destination themselves, in the addon (native/netns-accept.ts).
   */
  readonly mapFd?: number;
}
