// The same-node fast path (bpf/sk_msg.c, bpf/include/fastpath.h): once the destination's policy
// admitted a same-node connection and the node proxy connected the app, `arm()` writes a permit
// for each direction and from then on the client app's sends go straight into the server app's
// socket (and back) in the kernel, skipping the node proxy's two sockets and the second TCP
// connection. The node proxy keeps splicing its own two sockets for whatever still takes that way
// (bytes sent before the permit, FIN, RST), so half-close, resets and a policy cut (reset both of
// its sockets: both apps get a RST) behave as before.
//
// Loaded from bpf/build/sk_msg.o with the node's pin root after capture.o (it reuses capture's
// pinned maps); needs bpf_get_netns_cookie in sk_msg programs (Linux 5.15). Where the kernel
// refuses it, `loadFastPath` says why and the node proxy splices as before.
import { join } from 'node:path';
import { bpfObjectDir } from '../common/paths';
import { BpfMap, UpdateFlags } from './map';
import { BpfObject } from './object';
import {
  decodeFastPathPermit,
  decodeU64,
  encodeFastPathConfig,
  encodeFastPathKey,
  encodeFastPathPermit,
  encodeIpKey,
  FastPathFlags,
  type FastPathKey,
} from './layout';

export const FAST_PATH_OBJECT = join(bpfObjectDir, 'sk_msg.o');
export const FAST_PATH_MAPS = ['nm_fp_socks', 'nm_fp_permits', 'nm_fp_config'] as const;

/** What `arm` needs of each of the node proxy's two sockets. */
export interface SocketEnds {
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
}

/** One armed connection. */
export interface FastPathConnection {
  /** Which directions run in the kernel: the client's sends, the server's sends. */
  readonly toServer: boolean;
  readonly toClient: boolean;
  /** Bytes redirected so far each way. */
  bytes(): { toServer: number; toClient: number };
  /** Removes both permits (idempotent) and returns the final counts. */
  release(): { toServer: number; toClient: number };
}

function ends(s: SocketEnds): { local: { address: string; port: number }; remote: { address: string; port: number } } | undefined {
  if (!s.localAddress || !s.remoteAddress || !s.localPort || !s.remotePort) return undefined;
  return { local: { address: s.localAddress, port: s.localPort }, remote: { address: s.remoteAddress, port: s.remotePort } };
}

export class SameNodeFastPath {
  private constructor(
    private readonly permits: BpfMap,
    private readonly config: BpfMap,
    private readonly workloadIps: BpfMap,
    private readonly socks: BpfMap,
  ) {}

  /**
   * Loads sk_msg.o with `pinRoot` (capture's maps must be pinned there already), attaches it to
   * nm_fp_socks and turns the fast path on (sockops starts adding sockets). Throws with the
   * kernel's reason when it cannot.
   */
  static load(pinRoot: string, objectPath = FAST_PATH_OBJECT): SameNodeFastPath {
    const obj = BpfObject.open(objectPath, { pinRoot });
    const opened: BpfMap[] = [];
    try {
      const prog = obj.program('nm_sk_msg');
      const socks = obj.map('nm_fp_socks');
      opened.push(socks);
      const permits = obj.map('nm_fp_permits');
      opened.push(permits);
      const config = obj.map('nm_fp_config');
      opened.push(config);
      const ips = obj.map('nm_workload_ips');
      opened.push(ips);
      try {
        socks.attachProgram(prog.fd, 'sk_msg_verdict');
      } finally {
        prog.close();
      }
      const fp = new SameNodeFastPath(permits, config, ips, socks);
      fp.setEnabled(true);
      return fp;
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    } finally {
      obj.close();
    }
  }

  /** On: sockops adds new app sockets to the socket map. Off: it adds none (open ones keep going). */
  setEnabled(on: boolean): void {
    this.config.update(Buffer.alloc(4), encodeFastPathConfig(on));
  }

  /**
   * Arms the connection whose client app is in netns `clientNetns` and reached the node proxy on
   * `proxyClientSide`, and whose server app the node proxy reached with `proxyServerSide` (from the
   * server's own address, in its netns). A direction whose sender already sent a byte through the
   * node proxy is not armed (sk_msg.c left a tombstone): it stays on the splice for good. Undefined
   * when neither direction could be armed.
   */
  arm(clientNetns: bigint, proxyClientSide: SocketEnds, proxyServerSide: SocketEnds): FastPathConnection | undefined {
    const c = ends(proxyClientSide);
    const s = ends(proxyServerSide);
    if (!c || !s) return undefined;
    const serverNetnsValue = this.workloadIps.lookup(encodeIpKey(s.remote.address));
    if (!serverNetnsValue) return undefined;
    // Each app socket as it sees itself: the proxy's remote end is the app's local one.
    const client: FastPathKey = { netnsCookie: clientNetns, local: c.remote, remote: c.local };
    const server: FastPathKey = { netnsCookie: decodeU64(serverNetnsValue), local: s.remote, remote: s.local };
    const clientKey = encodeFastPathKey(client);
    const serverKey = encodeFastPathKey(server);
    const toServer = this.permit(clientKey, server);
    const toClient = this.permit(serverKey, client);
    if (!toServer && !toClient) return undefined;
    let released: { toServer: number; toClient: number } | undefined;
    const read = (key: Buffer, armed: boolean): number => {
      if (!armed) return 0;
      const v = this.permits.lookup(key);
      return v ? Number(decodeFastPathPermit(v).bytes) : 0;
    };
    const bytes = () => released ?? { toServer: read(clientKey, toServer), toClient: read(serverKey, toClient) };
    return {
      toServer,
      toClient,
      bytes,
      release: () => {
        if (released) return released;
        const last = bytes();
        released = last;
        if (toServer) this.permits.delete(clientKey);
        if (toClient) this.permits.delete(serverKey);
        return last;
      },
    };
  }

  /** Number of app sockets in the socket map and of permits/tombstones (for tests and /stats). */
  counts(): { sockets: number; permits: number; redirecting: number } {
    let sockets = 0;
    for (const _ of this.socks.keys()) sockets++;
    let permits = 0;
    let redirecting = 0;
    for (const [, v] of this.permits.entries()) {
      permits++;
      if (decodeFastPathPermit(v).flags & FastPathFlags.REDIRECT) redirecting++;
    }
    return { sockets, permits, redirecting };
  }

  close(): void {
    for (const m of [this.permits, this.config, this.workloadIps, this.socks]) m.close();
  }

  private permit(senderKey: Buffer, peer: FastPathKey): boolean {
    try {
      this.permits.update(senderKey, encodeFastPathPermit({ peer, bytes: 0n, flags: FastPathFlags.REDIRECT }), UpdateFlags.NOEXIST);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  }
}

/** How same-node bytes move (`NODEMESH_SAME_NODE_SPLICE`). */
export type SameNodeMode = 'sockmap' | 'kernel' | 'userspace';

/**
 * Unset or empty: 'kernel' (the node proxy's splice). 'sockmap' turns the fast path on (falling
 * back to 'kernel' where it cannot load): not the default yet, because a client that sends right
 * after connect() (HTTP, iperf3) sends before the node proxy can arm it, so that direction keeps
 * the splice and only pays for being in the socket map (docs/same-node.md, "Not yet").
 * Anything else throws, naming the variable.
 */
export function sameNodeModeFromEnv(value = process.env.NODEMESH_SAME_NODE_SPLICE): SameNodeMode {
  if (value === undefined || value === '' || value === 'kernel') return 'kernel';
  if (value === 'sockmap' || value === 'userspace') return value;
  throw new Error(`NODEMESH_SAME_NODE_SPLICE=${value}: must be kernel (the default), sockmap or userspace`);
}

export interface SameNodePath {
  /** false: same-node bytes cross the event loop (userspace); undefined: the kernel splice when the addon has it. */
  readonly kernelSplice?: boolean;
  readonly fastPath?: SameNodeFastPath;
}

/**
 * Opens what `mode` asks for under the node's pin root. 'sockmap' that cannot load logs why (a
 * kernel before 5.15, an object not built) and runs on the kernel splice; 'kernel' and 'userspace'
 * turn the fast path off if an earlier run had turned it on (its maps are pinned).
 */
export function openSameNodePath(
  mode: SameNodeMode,
  pinRoot: string,
  log: { warn(o: object, msg: string): void; info(o: object, msg: string): void },
): SameNodePath {
  const kernelSplice = mode === 'userspace' ? false : undefined;
  if (mode !== 'sockmap') {
    try {
      const config = BpfMap.fromPin(join(pinRoot, 'nm_fp_config'));
      config.update(Buffer.alloc(4), encodeFastPathConfig(false));
      config.close();
    } catch {
      // never turned on here
    }
    return { kernelSplice };
  }
  try {
    const fastPath = SameNodeFastPath.load(pinRoot);
    log.info(
      { sameNode: 'sockmap' },
      'same-node connections go app socket to app socket in the kernel once admitted (NODEMESH_SAME_NODE_SPLICE=kernel splices them instead)',
    );
    return { kernelSplice, fastPath };
  } catch (err) {
    log.warn(
      { sameNode: 'kernel', err: (err as Error).message },
      'the same-node fast path (sockmap/sk_msg redirect) is not available: it needs Linux 5.15 (bpf_get_netns_cookie in sk_msg programs) and bpf/build/sk_msg.o; same-node connections are spliced by the node proxy instead',
    );
    return { kernelSplice };
  }
}
