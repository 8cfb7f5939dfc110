// `nodemesh lab controller --lab L`: the waypoint controller as a process (lab up starts it in the
// control host's netns and cgroup and records it as `lab-controller`). SIGTERM stops the watch and
// leaves the waypoints running (lab down removes them).
import { createLogger } from '../../common/log';
import { ApiClient } from '../../control/api/client';
import { labConnection } from '../mesh/connect';
import { loadLabState } from '../state';
import { LabWaypointController } from './controller';

export async function runLabController(lab: string): Promise<number> {
  const log = createLogger('lab-controller');
  const state = loadLabState(lab);
  const c = labConnection(lab);
  const api = new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
  const ctl = new LabWaypointController(state, api, log);
  const done = ctl.run();
  log.info({ lab }, 'lab controller watching Gateways');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await ctl.stop();
  await done;
  return 0;
}
