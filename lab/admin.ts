// The admin endpoints of a netns lab's proxies, for `nodemesh node-config` and `nodemesh
// proxy-config`: each node proxy's and each waypoint's admin listens on 127.0.0.1:15000 inside its
// own network namespace, reached from the root netns through the native addon (native/netns-http).
import type { AdminTarget } from '../common/admin-target';
import { ADMIN_PORT } from '../common/contracts/ports';
import { netnsGet } from '../native/netns-http';
import { DEFAULT_LAB, readWaypointPods, tryLoadLabState } from './state';

const inNetns =
  (netnsPath: string) =>
  (path: string): Promise<{ status: number; body: string }> =>
    netnsGet(netnsPath, '127.0.0.1', ADMIN_PORT, path);

/** The lab's node proxies (all, or the one named); undefined when the lab does not exist. */
export function labNodeAdmins(lab = DEFAULT_LAB): AdminTarget[] | undefined {
  const state = tryLoadLabState(lab);
  return state?.nodes.map((n) => ({ name: n.name, get: inNetns(n.netnsPath) }));
}

/** The lab's waypoints, named namespace/name; undefined when the lab does not exist. */
export function labWaypointAdmins(lab = DEFAULT_LAB): AdminTarget[] | undefined {
  if (!tryLoadLabState(lab)) return undefined;
  return readWaypointPods(lab).map((w) => ({ name: `${w.gateway.namespace}/${w.gateway.name}`, get: inNetns(w.pod.netnsPath) }));
}
