// In-kernel splicing of two connected TCP sockets (native/src/splice.cc): the addon's own thread
// moves the bytes socket -> pipe -> socket with splice(2), so they never enter user space (no
// event-loop work, no copies, no per-chunk JavaScript). A clean end of one direction half-closes
// the other side, an abnormal end resets the other, cut() resets both; the callback gets the
// byte counts when both directions are done.
import type { Socket } from 'node:net';
import { isRawSocket, type RawSocket } from '../common/hbone/raw-socket';
import { binding, call } from './binding';
import { DEFAULT_SLICE_US, datapathSliceUs } from './slice';

export interface KernelSpliceResult {
  /** Bytes from `a` to `b`. */
  readonly aToB: number;
  /** Bytes from `b` to `a`. */
  readonly bToA: number;
  /** Both directions ended with EOF, nothing was reset or cut. */
  readonly clean: boolean;
  /** errno code of the first failure ('ECONNRESET'), 'reset' when cut, undefined when clean. */
  readonly code?: string;
  readonly durationMs: number;
}

export interface KernelSplice {
  /** Resets both sides now (a policy change that no longer allows the connection). */
  cut(): boolean;
  /** Bytes moved so far each way, or undefined once it has ended. */
  bytes(): { aToB: number; bToA: number } | undefined;
}

const pending = new Map<number, { started: number; onDone: (r: KernelSpliceResult) => void }>();
let initialised = false;

/** The slice for the splice thread; a bad NODEMESH_DATAPATH_SLICE_US was named at start-up already (the HBONE engine's start), the splice then asks for the default. */
function spliceSliceUs(): number {
  try {
    return datapathSliceUs();
  } catch {
    return DEFAULT_SLICE_US;
  }
}

function init(): void {
  if (initialised) return;
  call((b) =>
    b.spliceInit((id, aToB, bToA, clean, code) => {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      p.onDone({ aToB, bToA, clean, code: code || undefined, durationMs: performance.now() - p.started });
    }, spliceSliceUs()),
  );
  initialised = true;
}

/** Whether the addon has the splice engine (an addon built before it does not). */
export function kernelSpliceAvailable(): boolean {
  try {
    return typeof binding().spliceStart === 'function';
  } catch {
    return false;
  }
}

/**
 * Stops Node reading `s`, takes what it had already read, and returns a duplicate of its fd; the
 * socket itself is destroyed (its fd closed, the connection kept open by the duplicate).
 */
export function takeOver(s: Socket): { fd: number; prefix: Buffer | undefined } {
  const handle = (s as unknown as { _handle?: { fd?: number; readStop?: () => number } })._handle;
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) throw new Error('the socket has no fd (not open, or not a TCP socket)');
  handle.readStop?.();
  const chunks: Buffer[] = [];
  for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) chunks.push(c);
  const fd = call((b) => b.dupFd(handle.fd!));
  s.destroy();
  return { fd, prefix: chunks.length ? Buffer.concat(chunks) : undefined };
}

/** A net.Socket taken over, or a bare fd (RawSocket: from accept or connect in the addon) as it is. */
function handOver(s: Socket | RawSocket): { fd: number; prefix: Buffer | undefined } {
  return isRawSocket(s) ? { fd: s.fd, prefix: s.prefix } : takeOver(s);
}

/**
 * Splices `a` and `b` in the kernel from now on. Both sockets are taken over (destroyed in Node;
 * their connections live on in the addon) and must not be used afterwards. A RawSocket is handed
 * over as it is (no net.Socket made for it, nothing to take apart); the addon owns its fd.
 */
export function spliceInKernel(a: Socket | RawSocket, b: Socket | RawSocket, onDone: (r: KernelSpliceResult) => void): KernelSplice {
  init();
  const ta = handOver(a);
  let tb: { fd: number; prefix: Buffer | undefined };
  try {
    tb = handOver(b);
  } catch (err) {
    call((x) => x.closeFd(ta.fd));
    throw err;
  }
  const id = call((x) => x.spliceStart(ta.fd, tb.fd, ta.prefix, tb.prefix));
  pending.set(id, { started: performance.now(), onDone });
  return {
    cut: () => call((x) => x.spliceCut(id)),
    bytes: () => {
      const r = call((x) => x.spliceBytes(id));
      return r ? { aToB: r[0], bToA: r[1] } : undefined;
    },
  };
}

/** Empty pipes the splice engine keeps for the next connections (at most 64, 256 KiB each). */
export function kernelSplicePooledPipes(): number {
  return call((b) => b.splicePooledPipes());
}
