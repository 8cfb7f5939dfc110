// The sample app "demo" as mesh resources (pure): which pod plays which role, the Namespaces,
// Workloads, Services (with VIPs), the AuthorizationPolicies and the PeerAuthentication, the argv
// each app runs with, and the edges the demo drives with what the policy should say about each.
//
//   namespace demo (ambient, STRICT):  frontend --HTTP--> [waypoint] --> backend v1 90 % / v2 10 %
//                                        (on the backend Service: ALLOW GET from sa frontend, DENY DELETE)
//                                      frontend --TCP--> tcp-echo (denies namespace outside)
//   namespace outside (not enrolled):  client
import type { LabPod, LabTopology } from '../state';
import { HBONE_PORT } from '../../common/contracts/ports';
import { DATAPLANE_MODE_LABEL, USE_WAYPOINT_LABEL, WAYPOINT_FOR_LABEL } from '../../common/contracts/labels';
import { DEFAULT_CALL_TIMEOUT_MS } from '../app/servers';
import { labTimeout } from '../time-scale';

export const DEMO_NS = 'demo';
export const OUTSIDE_NS = 'outside';
export const TRUST_DOMAIN = 'cluster.local';
/** The backend's waypoint: a Gateway in namespace demo; the lab controller runs it in pod wp-waypoint. */
export const WAYPOINT = 'waypoint';
/** The versioned Services the HTTPRoute splits the backend over, and the weights. */
export const VERSION_SERVICES = [
  { version: 'v1', name: 'backend-v1', vip: '10.96.0.13', weight: 90 },
  { version: 'v2', name: 'backend-v2', vip: '10.96.0.14', weight: 10 },
] as const;

export type RoleName = 'frontend' | 'backend' | 'tcp-echo' | 'client';

export interface DemoService {
  name: RoleName;
  vip: string;
  port: number;
  targetPort: number;
  protocol: 'http' | 'tcp';
}

export const SERVICES: readonly DemoService[] = [
  { name: 'frontend', vip: '10.96.0.10', port: 80, targetPort: 8080, protocol: 'http' },
  { name: 'backend', vip: '10.96.0.11', port: 80, targetPort: 8080, protocol: 'http' },
  { name: 'tcp-echo', vip: '10.96.0.12', port: 9000, targetPort: 9000, protocol: 'tcp' },
];

export function service(name: RoleName): DemoService {
  const s = SERVICES.find((x) => x.name === name);
  if (!s) throw new Error(`the demo has no service '${name}'`);
  return s;
}

export interface DemoRole {
  role: RoleName;
  /** The Workload's name: <role>-<pod>. */
  workload: string;
  namespace: string;
  serviceAccount: string;
  pod: LabPod;
  /** The port the app listens on (the client has none). */
  port?: number;
  /** Backends: v1, or v2 for the second backend pod (the HTTPRoute sends it 10 %). */
  version?: string;
}

export const spiffeId = (namespace: string, sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${sa}`;

/**
 * Which pod plays which role: the first four in an order that spreads them over the nodes
 * (frontend on the first node, backend on the second, so frontend -> backend crosses nodes, while
 * tcp-echo shares the frontend's node); further pods become more backend replicas.
 */
export function assignRoles(t: LabTopology): DemoRole[] {
  if (t.pods.length < 4) {
    throw new RangeError(
      `the demo needs 4 pods (frontend, backend, tcp-echo, client); this lab has ${t.pods.length}: use --pods-per-node 2 or more, or --no-demo`,
    );
  }
  const byNode = t.nodes.map((n) => t.pods.filter((p) => p.node === n.name));
  // round-robin over nodes: node1 pod1, node2 pod1, node1 pod2, node2 pod2, …
  const order: LabPod[] = [];
  for (let k = 0; order.length < t.pods.length; k++) for (const pods of byNode) if (pods[k]) order.push(pods[k] as LabPod);
  const n = t.nodes.length;
  // frontend: first pod of node1; backend: first pod of node2 (or the next pod on a one-node lab);
  // tcp-echo: the second pod of node1; client: the next free one.
  const take = (want: LabPod | undefined): LabPod => {
    const p = want && order.includes(want) ? want : order[0];
    order.splice(order.indexOf(p as LabPod), 1);
    return p as LabPod;
  };
  const frontend = take(byNode[0]?.[0]);
  const backend = take(n > 1 ? byNode[1]?.[0] : undefined);
  const tcpEcho = take(byNode[0]?.[1]);
  const client = take(n > 1 ? byNode[1]?.[1] : undefined);
  const role = (r: RoleName, pod: LabPod): DemoRole => ({
    role: r,
    workload: `${r}-${pod.name}`,
    namespace: r === 'client' ? OUTSIDE_NS : DEMO_NS,
    serviceAccount: r,
    pod,
    port: r === 'client' ? undefined : service(r).targetPort,
  });
  // backends: the first extra pod runs v2, the others v1
  const backends = [backend, ...order].map((p, i) => ({ ...role('backend', p), version: i === 1 ? 'v2' : 'v1' }));
  return [role('frontend', frontend), backends[0] as DemoRole, role('tcp-echo', tcpEcho), role('client', client), ...backends.slice(1)];
}

/** True when the demo has both backend versions (5 pods or more): then the HTTPRoute splits 90/10. */
export const hasSplit = (roles: readonly DemoRole[]): boolean => roles.some((r) => r.version === 'v2');

/** host:port to reach a service: its VIP through the mesh; without a mesh (no VIPs) its first pod. */
export function serviceTarget(roles: readonly DemoRole[], name: RoleName, mesh: boolean): string {
  const s = service(name);
  if (mesh) return `${s.vip}:${s.port}`;
  const r = roles.find((x) => x.role === name);
  if (!r) throw new Error(`the demo has no pod for '${name}'`);
  return `${r.pod.ip}:${s.targetPort}`;
}

/**
 * The argv (after `node dist/lab/app/main.js`) of each role's app; undefined for the client. The
 * frontend's call to the backend gets the app's 5 s scaled by NODEMESH_SPEED_FACTOR from `env`:
 * on a slow machine (a VM under TCG) a first call through the mesh sets up two tunnels on cold
 * processes and outlasted 5 s, and the frontend answered 502.
 */
export function appArgs(r: DemoRole, roles: readonly DemoRole[], mesh = true, env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const who = ['--name', r.role, '--pod', r.pod.name, '--node', r.pod.node];
  switch (r.role) {
    case 'frontend':
      return [
        'http',
        '--port',
        String(r.port),
        ...who,
        '--call',
        `http://${serviceTarget(roles, 'backend', mesh)}/`,
        '--call-timeout-ms',
        String(labTimeout(DEFAULT_CALL_TIMEOUT_MS, env)),
      ];
    case 'backend':
      return ['http', '--port', String(r.port), ...who, '--version', r.version ?? 'v1'];
    case 'tcp-echo':
      return ['echo', '--port', String(r.port), ...who];
    case 'client':
      return undefined;
  }
}

type Doc = Record<string, unknown>;

/** Every resource of the demo, in apply order. `enrolled: false` (--no-mesh) labels demo `none`. */
export function demoResources(roles: readonly DemoRole[], opts: { enrolled: boolean } = { enrolled: true }): Doc[] {
  const docs: Doc[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: DEMO_NS, labels: { [DATAPLANE_MODE_LABEL]: opts.enrolled ? 'ambient' : 'none' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: OUTSIDE_NS } },
  ];
  for (const r of roles) {
    docs.push({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: {
        name: r.workload,
        namespace: r.namespace,
        labels: { app: r.role, ...(r.version ? { version: r.version } : {}), 'nodemesh.io/lab-pod': r.pod.name },
      },
      spec: {
        serviceAccount: r.serviceAccount,
        node: r.pod.node,
        addresses: [r.pod.ip],
        ...(r.port !== undefined ? { ports: [{ name: service(r.role).protocol === 'http' ? 'http' : 'tcp', port: r.port }] } : {}),
        netnsPath: r.pod.netnsPath,
        cgroupPath: r.pod.cgroup,
      },
    });
  }
  const mesh = opts.enrolled;
  // The backend's waypoint (in the mesh only): the lab controller starts it when it sees the Gateway.
  if (mesh) {
    docs.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: WAYPOINT, namespace: DEMO_NS, labels: { [WAYPOINT_FOR_LABEL]: 'service' } },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ name: 'mesh', port: HBONE_PORT, protocol: 'HBONE' }] },
    });
  }
  const http = service('backend');
  const svc = (
    name: string,
    vip: string,
    port: number,
    targetPort: number,
    protocol: string,
    selector: Record<string, string>,
    labels?: Record<string, string>,
  ): Doc => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: DEMO_NS, ...(labels ? { labels } : {}) },
    spec: { clusterIP: vip, selector, ports: [{ name: protocol, port, targetPort, appProtocol: protocol }] },
  });
  for (const s of SERVICES) {
    docs.push(
      svc(s.name, s.vip, s.port, s.targetPort, s.protocol, { app: s.name }, mesh && s.name === 'backend' ? { [USE_WAYPOINT_LABEL]: WAYPOINT } : undefined),
    );
  }
  if (mesh && hasSplit(roles)) {
    for (const v of VERSION_SERVICES) docs.push(svc(v.name, v.vip, http.port, http.targetPort, 'http', { app: 'backend', version: v.version }));
    docs.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'backend-split', namespace: DEMO_NS },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'backend', port: http.port }],
        rules: [{ backendRefs: VERSION_SERVICES.map((v) => ({ name: v.name, port: http.port, weight: v.weight })) }],
      },
    });
  }
  const backendRef = [{ group: '', kind: 'Service', name: 'backend' }];
  docs.push(
    // On the Service (targetRefs): the waypoint enforces them with the client's identity.
    {
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'backend-allow-get', namespace: DEMO_NS },
      spec: {
        targetRefs: backendRef,
        action: 'ALLOW',
        rules: [{ from: [{ source: { principals: [`${TRUST_DOMAIN}/ns/${DEMO_NS}/sa/frontend`] } }], to: [{ operation: { methods: ['GET'] } }] }],
      },
    },
    {
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'backend-deny-delete', namespace: DEMO_NS },
      spec: { targetRefs: backendRef, action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] },
    },
    {
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'tcp-echo-deny-outside', namespace: DEMO_NS },
      spec: { selector: { matchLabels: { app: 'tcp-echo' } }, action: 'DENY', rules: [{ from: [{ source: { namespaces: [OUTSIDE_NS] } }] }] },
    },
    {
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: DEMO_NS },
      spec: { mtls: { mode: 'STRICT' } },
    },
  );
  return docs;
}

/** One connection pattern the demo drives, and what the mesh should do with it. */
export interface DemoEdge {
  /** Short label for the table. */
  label: string;
  /** The pod whose netns and cgroup the client runs in (so capture applies to it). */
  from: DemoRole;
  /** The role that serves it. */
  to: DemoRole;
  /** host:port the client dials: a Service VIP, a pod address, or 127.0.0.1 (the frontend's own port). */
  target: string;
  mode: 'http' | 'tcp';
  /** What the client process dials on behalf of: for the frontend's --call this is the frontend. */
  via?: string;
  /** The waypoint the edge goes through: the destination's node proxy sees it as the peer. */
  waypoint?: { ip: string; id: string };
  /** Every pod that may serve the edge (a Service's endpoints); default `to` alone. */
  toPods?: DemoRole[];
  expect: 'allow' | 'deny';
  why: string;
}

/** The edges; without a mesh (`mesh: false`) services are dialled by pod address and nothing is enforced. */
export function demoEdges(roles: readonly DemoRole[], mesh = true, waypointIp?: string): DemoEdge[] {
  const one = (r: RoleName): DemoRole => roles.find((x) => x.role === r) as DemoRole; // assignRoles always fills the four roles
  const [fe, be, te, cl] = [one('frontend'), one('backend'), one('tcp-echo'), one('client')];
  const vip = (r: RoleName): string => serviceTarget(roles, r, mesh);
  const backends = roles.filter((r) => r.role === 'backend');
  const wp = mesh && waypointIp ? { waypoint: { ip: waypointIp, id: spiffeId(DEMO_NS, WAYPOINT) } } : {};
  const edges: DemoEdge[] = [
    // requests to the frontend on its own loopback (not captured); each makes one call to backend
    {
      label: 'frontend -> backend',
      from: fe,
      to: be,
      toPods: backends,
      target: `127.0.0.1:${fe.port}`,
      via: 'frontend --call',
      mode: 'http',
      expect: 'allow',
      why: 'backend-allow-get: GET from sa/frontend, at the waypoint',
      ...wp,
    },
    { label: 'frontend -> tcp-echo', from: fe, to: te, target: vip('tcp-echo'), mode: 'tcp', expect: 'allow', why: 'no DENY matches, no ALLOW policy' },
    {
      label: 'tcp-echo -> backend',
      from: te,
      to: be,
      toPods: backends,
      target: vip('backend'),
      mode: 'http',
      expect: 'deny',
      why: 'backend-allow-get: sa/tcp-echo not allowed (403 at the waypoint)',
      ...wp,
    },
    {
      label: 'client(outside) -> frontend',
      from: cl,
      to: fe,
      target: `${fe.pod.ip}:${fe.port}`,
      mode: 'http',
      expect: 'deny',
      why: 'STRICT: plaintext from outside the mesh',
    },
    {
      label: 'client(outside) -> tcp-echo',
      from: cl,
      to: te,
      target: `${te.pod.ip}:${te.port}`,
      mode: 'tcp',
      expect: 'deny',
      why: 'STRICT: plaintext from outside the mesh',
    },
  ];
  return mesh ? edges : edges.map((e) => ({ ...e, expect: 'allow', why: 'no mesh: nothing enforced, plaintext' }));
}

/**
 * Without the demo (`--no-demo`): every pod as a Workload named after the pod in namespace
 * `default` (service account `default`), not enrolled until the namespace or workload is labelled
 * (`nodemesh namespace enroll default`).
 */
export function podWorkloads(t: LabTopology): Doc[] {
  return t.pods.map((p) => ({
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: p.name, namespace: 'default', labels: { app: p.name, 'nodemesh.io/lab-pod': p.name } },
    spec: { serviceAccount: 'default', node: p.node, addresses: [p.ip], netnsPath: p.netnsPath, cgroupPath: p.cgroup },
  }));
}
