// `lab up` after the network: the control plane, node credentials, the demo's resources, one node
// proxy per node, the demo apps; then traffic over every demo edge and the table of what happened.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ApiClient } from '../../control/api/client';
import { connectInNetns } from '../../native/netns';
import { labStateDir, readLabProcesses, type LabTopology } from '../state';
import { isSameProcess, sleep } from '../sys';
import { labConnection } from './connect';
import { issueNodeCredentials, startControlPlane } from './control';
import { appArgs, assignRoles, demoEdges, demoResources, podWorkloads, TRUST_DOMAIN, type DemoRole } from './demo';
import { launch } from './launch';
import { meshPaths } from './paths';
import { proxyFlavour, startNodeProxies, teardownNodeProxies, type ProxyFlavour } from './proxies';
import { formatEdgeTable, summarizeEdge, type EdgeSummary } from './report';
import { appMain, DEFAULT_DRIVE, driveEdge, type DriveOptions } from './traffic';
import { startLabController, stopLabController } from '../waypoints/launch';
import { readWaypointPods } from '../state';
import { driveWaypointDemo, formatWaypointDemo, waitWaypointReady } from './waypoint-demo';
import { DEMO_NS, hasSplit, WAYPOINT } from './demo';
import { labTimeout } from '../time-scale';

export interface MeshOptions {
  mesh: boolean;
  demo: boolean;
  drive?: DriveOptions;
}

/** What `lab up` started, kept next to the lab state (read by `lab down` and `lab status`). */
export interface MeshInfo {
  mesh: boolean;
  demo: boolean;
  flavour?: ProxyFlavour;
  roles?: Array<{ role: string; pod: string; workload: string; namespace: string }>;
}

const infoPath = (lab: string): string => join(labStateDir(lab), 'mesh', 'mesh.json');

export function readMeshInfo(lab: string): MeshInfo | undefined {
  try {
    return JSON.parse(readFileSync(infoPath(lab), 'utf8')) as MeshInfo;
  } catch {
    return undefined;
  }
}

function writeMeshInfo(lab: string, info: MeshInfo): void {
  mkdirSync(dirname(infoPath(lab)), { recursive: true });
  writeFileSync(infoPath(lab), JSON.stringify(info, null, 2) + '\n');
}

export interface MeshUpResult {
  info: MeshInfo;
  roles?: DemoRole[];
  edges?: EdgeSummary[];
  table?: string;
  /** The waypoint part of the demo (split, GET/DELETE, the waypoint's identity); ok false when it did not go as routed. */
  l7?: { text: string; ok: boolean };
}

async function waitListening(state: LabTopology, role: DemoRole, exited: Promise<string>, log: string): Promise<void> {
  let gone: string | undefined;
  void exited.then((h) => (gone = h));
  const limit = labTimeout(10_000);
  const deadline = Date.now() + limit;
  while (Date.now() < deadline) {
    if (gone) throw new Error(`the ${role.role} app in ${role.pod.name} exited (${gone}); see ${log}`);
    try {
      const s = await connectInNetns(role.pod.netnsPath, { host: '127.0.0.1', port: role.port ?? 0, timeoutMs: 1000 });
      s.destroy();
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`the ${role.role} app in ${role.pod.name} did not listen on :${role.port} within ${limit / 1000} s; see ${log}`);
}

export async function startDemoApps(state: LabTopology, roles: readonly DemoRole[], mesh: boolean): Promise<void> {
  const paths = meshPaths(state.lab);
  await Promise.all(
    roles.map(async (r) => {
      const args = appArgs(r, roles, mesh);
      if (!args) return;
      const log = paths.log(r.pod.name, r.role);
      const p = launch(state, r.pod.name, `app-${r.role}`, [process.execPath, appMain(), ...args], log);
      await waitListening(state, r, p.exited, log);
    }),
  );
}

function apiOf(lab: string): ApiClient {
  const c = labConnection(lab);
  return new ApiClient({ server: c.server, token: c.token, createConnection: c.createConnection, ca: c.ca });
}

export async function applyDemo(lab: string, roles: readonly DemoRole[], mesh: boolean): Promise<void> {
  await apiOf(lab).apply(demoResources(roles, { enrolled: mesh }));
}

export async function meshUp(state: LabTopology, opts: MeshOptions, progress: (m: string) => void): Promise<MeshUpResult> {
  const roles = opts.demo ? assignRoles(state) : undefined;
  const info: MeshInfo = {
    mesh: opts.mesh,
    demo: opts.demo,
    roles: roles?.map((r) => ({ role: r.role, pod: r.pod.name, workload: r.workload, namespace: r.namespace })),
  };
  writeMeshInfo(state.lab, info);
  if (opts.mesh) {
    progress(`control plane in ${state.control.netns} (${state.control.ip}: API :15014, xDS :15012)`);
    const cp = await startControlPlane(state);
    progress(`node tokens for ${state.nodes.map((n) => n.name).join(', ')} and the trust bundle`);
    await issueNodeCredentials(state);
    progress('lab controller (runs a waypoint pod per waypoint Gateway)');
    await startLabController(state);
    if (roles) {
      progress('demo resources: namespaces demo (ambient, STRICT) and outside, workloads, services, policies');
      await applyDemo(state.lab, roles, true);
    } else {
      progress(`every pod as a Workload in namespace default, not enrolled ('nodemesh namespace enroll default --lab ${state.lab}' enrols them)`);
      await apiOf(state.lab).apply(podWorkloads(state));
    }
    info.flavour = await proxyFlavour();
    writeMeshInfo(state.lab, info);
    progress(
      `node proxies on ${state.nodes.map((n) => n.name).join(', ')}${info.flavour === 'lab' ? ' (this build has no --control: capture and passthrough only, no mTLS)' : ''}`,
    );
    await startNodeProxies(state, cp.xds, roles, info.flavour);
  }
  if (!roles) return { info };
  if (!opts.mesh) progress('no mesh: demo apps talk plaintext, services by pod address');
  progress(
    `demo apps: ${roles
      .filter((r) => r.role !== 'client')
      .map((r) => `${r.role}@${r.pod.name}`)
      .join(', ')}; client@${roles.find((r) => r.role === 'client')?.pod.name}`,
  );
  await startDemoApps(state, roles, opts.mesh);
  if (opts.mesh) {
    progress(`waiting for the backend's waypoint ${DEMO_NS}/${WAYPOINT}`);
    await waitWaypointReady(state.lab, { namespace: DEMO_NS, name: WAYPOINT });
  }
  return { info, roles, ...(await demoTraffic(state, roles, opts.mesh, opts.drive, progress)) };
}

/** Drives every demo edge once more and tabulates it (also for a `lab up` of a lab that is already up). */
export async function demoTraffic(
  state: LabTopology,
  roles: readonly DemoRole[],
  mesh: boolean,
  drive: DriveOptions = DEFAULT_DRIVE,
  progress: (m: string) => void = () => undefined,
): Promise<{ edges: EdgeSummary[]; table: string; l7?: { text: string; ok: boolean } }> {
  const wp = mesh ? readWaypointPods(state.lab).find((w) => w.gateway.namespace === DEMO_NS && w.gateway.name === WAYPOINT) : undefined;
  progress('driving traffic over each edge');
  const edges: EdgeSummary[] = [];
  for (const edge of demoEdges(roles, mesh, wp?.pod.ip)) edges.push(summarizeEdge(await driveEdge(state, edge, drive, mesh)));
  let l7;
  if (wp && hasSplit(roles)) {
    progress(`HTTP through the waypoint: GET x100 (split 90/10 by version), DELETE x5`);
    l7 = formatWaypointDemo(await driveWaypointDemo(state, roles, wp), TRUST_DOMAIN);
  }
  return { edges, table: formatEdgeTable(edges, TRUST_DOMAIN), l7 };
}

/** Before `lab down`: stop the node proxies and let them unenrol every workload and drop their pins. */
export async function meshDown(state: LabTopology, progress: (m: string) => void): Promise<void> {
  const info = readMeshInfo(state.lab);
  // The controller first, so it does not restart waypoints while they are being stopped.
  await stopLabController(state.lab);
  if (!info?.mesh || !info.flavour) return;
  const proxies = readLabProcesses(state.lab).filter((p) => p.name === 'node-proxy' && isSameProcess(p.pid, p.startTime));
  for (const p of proxies) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + 5000;
  while (proxies.some((p) => isSameProcess(p.pid, p.startTime)) && Date.now() < deadline) await sleep(50);
  if (!state.nodes.some((n) => existsSync(n.bpffsDir))) return;
  progress('node proxies: --teardown (unenrol workloads, remove pins)');
  for (const problem of await teardownNodeProxies(state, info.flavour)) progress(`warning: ${problem}`);
}
