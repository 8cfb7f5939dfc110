// The waypoints of a lab for `lab status`: Gateway, pod, node, address, process and readiness.
import { formatTable } from '../../common/table';
import { readWaypointPods, type LabTopology } from '../state';
import { netnsGet } from '../../native/netns-http';
import { waypointProcess } from './controller';
import { READY_PORT } from '../../common/contracts/ports';

export interface WaypointRow {
  gateway: string;
  pod: string;
  node: string;
  address: string;
  pid?: number;
  health: string;
}

/** Readiness of a waypoint in its pod: its own /healthz/ready on :15021. */
export async function waypointReadiness(netnsPath: string): Promise<string> {
  try {
    const r = await netnsGet(netnsPath, '127.0.0.1', READY_PORT, '/healthz/ready', {}, 1500);
    return r.status === 200 ? 'ready' : `not ready (${r.status}: ${r.body.replace(/\s+/g, ' ').slice(0, 60)})`;
  } catch (e) {
    return `not answering (${(e as Error).message.slice(0, 60)})`;
  }
}

export async function waypointRows(t: LabTopology): Promise<WaypointRow[]> {
  return Promise.all(
    readWaypointPods(t.lab).map(async (w) => {
      const p = waypointProcess(t.lab, w.pod.name);
      return {
        gateway: `${w.gateway.namespace}/${w.gateway.name}`,
        pod: w.pod.name,
        node: w.pod.node,
        address: w.pod.ip,
        pid: p?.pid,
        health: p ? await waypointReadiness(w.pod.netnsPath) : 'no process (the lab controller restarts it)',
      };
    }),
  );
}

export async function describeWaypoints(t: LabTopology): Promise<string> {
  const rows = await waypointRows(t);
  if (rows.length === 0) return '';
  return (
    '\nwaypoints:\n' +
    formatTable(
      ['GATEWAY', 'POD', 'NODE', 'ADDRESS', 'PID', 'HEALTH'],
      rows.map((r) => [r.gateway, r.pod, r.node, r.address, r.pid ? String(r.pid) : '-', r.health]),
    )
  );
}
