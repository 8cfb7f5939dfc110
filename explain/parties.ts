// FROM and TO as a user writes them -> what the mesh state holds: a workload (`ns/name`, a pod
// name, or one of its addresses), a Service (`name.ns`, `name.ns.svc.<suffix>`, its VIP) or an
// address outside the mesh. Lookups go through the node proxy's own WorkloadState indexes, so an
// address means what it means to a node proxy.
import { isIP } from 'node:net';
import type { Service, Workload } from '../api/gen/nodemesh/workload/v1/workload';
import { TunnelProtocol } from '../api/gen/nodemesh/workload/v1/workload';
import { ExplainError } from '../control/api/explain';
import { serviceHostname, serviceResourceName, workloadUid } from '../control/workload/translate';
import { spiffeOf } from '../node-proxy/proxy/plan';
import { ipFromBytes } from '../node-proxy/state/ip';
import type { WorkloadState } from '../node-proxy/state/workload-state';
import type { Party } from './model';
import type { World } from './world';

/** The label the netns lab puts on a Workload naming its pod. */
const LAB_POD_LABEL = 'nodemesh.io/lab-pod';

export type Resolved =
  | { readonly kind: 'workload'; readonly workload: Workload; readonly party: Party }
  | { readonly kind: 'service'; readonly service: Service; readonly party: Party; readonly byName: boolean }
  | { readonly kind: 'address'; readonly party: Party };

export const isEnrolled = (w: Workload): boolean => w.tunnelProtocol === TunnelProtocol.TUNNEL_PROTOCOL_HBONE;

export function workloadParty(world: World, w: Workload): Party {
  return {
    kind: 'workload',
    name: `${w.namespace}/${w.name}`,
    address: w.addresses.map(ipFromBytes)[0] ?? '',
    namespace: w.namespace,
    node: w.node,
    identity: spiffeOf({ trustDomain: world.options.trustDomain }, w),
    enrolled: isEnrolled(w),
    ...(w.waypoint ? { waypoint: w.waypoint.gateway || '(unnamed)' } : {}),
  };
}

function serviceParty(s: Service): Party {
  const vips = s.addresses.map((a) => ipFromBytes(a.address));
  return {
    kind: 'service',
    name: serviceResourceName(s.namespace, s.hostname),
    address: vips.find((v) => isIP(v) === 4) ?? vips[0] ?? '',
    namespace: s.namespace,
    ...(s.waypoint ? { waypoint: s.waypoint.gateway || '(unnamed)' } : {}),
  };
}

function byAddress(world: World, state: WorkloadState, ip: string): Resolved {
  const svc = state.serviceByVip(ip);
  if (svc) return { kind: 'service', service: svc, party: { ...serviceParty(svc), address: ip }, byName: false };
  const w = state.workloadByIp(ip);
  if (w) return { kind: 'workload', workload: w, party: { ...workloadParty(world, w), address: ip } };
  return { kind: 'address', party: { kind: 'address', name: ip, address: ip } };
}

function workloadNamed(world: World, state: WorkloadState, text: string): Resolved | undefined {
  if (text.includes('/')) {
    const [ns, name, ...rest] = text.split('/');
    if (!ns || !name || rest.length) throw new ExplainError(400, `"${text}" is not ns/name`);
    const w = byName(state, ns, name);
    if (!w) throw new ExplainError(404, `no Workload ${ns}/${name} in the mesh (list them with 'nodemesh get workloads -A')`);
    return { kind: 'workload', workload: w, party: workloadParty(world, w) };
  }
  // A pod name: a Workload of that name, or the lab's pod label.
  const hits = world.snapshot.list('Workload').filter((r) => r.metadata.name === text || r.metadata.labels?.[LAB_POD_LABEL] === text);
  if (hits.length > 1) {
    const names = hits.map((r) => `${r.metadata.namespace}/${r.metadata.name}`).join(', ');
    throw new ExplainError(400, `"${text}" names several workloads (${names}); write ns/name`);
  }
  const r = hits[0];
  if (!r) return undefined;
  const w = byName(state, r.metadata.namespace ?? '', r.metadata.name);
  return w ? { kind: 'workload', workload: w, party: workloadParty(world, w) } : undefined;
}

/** The workload API's Workload of that namespace and name (by its resource name, else by a scan). */
function byName(state: WorkloadState, namespace: string, name: string): Workload | undefined {
  const w = state.workload(workloadUid(namespace, name));
  if (w) return w;
  for (const x of state.allWorkloads().values()) if (x.namespace === namespace && x.name === name) return x;
  return undefined;
}

function serviceNamed(world: World, state: WorkloadState, text: string): Resolved | undefined {
  const parts = text.split('.');
  if (parts.length < 2) return undefined;
  const [name, ns] = parts as [string, string];
  const suffix = parts.slice(2).join('.');
  if (suffix && suffix !== 'svc' && suffix !== `svc.${world.options.domainSuffix}`) return undefined;
  const svc = state.service(serviceResourceName(ns, serviceHostname(ns, name, world.options.domainSuffix)));
  return svc ? { kind: 'service', service: svc, party: serviceParty(svc), byName: true } : undefined;
}

/** The source: a workload or an address (a Service is never the source of a connection). */
export function resolveSource(world: World, state: WorkloadState, text: string): Resolved {
  if (isIP(text)) {
    const r = byAddress(world, state, text);
    if (r.kind === 'service') throw new ExplainError(400, `${text} is the VIP of Service ${r.party.name}; a connection comes from a workload or an address`);
    return r;
  }
  const w = workloadNamed(world, state, text);
  if (w) return w;
  if (serviceNamed(world, state, text))
    throw new ExplainError(400, `"${text}" is a Service; the source of a connection is a workload (ns/name or pod) or an IP address`);
  throw new ExplainError(404, `no workload, pod or address "${text}" in the mesh (FROM is ns/name, a pod name, or an IP address)`);
}

/** TO[:PORT] -> host text and port (IPv6 as [addr]:port or a bare address). */
export function splitPort(text: string): { host: string; port?: number } {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new ExplainError(400, `"${text}": an IPv6 address with a port is written [address]:port`);
    const rest = text.slice(close + 1);
    if (rest && !/^:\d+$/.test(rest)) throw new ExplainError(400, `"${text}": expected [address]:port`);
    return { host: text.slice(1, close), ...(rest ? { port: checkPort(rest.slice(1), text) } : {}) };
  }
  if (isIP(text) === 6) return { host: text };
  const m = /^(.*):(\d+)$/.exec(text);
  return m ? { host: m[1]!, port: checkPort(m[2]!, text) } : { host: text };
}

function checkPort(p: string, text: string): number {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ExplainError(400, `"${text}": the port must be 1..65535`);
  return n;
}

/** The destination and its port (given, or the only one the Service or Workload declares). */
export function resolveDestination(world: World, state: WorkloadState, text: string, port: number | undefined): { to: Resolved; port: number } {
  const { host, port: inline } = splitPort(text);
  if (inline !== undefined && port !== undefined && inline !== port)
    throw new ExplainError(400, `"${text}" names port ${inline} but port ${port} was also given`);
  let to: Resolved | undefined;
  if (isIP(host)) to = byAddress(world, state, host);
  else to = serviceNamed(world, state, host) ?? workloadNamed(world, state, host);
  if (!to)
    throw new ExplainError(
      404,
      `no Service, workload, pod or address "${host}" in the mesh (TO is name.namespace for a Service, ns/name or a pod for a workload, or an IP address)`,
    );
  const chosen = inline ?? port;
  if (chosen !== undefined) return { to, port: chosen };
  const declared =
    to.kind === 'service'
      ? to.service.ports.map((p) => p.servicePort)
      : to.kind === 'workload'
        ? (world.snapshot.get('Workload', to.workload.name, to.workload.namespace)?.spec.ports ?? []).map((p) => p.port)
        : [];
  if (declared.length === 1) return { to, port: declared[0]! };
  const which = declared.length ? `it has ports ${declared.join(', ')}` : 'it declares no port';
  throw new ExplainError(400, `give the port as ${host}:PORT (or --port): ${which}`);
}
