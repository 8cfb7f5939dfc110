// Connections for a local workload, all through one admission step (plan.ts `admit`: the
// destination's AuthorizationPolicy and PeerAuthentication) and one upstream step (the app dialled
// from inside its netns, spliced, tracked, kept under policy watch):
//   - HBONE on 15008 (its netns): the peer's chain and trust domain were verified by the HBONE
//     server; the authority must be one of this workload's addresses; denied -> 403;
//   - plaintext steered to 15006: STRICT refuses it, PERMISSIVE applies policy without identity;
//   - same node (from outbound.ts): the source's identity, no tunnel; denied -> reset, both
//     reporters count it; allowed -> spliced in the kernel (native/splice.ts) when available.
// In passthrough (lab) mode 15006 goes straight to the app.
import type { Socket } from 'node:net';
import { formatAuthority } from '../../common/hbone/authority';
import { isRawSocket, type RawSocket } from '../../common/hbone/raw-socket';
import { allow, deny, type Decision, type TunnelRequest } from '../../common/hbone/server';
import { cutUpstream, upstreamBytes } from '../../native/hbone-server';
import { resetFd } from '../../native/netns-accept';
import type { Endpoint } from '../connections/table';
import { streamSource } from '../mesh/forwarded';
import { ownsAddress } from '../mesh/runtime';
import { canonicalIp } from '../state/ip';
import type { ConnectionRecord } from '../telemetry/labels';
import type { ProxyContext } from './context';
import { NODE_PROXY_PORTS } from '../../common/contracts/ports';
import { local, peer, unmap, type CapturedWorkload } from './handlers';
import { direct } from './passthrough';
import { admit, type Admission, type OutboundPlan } from './plan';
import { LiveCounter } from './counter';
import { errText, type Tracked } from './tracker';
import { guardInbound, PLAINTEXT_INBOUND_LIMITS } from './inbound-limits';
import type { FastPathConnection, SameNodeFastPath } from '../../native/sockmap';

/** The HBONE server's handler for one local workload (looked up afresh per request). */
export async function handleTunnel(ctx: ProxyContext, key: string, req: TunnelRequest): Promise<Decision> {
  const mesh = ctx.mesh;
  const w = mesh?.source.workload(key);
  if (!mesh || !w) return deny(503, `workload ${key} is no longer served by this node proxy`);
  const ip = canonicalIp(req.target.host);
  if (!ip || !ownsAddress(w, ip)) return deny(400, `the authority ${req.authority} is not an address of ${key}`);
  if (NODE_PROXY_PORTS.has(req.target.port)) return deny(400, `the authority ${req.authority} names a node proxy port`);
  const srcIp = unmap(req.remoteAddress.address);
  const tunnelPeer = { address: srcIp, port: req.remoteAddress.port };
  // the app's own address:port (from `forwarded`, when it is the peer's address), not the tunnel's
  const source = streamSource(tunnelPeer, req.headers.forwarded);
  const target = { address: ip, port: req.target.port };
  const a = admit(mesh, {
    destination: w,
    target,
    source: { workload: mesh.state.workloadByIp(srcIp), identity: req.peerSpiffeId, ...source },
    sourceIp: srcIp,
    mtls: true,
    tunnelPeer,
  });
  if (!a.allowed) {
    ctx.tracker.denied(a.record, a.verdict);
    return deny(403, a.verdict.reason);
  }
  // errno errors -> 503. The native engine takes the app's socket as a bare fd (no net.Socket
  // made only to be taken apart: docs/node-proxy.md, "Connection set-up").
  const netns = w.runtime?.netns ?? '';
  const up: Socket | RawSocket = mesh.nativeHbone ? await ctx.sockets.connectRaw(netns, ip, target.port) : await ctx.sockets.connect(netns, ip, target.port);
  // bytes "sent" by the client are those written to the app, and the reverse (counted by the
  // native engine once the upstream moved there: NODEMESH_HBONE_ENGINE=native)
  const counter = new LiveCounter(
    () => upstreamBytes(up)?.toUpstream ?? (isRawSocket(up) ? 0 : up.bytesWritten),
    () => upstreamBytes(up)?.toDownstream ?? (isRawSocket(up) ? 0 : up.bytesRead),
  );
  const done = ctx.tracker.open(
    {
      direction: 'inbound',
      workload: key,
      source,
      originalDestination: target,
      details: {
        protocol: 'HBONE',
        tunnelPeer: formatAuthority(tunnelPeer.address, tunnelPeer.port),
        peerIdentity: req.peerSpiffeId,
        policy: a.verdict.policy,
        traceparent: req.headers.traceparent,
      },
      records: [a.record],
      watch: {
        destinationUid: w.uid,
        connection: a.connection,
        describe: { workload: key, peer: req.peerSpiffeId, dst: formatAuthority(ip, target.port) },
        cut: () => cutUpstream(up),
      },
    },
    counter,
  );
  return allow(up, done);
}

/**
 * Plaintext steered to 15006 (from outside the mesh, or any client in passthrough mode), under
 * its connect and idle timeouts (inbound-limits.ts).
 */
export function handlePlaintextInbound(ctx: ProxyContext, wl: CapturedWorkload, down: Socket): void {
  down.on('error', () => undefined);
  const guard = guardInbound(down, ctx.inboundLimits ?? PLAINTEXT_INBOUND_LIMITS, (kind) => {
    ctx.listenerTimeouts?.inc({ listener: 'inbound', kind });
    ctx.log.info({ workload: wl.key, src: peer(down), kind }, 'inbound connection timed out; closing it');
  });
  const dst = local(down);
  const client = peer(down);
  if (NODE_PROXY_PORTS.has(dst.port)) {
    // Someone dialled podIP:15006 (or another proxy port) directly: forwarding it would loop.
    ctx.log.info({ workload: wl.key, src: client, dst }, 'inbound connection to a proxy port; refusing it');
    down.resetAndDestroy();
    return;
  }
  const mesh = ctx.mesh;
  const w = mesh?.source.workload(wl.key);
  if (!mesh || !w) {
    void direct(ctx, wl, 'inbound', down, client, dst, guard.connected);
    return;
  }
  const a = admit(mesh, {
    destination: w,
    target: dst,
    source: { workload: mesh.state.workloadByIp(client.address), ...client },
    sourceIp: client.address,
    mtls: false,
  });
  if (!a.allowed) {
    ctx.tracker.denied(a.record, a.verdict);
    down.resetAndDestroy();
    return;
  }
  void upstream(
    ctx,
    wl,
    wl.netnsPath,
    down,
    a,
    [a.record],
    false,
    {
      direction: 'inbound',
      workload: wl.key,
      source: client,
      originalDestination: dst,
      details: { protocol: 'TCP', policy: a.verdict.policy },
      records: [a.record],
      watch: {
        destinationUid: w.uid,
        connection: a.connection,
        describe: { workload: wl.key, src: client.address, dst: formatAuthority(dst.address, dst.port) },
        cut: () => down.resetAndDestroy(),
      },
    },
    guard.connected,
  );
}

/**
 * Same node: the proxy holds both identities, so there is no TLS. The destination's policy is
 * applied here with the source's identity (the same `admit` as HBONE); the app is dialled from
 * inside the destination's netns (it sees the connection come from its own pod address). Both
 * reporters are counted.
 */
export async function serveLocal(
  ctx: ProxyContext,
  wl: CapturedWorkload,
  down: Socket | RawSocket,
  dst: Endpoint,
  plan: Extract<OutboundPlan, { kind: 'local' }>,
): Promise<void> {
  const mesh = ctx.mesh!;
  const src = plan.record.source;
  const a = admit(mesh, {
    destination: plan.destination,
    target: plan.target,
    source: src,
    sourceIp: src.address,
    mtls: true,
    sameNode: true,
    service: plan.record.service,
  });
  if (!a.allowed) {
    ctx.tracker.denied(a.record, a.verdict);
    ctx.tracker.failed([plan.record], 'denied by the destination policy', 'DENY');
    reset(down);
    return;
  }
  const endpoint = formatAuthority(plan.target.address, plan.target.port);
  const tracked: Tracked = {
    direction: 'outbound',
    workload: wl.key,
    source: { address: src.address, port: src.port },
    originalDestination: dst,
    details: {
      protocol: 'same-node',
      sourceIdentity: src.identity,
      destinationIdentity: plan.record.destination.identity,
      endpoint,
      service: plan.record.service?.hostname,
    },
    records: [plan.record, a.record],
    watch: {
      destinationUid: plan.destination.uid,
      connection: a.connection,
      describe: { workload: wl.key, src: src.identity, dst: endpoint },
      // a bare fd is only ever spliced in the kernel, whose cut takes this one's place
      cut: () => {
        if (!isRawSocket(down)) down.resetAndDestroy();
      },
    },
  };
  const netns = plan.destination.runtime?.netns ?? '';
  if (isRawSocket(down)) await upstreamInKernel(ctx, wl, netns, down, a, [plan.record], tracked);
  else await upstream(ctx, wl, netns, down, a, [plan.record], ctx.kernelSplice === true ? (ctx.sameNodeFastPath ?? true) : false, tracked);
}

function reset(s: Socket | RawSocket): void {
  if (isRawSocket(s)) resetFd(s.fd);
  else s.resetAndDestroy();
}

/**
 * The same for a bare captured fd (outbound.ts hands one over when the kernel splice carries
 * same-node bytes and the sockmap fast path is off): the app is dialled as a bare fd too, and both
 * go to the kernel splice as they are: no net.Socket, libuv handle, epoll registration, dup(2) or
 * close(2) of a take-over on either side (docs/node-proxy.md, "Connection set-up").
 */
async function upstreamInKernel(
  ctx: ProxyContext,
  wl: CapturedWorkload,
  netns: string,
  down: RawSocket,
  a: Admission,
  onFailure: readonly ConnectionRecord[],
  tracked: Tracked,
): Promise<void> {
  let up: RawSocket;
  try {
    up = await ctx.sockets.connectRaw(netns, a.connection.destinationIp, a.connection.destinationPort, { noDelay: true });
  } catch (err) {
    ctx.tracker.failed(onFailure, errText(err));
    ctx.log.info(
      { workload: wl.key, dst: { address: a.connection.destinationIp, port: a.connection.destinationPort }, err: errText(err) },
      'upstream connect failed; resetting the client',
    );
    resetFd(down.fd);
    return;
  }
  // a client that left meanwhile is seen by the splice (EOF or reset), as after any hand-over
  ctx.tracker.spliceInKernel(down, up, tracked);
}

/**
 * Dials the admitted connection's app from inside `netns` and splices it (in the kernel when
 * `inKernel`; a same-node connection's apps talk socket to socket when it is the fast path); a
 * failed dial counts `onFailure`; `connected` is told when the app's side is there.
 */
async function upstream(
  ctx: ProxyContext,
  wl: CapturedWorkload,
  netns: string,
  down: Socket,
  a: Admission,
  onFailure: readonly ConnectionRecord[],
  inKernel: boolean | SameNodeFastPath,
  tracked: Tracked,
  connected?: () => void,
): Promise<void> {
  down.pause();
  let up: Socket;
  try {
    up = await ctx.sockets.connect(netns, a.connection.destinationIp, a.connection.destinationPort);
  } catch (err) {
    ctx.tracker.failed(onFailure, errText(err));
    ctx.log.info(
      { workload: wl.key, dst: { address: a.connection.destinationIp, port: a.connection.destinationPort }, err: errText(err) },
      'upstream connect failed; resetting the client',
    );
    down.resetAndDestroy();
    return;
  }
  if (down.destroyed) {
    up.destroy();
    return;
  }
  connected?.();
  if (inKernel) ctx.tracker.spliceInKernel(down, up, tracked, inKernel === true ? undefined : armFastPath(ctx, inKernel, wl, down, up));
  else ctx.tracker.splice(down, up, tracked);
}

/** Arms the same-node fast path for an admitted, connected pair; a failure only costs the fast path. */
function armFastPath(ctx: ProxyContext, fp: SameNodeFastPath, wl: CapturedWorkload, down: Socket, up: Socket): FastPathConnection | undefined {
  try {
    return fp.arm(wl.netnsCookie, down, up);
  } catch (err) {
    ctx.log.warn({ workload: wl.key, err: errText(err) }, 'same-node fast path not armed; the connection is spliced');
    return undefined;
  }
}
