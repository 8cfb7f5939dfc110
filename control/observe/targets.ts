// Which proxies to read, from what the control plane knows: the proxies connected to it over xDS
// (GET /debug/xds's client list). A node proxy (a delta stream of the workload API) and a waypoint
// (an Envoy-types stream with a waypoint view, or a node id `waypoint~<ip>~<name>.<ns>~…`) serve
// metrics and recent records on 15020 of the address they connected from (the node's address for a
// node proxy, the waypoint pod's own). Proxyless gRPC clients serve nothing and are left out.
import { METRICS_PORT } from '../../common/contracts/ports';

/** What the observer needs of one connected xDS client. */
export interface ConnectedClient {
  readonly api: string;
  readonly nodeId: string;
  /** host:port (or [v6]:port) of its connection, as grpc-js reports it (maybe prefixed ipv4:/ipv6:). */
  readonly peer: string;
  /** waypoint:<ns>/<name>, workload-api (a node proxy) or proxyless. */
  readonly view: string;
  readonly types: Readonly<Record<string, unknown>>;
}

export interface ProxyTarget {
  /** node-proxy/<node id> or waypoint/<ns>/<name>. */
  readonly id: string;
  readonly kind: 'node-proxy' | 'waypoint';
  readonly address: string;
  readonly port: number;
  /** The node proxy's node id (its node's name). */
  readonly node?: string;
  /** The waypoint's ns/name. */
  readonly waypoint?: string;
}

/** The host of a grpc-js peer string: `ipv4:10.0.0.1:5000`, `10.0.0.1:5000`, `[::1]:5000`, `ipv6:[::1]:5000`. */
export function peerHost(peer: string): string | undefined {
  const p = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (v6) return v6[1];
  const v4 = /^([^:]+)(?::\d+)?$/.exec(p);
  return v4?.[1] || undefined;
}

/**
 * A node proxy: a delta stream of the workload API — its view reads `workload-api` and its types are
 * named by their short names (wds, authz, peerauthn) in the client dump, or by type URL.
 */
function isNodeProxy(c: ConnectedClient): boolean {
  if (c.api !== 'delta') return false;
  return c.view === 'workload-api' || Object.keys(c.types).some((t) => /^(wds|authz|peerauthn)$|workload|address|authorization/i.test(t));
}

/** The proxies to read, one per (kind, address), in a stable order. */
export function proxyTargets(clients: readonly ConnectedClient[], port: number = METRICS_PORT): ProxyTarget[] {
  const out = new Map<string, ProxyTarget>();
  for (const c of clients) {
    const address = peerHost(c.peer);
    if (c.view.startsWith('waypoint:')) {
      const waypoint = c.view.slice('waypoint:'.length);
      const parts = c.nodeId.split('~');
      const ip = parts[0] === 'waypoint' && parts[1] ? parts[1] : address;
      if (!ip) continue;
      out.set(`waypoint/${waypoint}@${ip}`, { id: `waypoint/${waypoint}`, kind: 'waypoint', address: ip, port, waypoint });
    } else if (isNodeProxy(c)) {
      if (!address) continue;
      const node = c.nodeId || address;
      out.set(`node-proxy@${address}`, { id: `node-proxy/${node}`, kind: 'node-proxy', address, port, node });
    }
  }
  return [...out.values()].sort((a, b) => a.id.localeCompare(b.id));
}
