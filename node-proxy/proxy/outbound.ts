// A captured outbound connection (15001): its original destination, the plan (plan.ts), then one
// executor for the plan:
//   - direct: plain TCP from the source pod's netns (outside the mesh, a peer not enrolled);
//   - tunnel: HBONE to the peer's 15008 (or a waypoint), dialled from inside the source pod's
//     netns, presenting the source workload's certificate and requiring the destination's;
//   - local: a workload this node proxy serves: no tunnel, handed to the inbound side (the
//     destination's policy, its netns) with the source's identity.
import { constants as h2 } from 'node:http2';
import type { Socket } from 'node:net';
import { formatAuthority } from '../../common/hbone/authority';
import type { OpenOptions } from '../../common/hbone/client';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { abortSide, type SpliceResult } from '../../common/hbone/splice';
import type { NativeStream, NativeStreamResult } from '../../native/hbone';
import type { NativeHboneClient } from '../../native/hbone-client';
import { resetFd, type AcceptedConnection } from '../../native/netns-accept';
import { rawSocket, type RawSocket } from '../../common/hbone/raw-socket';
import type { WorkloadCertificate } from '../../common/identity/manager';
import { forwardedFor } from '../../common/hbone/headers';
import { identityOf } from '../mesh/runtime';
import { cachedSourceBaggage, newTraceparent } from '../mesh/trace';
import type { Endpoint } from '../connections/table';
import type { EndpointPicker } from '../state/resolve';
import type { ResponseFlag } from '../telemetry/labels';
import type { ProxyContext } from './context';
import { socketOf, type CapturedWorkload } from './handlers';
import { serveLocal } from './inbound';
import { direct } from './passthrough';
import { planOutbound, type OutboundPlan } from './plan';
import { LiveCounter } from './counter';
import { errText } from './tracker';
import { reserveTunnelSendBuffer } from './tunnel-socket';

/**
 * A captured outbound connection (15001): its original destination — taken by the listener in the
 * addon, or here from `ctx.originals` when the listener had no map — the plan, the executor. A
 * connection without a recorded original destination (someone dialled 15001 directly) is reset.
 */
export function handleOutbound(ctx: ProxyContext, pick: EndpointPicker, wl: CapturedWorkload, c: AcceptedConnection): void {
  const client = c.client;
  const dst = c.originalTaken ? c.originalDestination : ctx.originals.take(wl.netnsCookie, client);
  if (!dst) {
    ctx.log.warn({ workload: wl.key, src: client }, 'captured connection has no recorded original destination (connected to 15001 directly?); closing it');
    resetFd(c.fd);
    return;
  }
  const mesh = ctx.mesh;
  const plan: OutboundPlan = mesh ? planOutbound(mesh, mesh.source.workload(wl.key), client, dst, pick) : { kind: 'direct', target: dst };
  execute(ctx, wl, c, client, dst, plan);
}

/** The captured socket as a net.Socket, for every path but the native engine's tunnel. */
function captured(c: AcceptedConnection): Socket {
  const s = socketOf(c);
  s.on('error', () => undefined); // errors before the splice owns the socket
  return s;
}

function execute(ctx: ProxyContext, wl: CapturedWorkload, c: AcceptedConnection, client: Endpoint, dst: Endpoint, plan: OutboundPlan): void {
  switch (plan.kind) {
    case 'refuse':
      ctx.log.info({ workload: wl.key, dst, reason: plan.reason }, 'refusing a connection the mesh cannot deliver');
      resetFd(c.fd);
      return;
    case 'direct':
      void direct(ctx, wl, 'outbound', captured(c), client, plan.target);
      return;
    case 'tunnel':
      void (ctx.mesh?.nativeHbone ? nativeTunnel(ctx, ctx.mesh.nativeHbone, wl, c.fd, dst, plan) : tunnel(ctx, wl, captured(c), dst, plan));
      return;
    case 'local':
      // spliced in the kernel without the sockmap fast path (the default): the bare fd, no net.Socket
      void serveLocal(ctx, wl, ctx.kernelSplice === true && !ctx.sameNodeFastPath ? rawSocket(c.fd) : captured(c), dst, plan);
      return;
  }
}

async function tunnel(ctx: ProxyContext, wl: CapturedWorkload, down: Socket, dst: Endpoint, plan: Extract<OutboundPlan, { kind: 'tunnel' }>): Promise<void> {
  const mesh = ctx.mesh!;
  const srcIp = plan.record.source.address;
  const authority = formatAuthority(plan.authority.address, plan.authority.port);
  down.pause();
  let t;
  try {
    const o = openOptions(ctx, plan, socketDial(ctx, wl));
    t = await mesh.hbone.start(o instanceof Promise ? await o : o);
  } catch (err) {
    notOpened(ctx, wl, dst, plan, err);
    down.resetAndDestroy();
    return;
  }
  const { stream, response } = t;
  if (down.destroyed) {
    abortSide(stream);
    return;
  }
  // The client's bytes go out right behind the CONNECT, without waiting for the answer (one round
  // trip less per connection); the destination holds them until its policy admitted the tunnel and
  // the app is connected, and drops them on a refusal. A refusal resets the client here, in the
  // 'response' event itself: the refused stream's end must not reach the client as a clean FIN.
  let refusal: { error: string; responseFlags: ResponseFlag } | undefined;
  stream.once('response', (headers: Record<string, unknown>) => {
    const status = Number(headers[h2.HTTP2_HEADER_STATUS]);
    if (status === 200) return;
    refusal = { error: `tunnel refused with ${status}`, responseFlags: status === 403 ? 'DENY' : 'CONNECT' };
    abortSide(down);
  });
  response.catch((err: unknown) => {
    refusal ??= { error: errText(err), responseFlags: 'CONNECT' };
    ctx.log.info(
      { workload: wl.key, dst, authority: plan.authority, status: err instanceof TunnelRefusedError ? err.status : undefined, err: errText(err) },
      'HBONE tunnel not opened; resetting the client',
    );
    abortSide(down);
  });
  ctx.tracker.splice(down, stream, {
    direction: 'outbound',
    workload: wl.key,
    source: { address: srcIp, port: plan.record.source.port },
    originalDestination: dst,
    details: {
      protocol: 'HBONE',
      sourceIdentity: plan.record.source.identity,
      destinationIdentity: plan.expected,
      authority,
      service: plan.record.service?.hostname,
    },
    records: [plan.record],
    // a tunnel that was never opened is counted as before (not as an opened connection reset)
    outcome: () => refusal,
  });
}

/**
 * The same tunnel on the native engine (NODEMESH_HBONE_ENGINE=native): the captured socket is handed
 * to the addon with its CONNECT; the books (table, telemetry) are kept here from its counts and its
 * end. A refusal resets the client in the engine; it is counted as a tunnel never opened.
 */
async function nativeTunnel(
  ctx: ProxyContext,
  native: NativeHboneClient,
  wl: CapturedWorkload,
  fd: number,
  dst: Endpoint,
  plan: Extract<OutboundPlan, { kind: 'tunnel' }>,
): Promise<void> {
  const srcIp = plan.record.source.address;
  const authority = formatAuthority(plan.authority.address, plan.authority.port);
  // the captured socket goes to the engine as it came from accept: no net.Socket is made for it
  const down = rawSocket(fd);
  let refusal: { error: string; responseFlags: ResponseFlag } | undefined;
  let last: NativeStreamResult | undefined;
  let stream: NativeStream | undefined;
  let done: ((r: SpliceResult) => void) | undefined;
  const finish = (r: NativeStreamResult): void => {
    const error = r.clean
      ? undefined
      : Object.assign(new Error(`the tunnel ended: ${r.reason || 'reset'}`), { code: /^E[A-Z]+$/.test(r.reason) ? r.reason : undefined });
    done?.({ bytesToUpstream: r.bytesOut, bytesToDownstream: r.bytesIn, clean: r.clean, error, durationMs: r.durationMs });
  };
  try {
    const pending = openOptions(ctx, plan, rawDial(ctx, wl));
    const o = pending instanceof Promise ? await pending : pending;
    stream = await native.tunnel(o, down, {
      response: (status) => {
        if (status === 200) return;
        refusal = { error: `tunnel refused with ${status}`, responseFlags: status === 403 ? 'DENY' : 'CONNECT' };
        ctx.log.info({ workload: wl.key, dst, authority: plan.authority, status }, 'HBONE tunnel not opened; resetting the client');
      },
      end: (r) => {
        last = r;
        if (done) finish(r);
      },
    });
  } catch (err) {
    notOpened(ctx, wl, dst, plan, err);
    resetFd(fd); // not handed over: still ours
    return;
  }
  const live = stream;
  const counter = new LiveCounter(
    () => last?.bytesOut ?? live.bytes()?.out ?? 0,
    () => last?.bytesIn ?? live.bytes()?.in ?? 0,
  );
  done = ctx.tracker.open(
    {
      direction: 'outbound',
      workload: wl.key,
      source: { address: srcIp, port: plan.record.source.port },
      originalDestination: dst,
      counter,
      details: {
        protocol: 'HBONE',
        engine: 'native',
        sourceIdentity: plan.record.source.identity,
        destinationIdentity: plan.expected,
        authority,
        service: plan.record.service?.hostname,
      },
      records: [plan.record],
      outcome: () => refusal,
    },
    counter,
  );
  if (last) finish(last);
}

/**
 * The tunnel as both engines open it: the source's certificate, the destination's identity, the
 * headers, the in-netns dialer (`dial`: a net.Socket for the node engine, a bare fd for the native
 * one, which sets its own socket options). At once (no promise to wait for) when the source's
 * certificate is at hand, as it is for every connection but the first of a workload.
 */
function openOptions<D>(ctx: ProxyContext, plan: Extract<OutboundPlan, { kind: 'tunnel' }>, dial: D): Opened<D> | Promise<Opened<D>> {
  const mesh = ctx.mesh!;
  const id = identityOf(plan.source, mesh.trustDomain);
  const cert = mesh.certs.current(id);
  return cert ? optionsWith(plan, cert, dial) : mesh.certs.get(id).then((c) => optionsWith(plan, c, dial));
}

type Opened<D> = Omit<OpenOptions, 'dial'> & { readonly dial: D };

function optionsWith<D>(plan: Extract<OutboundPlan, { kind: 'tunnel' }>, cert: WorkloadCertificate, dial: D): Opened<D> {
  const srcIp = plan.record.source.address;
  return {
    source: { certChain: cert.certChainPem, key: cert.privateKeyPem },
    trustBundle: cert.trustBundle,
    destination: formatAuthority(plan.hbone.address, plan.hbone.port),
    expectedIdentity: plan.expected,
    authority: formatAuthority(plan.authority.address, plan.authority.port),
    // the app's own address:port: the destination logs it (the tunnel's port is shared)
    headers: { forwarded: forwardedFor(srcIp, plan.record.source.port), traceparent: newTraceparent(), baggage: cachedSourceBaggage(plan.source) },
    dial,
    sourceAddress: srcIp,
  };
}

/** The HBONE connection's TCP socket, from inside the source pod's netns (node engine). */
const socketDial =
  (ctx: ProxyContext, wl: CapturedWorkload) =>
  async (host: string, port: number): Promise<Socket> =>
    reserveTunnelSendBuffer(await ctx.sockets.connect(wl.netnsPath, host, port), (msg, fields) => ctx.log.warn(fields, msg));

/** The same as a bare fd for the native engine (which sets O_NONBLOCK and TCP_NODELAY itself). */
const rawDial =
  (ctx: ProxyContext, wl: CapturedWorkload) =>
  async (host: string, port: number): Promise<RawSocket> =>
    reserveTunnelSendBuffer(await ctx.sockets.connectRaw(wl.netnsPath, host, port), (msg, fields) => ctx.log.warn(fields, msg));

/** No HBONE connection or stream could be had: counted, logged. */
function notOpened(ctx: ProxyContext, wl: CapturedWorkload, dst: Endpoint, plan: Extract<OutboundPlan, { kind: 'tunnel' }>, err: unknown): void {
  const refused = err instanceof TunnelRefusedError ? err.status : undefined;
  ctx.tracker.failed([plan.record], refused ? `tunnel refused with ${refused}` : errText(err), refused === 403 ? 'DENY' : 'CONNECT');
  ctx.log.info({ workload: wl.key, dst, authority: plan.authority, status: refused, err: errText(err) }, 'HBONE tunnel not opened; resetting the client');
}
