// `nodemesh lab controller --lab L`: the waypoint controller and the supervisor of the control
// plane and node proxies (lab/supervisor.ts) as a process (lab up starts it in the control host's
// netns and cgroup and records it as `lab-controller`). SIGTERM stops the watch and the
// supervision and leaves the processes running (lab down removes them).
import { createLogger } from '../../common/log';
import { ApiClient } from '../../control/api/client';
import { labConnection } from '../mesh/connect';
import { loadLabState } from '../state';
import { LabWaypointController } from './controller';
import { CONTROL_PLANE_PROCESS, launchControlPlane } from '../mesh/control';
import { launchNodeProxy, NODE_PROXY_PROCESS } from '../mesh/proxies';
import { readMeshInfo } from '../mesh/up';
import { LabSupervisor, type SupervisedComponent } from '../supervisor';
import { XDS_TLS_PORT } from '../../common/contracts/ports';
import type { LabTopology } from '../state';

/** The lab's control plane and node proxies, as lab up started them. */
export function supervisedComponents(state: LabTopology): SupervisedComponent[] {
  const xds = `${state.control.ip}:${XDS_TLS_PORT}`;
  return [
    { name: CONTROL_PLANE_PROCESS, place: 'control', start: () => void launchControlPlane(state) },
    ...state.nodes.map((n) => ({
      name: NODE_PROXY_PROCESS,
      place: n.name,
      start: () => void launchNodeProxy(state, n.name, readMeshInfo(state.lab)?.flavour ?? 'control', xds),
    })),
  ];
}

export async function runLabController(lab: string): Promise<number> {
  const log = createLogger('lab-controller');
  const state = loadLabState(lab);
  const c = labConnection(lab);
  const api = new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
  const ctl = new LabWaypointController(state, api, log);
  const supervisor = readMeshInfo(lab)?.mesh ? new LabSupervisor(lab, supervisedComponents(state), log) : undefined;
  supervisor?.start();
  const done = ctl.run();
  log.info({ lab }, 'lab controller watching Gateways');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  supervisor?.stop();
  await ctl.stop();
  await done;
  return 0;
}
