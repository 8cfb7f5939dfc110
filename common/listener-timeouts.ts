// nodemesh_listener_timeouts_total{listener,kind}: connections a listener closed because the peer
// was too slow (TLS handshake, request), the app behind it was not connected in time, the
// connection was idle, or the peer vanished (an HBONE PING unanswered). One counter per Prometheus
// registry, shared by every listener of a process (the control plane's 15014/15012/metrics port,
// the waypoint's 15008, the node proxy's 15008 and 15006), so the series has one name and one
// help text wherever it is scraped.
import { Counter, type Registry } from './prom';

export type ListenerTimeouts = Counter<'listener' | 'kind'>;

const byRegistry = new WeakMap<Registry, ListenerTimeouts>();

export function listenerTimeouts(registry: Registry): ListenerTimeouts {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const c = new Counter({
    name: 'nodemesh_listener_timeouts_total',
    help: 'Connections closed because the peer did not finish the TLS handshake (kind=handshake), the request (request), the app was not connected (connect), the connection stayed idle (idle) or the peer answered no PING (ping) in time, by listener',
    labelNames: ['listener', 'kind'],
    registers: [registry],
  });
  byRegistry.set(registry, c);
  return c;
}
