// One captured outbound connection in control-plane mode: resolve where it goes, then
//   - outside the mesh (or a peer that is not enrolled): plain TCP, as passthrough does;
//   - a mesh workload on another node: HBONE to endpointIP:15008, dialled from inside the source
//     pod's netns, presenting the source workload's certificate and requiring the destination's;
//   - a mesh workload on this node: no tunnel (the proxy holds both identities), the
//     destination's policy applied here, then the app dialled from inside the destination's netns.
import type { Socket } from 'node:net';
import { isIPv4 } from 'node:net';
import type { GatewayAddress, Service, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { formatAuthority } from '../../common/hbone/authority';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { forwardedFor } from '../../common/hbone/headers';
import { abortSide, splice } from '../../common/hbone/splice';
import { formatSpiffeId } from '../../common/identity/spiffe';
import type { Endpoint } from '../connections/table';
import { evaluate } from '../policy/evaluate';
import { waypointIdentities } from '../policy/waypoint';
import { forward, peer, type CapturedWorkload } from '../proxy/handlers';
import { resolve, type EndpointPicker, type WaypointTarget } from '../state/resolve';
import { ipFromBytes } from '../state/ip';
import type { ConnectionRecord } from '../telemetry/labels';
import { contextFor, spiffeOf, type MeshContext } from './context';
import { identityOf } from './runtime';
import { newTraceparent, sourceBaggage } from './trace';
import { HBONE_PORT } from '../../common/contracts/ports';

const errText = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/** The source workload's address in the family of `like` (what the peer sees as the client). */
function sourceIp(src: Workload, like: string): string {
  const all = src.addresses.map(ipFromBytes);
  return all.find((a) => isIPv4(a) === isIPv4(like)) ?? all[0] ?? '';
}

export function handleMeshOutbound(ctx: MeshContext, pick: EndpointPicker, wl: CapturedWorkload, down: Socket): void {
  const deps = ctx.deps();
  down.on('error', () => undefined);
  const client = peer(down);
  const dst = deps.originals.take(wl.netnsCookie, client);
  if (!dst) {
    ctx.log.warn({ workload: wl.key, src: client }, 'captured connection has no recorded original destination (connected to 15001 directly?); closing it');
    down.resetAndDestroy();
    return;
  }
  const src = ctx.source.workload(wl.key);
  if (!src) {
    // Enrolled but no longer in the workload API (being unenrolled): keep the old behaviour.
    void forward(deps, wl, 'outbound', down, client, dst);
    return;
  }
  const decision = resolve(ctx.state, { ip: dst.address, port: dst.port, network: src.network }, src, pick);
  switch (decision.kind) {
    case 'passthrough':
      void forward(deps, wl, 'outbound', down, client, dst);
      return;
    case 'unreachable':
      ctx.log.info({ workload: wl.key, dst, reason: decision.reason }, 'refusing a connection the mesh cannot deliver');
      down.resetAndDestroy();
      return;
  }
  const service = decision.kind === 'service' ? decision.service : undefined;
  if (decision.waypoint) {
    const gw = decision.kind === 'service' ? decision.service.waypoint : decision.workload.waypoint;
    void viaWaypoint(ctx, wl, down, src, client.port, dst, decision.waypoint, gw, service, decision.kind === 'service' ? undefined : decision.address, decision.targetPort);
    return;
  }
  const endpoint = decision.kind === 'service' ? decision.endpoint : decision.workload;
  const address = decision.address;
  if (!endpoint || !address) {
    down.resetAndDestroy();
    return;
  }
  const target: Endpoint = { address, port: decision.targetPort };
  if (decision.protocol === 'tcp') {
    void forward(deps, wl, 'outbound', down, client, target);
    return;
  }
  const srcIp = sourceIp(src, address);
  if (endpoint.node === ctx.node && ctx.servesLocally(endpoint)) {
    void sameNode(ctx, wl, down, src, srcIp, endpoint, target, service, dst);
    return;
  }
  void tunnel(ctx, wl, down, src, srcIp, dst, {
    hbone: { address, port: HBONE_PORT },
    authority: target,
    expected: spiffeOf(ctx, endpoint),
    record: {
      reporter: 'source',
      source: { workload: src, identity: spiffeOf(ctx, src), address: srcIp, port: client.port },
      destination: { workload: endpoint, identity: spiffeOf(ctx, endpoint), address, port: target.port },
      service,
      mtls: true,
    },
  });
}

interface TunnelPlan {
  readonly hbone: Endpoint;
  readonly authority: Endpoint;
  readonly expected: string;
  readonly record: ConnectionRecord;
}

async function tunnel(ctx: MeshContext, wl: CapturedWorkload, down: Socket, src: Workload, srcIp: string, dst: Endpoint, plan: TunnelPlan): Promise<void> {
  const deps = ctx.deps();
  down.pause();
  let stream;
  try {
    const cert = await ctx.certs.get(identityOf(src, ctx.trustDomain));
    stream = await ctx.hbone.open({
      source: { certChain: cert.certChainPem, key: cert.privateKeyPem },
      trustBundle: cert.trustBundle,
      destination: formatAuthority(plan.hbone.address, plan.hbone.port),
      expectedIdentity: plan.expected,
      authority: formatAuthority(plan.authority.address, plan.authority.port),
      // the app's own address:port: the destination logs it (the tunnel's port is shared)
      headers: { forwarded: forwardedFor(srcIp, plan.record.source.port), traceparent: newTraceparent(), baggage: sourceBaggage(src) },
      dial: (host, port) => deps.sockets.connect(wl.netnsPath, host, port),
      sourceAddress: srcIp,
    });
  } catch (err) {
    const refused = err instanceof TunnelRefusedError ? err.status : undefined;
    ctx.telemetry.open(plan.record).close({ requestBytes: 0, responseBytes: 0, error: refused ? `tunnel refused with ${refused}` : errText(err), responseFlags: refused === 403 ? 'DENY' : 'CONNECT' });
    ctx.log.info({ workload: wl.key, dst, authority: plan.authority, status: refused, err: errText(err) }, 'HBONE tunnel not opened; resetting the client');
    down.resetAndDestroy();
    return;
  }
  if (down.destroyed) {
    abortSide(stream);
    return;
  }
  const handle = ctx.telemetry.open(plan.record);
  const id = deps.table.add({
    direction: 'outbound',
    workload: wl.key,
    source: { address: srcIp, port: plan.record.source.port },
    originalDestination: dst,
    downstream: down,
    details: { protocol: 'HBONE', sourceIdentity: plan.record.source.identity, destinationIdentity: plan.expected, authority: formatAuthority(plan.authority.address, plan.authority.port), service: plan.record.service?.hostname },
  });
  splice(down, stream, (r) => {
    const error = r.clean ? undefined : r.error ? errText(r.error) : 'reset';
    handle.close({ requestBytes: r.bytesToUpstream, responseBytes: r.bytesToDownstream, error });
    deps.table.close(id, error);
  });
  down.resume();
}

async function viaWaypoint(
  ctx: MeshContext,
  wl: CapturedWorkload,
  down: Socket,
  src: Workload,
  srcPort: number,
  dst: Endpoint,
  waypoint: WaypointTarget,
  gw: GatewayAddress | undefined,
  service: Service | undefined,
  workloadAddress: string | undefined,
  targetPort: number,
): Promise<void> {
  const wp = waypoint.workload ?? ctx.state.workloadByIp(waypoint.address);
  // The waypoint instance's own identity when it is a known workload; else the identity a
  // waypoint has by convention (service account = Gateway name), as the destination expects it.
  const expected = wp ? spiffeOf(ctx, wp) : gw ? waypointIdentities(ctx.state, gw, ctx.trustDomain)[0] : undefined;
  if (!expected) {
    ctx.log.info({ workload: wl.key, dst, waypoint: waypoint.address }, 'the waypoint is not a known workload and has no Gateway name (its identity cannot be checked); resetting');
    down.resetAndDestroy();
    return;
  }
  const srcIp = sourceIp(src, waypoint.address);
  // A service waypoint is asked for the VIP the client dialled; a workload waypoint for the workload.
  const authority: Endpoint = waypoint.scope === 'service' ? dst : { address: workloadAddress ?? dst.address, port: targetPort };
  await tunnel(ctx, wl, down, src, srcIp, dst, {
    hbone: { address: waypoint.address, port: waypoint.port },
    authority,
    expected,
    record: {
      reporter: 'source',
      source: { workload: src, identity: spiffeOf(ctx, src), address: srcIp, port: srcPort },
      destination: { workload: wp, identity: expected, address: waypoint.address, port: waypoint.port },
      service,
      mtls: true,
    },
  });
}

/**
 * Same node: the proxy holds both identities, so there is no TLS. The destination's policy is
 * evaluated here with the source's identity; the app is dialled from inside the destination's
 * netns (it sees the connection come from its own pod address). Both reporters are counted.
 */
async function sameNode(
  ctx: MeshContext,
  wl: CapturedWorkload,
  down: Socket,
  src: Workload,
  srcIp: string,
  endpoint: Workload,
  target: Endpoint,
  service: Service | undefined,
  dst: Endpoint,
): Promise<void> {
  const deps = ctx.deps();
  const client = peer(down);
  const srcId = formatSpiffeId(identityOf(src, ctx.trustDomain));
  const dstId = spiffeOf(ctx, endpoint);
  const base = {
    source: { workload: src, identity: srcId, address: srcIp, port: client.port },
    destination: { workload: endpoint, identity: dstId, address: target.address, port: target.port },
    service,
    mtls: true,
    sameNode: true,
  };
  const connection = { sourceIdentity: srcId, sourceIp: srcIp, destinationIp: target.address, destinationPort: target.port };
  const verdict = evaluate(connection, contextFor(ctx, endpoint, target.port));
  if (!verdict.allowed) {
    ctx.telemetry.denied({ ...base, reporter: 'destination' }, verdict);
    ctx.telemetry.open({ ...base, reporter: 'source' }).close({ requestBytes: 0, responseBytes: 0, error: 'denied by the destination policy', responseFlags: 'DENY' });
    down.resetAndDestroy();
    return;
  }
  const netns = endpoint.runtime?.netns ?? '';
  down.pause();
  let up: Socket;
  try {
    up = await deps.sockets.connect(netns, target.address, target.port);
  } catch (err) {
    ctx.telemetry.open({ ...base, reporter: 'source' }).close({ requestBytes: 0, responseBytes: 0, error: errText(err) });
    ctx.log.info({ workload: wl.key, dst: target, err: errText(err) }, 'same-node upstream connect failed; resetting the client');
    down.resetAndDestroy();
    return;
  }
  if (down.destroyed) {
    up.destroy();
    return;
  }
  const srcHandle = ctx.telemetry.open({ ...base, reporter: 'source' });
  const dstHandle = ctx.telemetry.open({ ...base, reporter: 'destination' });
  const id = deps.table.add({
    direction: 'outbound',
    workload: wl.key,
    source: { address: srcIp, port: client.port },
    originalDestination: dst,
    downstream: down,
    details: { protocol: 'same-node', sourceIdentity: srcId, destinationIdentity: dstId, endpoint: formatAuthority(target.address, target.port), service: service?.hostname },
  });
  const forget = ctx.guard.add(endpoint.uid, connection, { workload: wl.key, src: srcId, dst: formatAuthority(target.address, target.port) }, () => down.resetAndDestroy());
  splice(down, up, (r) => {
    forget();
    const error = r.clean ? undefined : r.error ? errText(r.error) : 'reset';
    const outcome = { requestBytes: r.bytesToUpstream, responseBytes: r.bytesToDownstream, error };
    srcHandle.close(outcome);
    dstHandle.close(outcome);
    deps.table.close(id, error);
  });
  down.resume();
}
