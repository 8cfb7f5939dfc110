// Connections arriving at a local enrolled workload, in control-plane mode:
//   - HBONE on 15008 (its netns): the peer's chain and trust domain were verified by the HBONE
//     server; here the authority must be one of this workload's addresses, then AuthorizationPolicy
//     is evaluated with the peer's SPIFFE ID; allowed -> the app is dialled from inside the netns
//     and spliced; denied -> 403 (counted, logged).
//   - plaintext steered to 15006: PeerAuthentication STRICT refuses it (reset, counted);
//     PERMISSIVE applies AuthorizationPolicy without an identity.
import type { Socket } from 'node:net';
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { formatAuthority } from '../../common/hbone/authority';
import { allow, deny, type Decision, type TunnelRequest } from '../../common/hbone/server';
import { abortSide, splice } from '../../common/hbone/splice';
import { evaluate } from '../policy/evaluate';
import type { PolicyConnection } from '../policy/model';
import { forward, local, peer, unmap, type CapturedWorkload } from '../proxy/handlers';
import { canonicalIp } from '../state/ip';
import type { ConnectionRecord } from '../telemetry/labels';
import { contextFor, spiffeOf, type MeshContext } from './context';
import { streamSource } from './forwarded';
import { ownsAddress } from './runtime';
import { NODE_PROXY_PORTS } from '../../common/contracts/ports';

const errText = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/** The HBONE server's handler for one local workload (looked up afresh per request). */
export async function handleTunnel(ctx: MeshContext, key: string, req: TunnelRequest): Promise<Decision> {
  const deps = ctx.deps();
  const w = ctx.source.workload(key);
  if (!w) return deny(503, `workload ${key} is no longer served by this node proxy`);
  const ip = canonicalIp(req.target.host);
  if (!ip || !ownsAddress(w, ip)) return deny(400, `the authority ${req.authority} is not an address of ${key}`);
  if (NODE_PROXY_PORTS.has(req.target.port)) return deny(400, `the authority ${req.authority} names a node proxy port`);
  const srcIp = unmap(req.remoteAddress.address);
  const srcWorkload = ctx.state.workloadByIp(srcIp);
  const tunnelPeer = { address: srcIp, port: req.remoteAddress.port };
  // the app's own address:port (from `forwarded`, when it is the peer's address), not the tunnel's
  const source = streamSource(tunnelPeer, req.headers.forwarded);
  const record: ConnectionRecord = {
    reporter: 'destination',
    source: { workload: srcWorkload, identity: req.peerSpiffeId, ...source },
    destination: { workload: w, identity: spiffeOf(ctx, w), address: ip, port: req.target.port },
    mtls: true,
    tunnelPeer,
  };
  const connection: PolicyConnection = { sourceIdentity: req.peerSpiffeId, sourceIp: srcIp, destinationIp: ip, destinationPort: req.target.port };
  const verdict = evaluate(connection, contextFor(ctx, w, req.target.port));
  if (!verdict.allowed) {
    ctx.telemetry.denied(record, verdict);
    return deny(403, verdict.reason);
  }
  const up = await deps.sockets.connect(w.runtime?.netns ?? '', ip, req.target.port); // errno errors -> 503
  const handle = ctx.telemetry.open(record);
  // bytes "sent" by the client are those written to the app, and the reverse.
  const counter = { get bytesRead() { return up.bytesWritten; }, get bytesWritten() { return up.bytesRead; } };
  const id = deps.table.add({
    direction: 'inbound',
    workload: key,
    source,
    originalDestination: { address: ip, port: req.target.port },
    downstream: counter,
    details: { protocol: 'HBONE', tunnelPeer: formatAuthority(tunnelPeer.address, tunnelPeer.port), peerIdentity: req.peerSpiffeId, policy: verdict.policy, traceparent: req.headers.traceparent },
  });
  const forget = ctx.guard.add(w.uid, connection, { workload: key, peer: req.peerSpiffeId, dst: formatAuthority(ip, req.target.port) }, () => abortSide(up));
  return allow(up, (r) => {
    forget();
    const error = r.clean ? undefined : r.error ? errText(r.error) : 'reset';
    handle.close({ requestBytes: r.bytesToUpstream, responseBytes: r.bytesToDownstream, error });
    deps.table.close(id, error);
  });
}

/** Plaintext from outside the mesh, steered to 15006. */
export function handlePlaintextInbound(ctx: MeshContext, wl: CapturedWorkload, down: Socket): void {
  const deps = ctx.deps();
  down.on('error', () => undefined);
  const dst = local(down);
  const client = peer(down);
  if (NODE_PROXY_PORTS.has(dst.port)) {
    ctx.log.info({ workload: wl.key, src: client, dst }, 'inbound connection to a proxy port; refusing it');
    down.resetAndDestroy();
    return;
  }
  const w = ctx.source.workload(wl.key);
  if (!w) {
    void forward(deps, wl, 'inbound', down, client, dst);
    return;
  }
  const record: ConnectionRecord = {
    reporter: 'destination',
    source: { workload: ctx.state.workloadByIp(client.address), address: client.address, port: client.port },
    destination: { workload: w, identity: spiffeOf(ctx, w), address: dst.address, port: dst.port },
    mtls: false,
  };
  const connection: PolicyConnection = { sourceIp: client.address, destinationIp: dst.address, destinationPort: dst.port };
  const verdict = evaluate(connection, contextFor(ctx, w, dst.port));
  if (!verdict.allowed) {
    ctx.telemetry.denied(record, verdict);
    down.resetAndDestroy();
    return;
  }
  void plaintextUpstream(ctx, wl, w, down, record, connection, verdict.policy);
}

async function plaintextUpstream(ctx: MeshContext, wl: CapturedWorkload, w: Workload, down: Socket, record: ConnectionRecord, connection: PolicyConnection, policy?: string): Promise<void> {
  const deps = ctx.deps();
  down.pause();
  let up: Socket;
  try {
    up = await deps.sockets.connect(wl.netnsPath, connection.destinationIp, connection.destinationPort);
  } catch (err) {
    ctx.telemetry.open(record).close({ requestBytes: 0, responseBytes: 0, error: errText(err) });
    down.resetAndDestroy();
    return;
  }
  if (down.destroyed) {
    up.destroy();
    return;
  }
  const handle = ctx.telemetry.open(record);
  const id = deps.table.add({
    direction: 'inbound',
    workload: wl.key,
    source: { address: connection.sourceIp, port: record.source.port },
    originalDestination: { address: connection.destinationIp, port: connection.destinationPort },
    downstream: down,
    details: { protocol: 'TCP', policy },
  });
  const forget = ctx.guard.add(w.uid, connection, { workload: wl.key, src: connection.sourceIp, dst: formatAuthority(connection.destinationIp, connection.destinationPort) }, () => down.resetAndDestroy());
  splice(down, up, (r) => {
    forget();
    const error = r.clean ? undefined : r.error ? errText(r.error) : 'reset';
    handle.close({ requestBytes: r.bytesToUpstream, responseBytes: r.bytesToDownstream, error });
    deps.table.close(id, error);
  });
  down.resume();
}
