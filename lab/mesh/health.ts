// Readiness of the mesh processes for `lab status`: the control plane's and node proxies' own
// /healthz/ready, and for the demo apps whether their port accepts a connection.
import { connectInNetns } from '../../native/netns';
import type { LabProcess, LabTopology } from '../state';
import { findPlace } from '../state';
import { netnsGet } from '../../native/netns-http';
import { controlRootOf, meshPaths } from './paths';
import { service, type RoleName } from './demo';
import { CONFIG_API_PORT, READY_PORT } from '../../common/contracts/ports';

async function httpReady(netnsPath: string, host: string, port: number, ca?: string): Promise<string> {
  try {
    const r = await netnsGet(netnsPath, host, port, '/healthz/ready', {}, 1500, ca);
    if (r.status === 200) return 'ready';
    return `not ready (${r.status}: ${r.body.replace(/\s+/g, ' ').slice(0, 80)})`;
  } catch (e) {
    return `not answering (${(e as Error).message.slice(0, 80)})`;
  }
}

/** 'ready', or what is wrong; '-' for processes that have no health check. */
export async function processHealth(state: LabTopology, p: LabProcess, alive: boolean): Promise<string> {
  if (!alive) return '-';
  let place;
  try {
    place = findPlace(state, p.place);
  } catch {
    return '-';
  }
  if (p.name === 'control-plane') return httpReady(place.netnsPath, state.control.ip, CONFIG_API_PORT, controlRootOf(meshPaths(state.lab)) ?? '');
  if (p.name === 'node-proxy' || p.name === 'waypoint') return httpReady(place.netnsPath, '127.0.0.1', READY_PORT);
  const m = /^app-(frontend|backend|tcp-echo)$/.exec(p.name);
  if (m) {
    const port = service(m[1] as RoleName).targetPort;
    try {
      const s = await connectInNetns(place.netnsPath, { host: '127.0.0.1', port, timeoutMs: 1500 });
      s.destroy();
      return `ready (:${port})`;
    } catch (e) {
      return `not listening on :${port} (${(e as Error).message.slice(0, 60)})`;
    }
  }
  return '-';
}
