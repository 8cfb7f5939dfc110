// Reading and writing a plain TCP socket without node's stream machinery per message, for the
// HTTP/1.1 codec's hot path (a keep-alive request costs two reads and two writes):
//   - reads into one buffer the caller owns (what node:net's `onread` option does for sockets it
//     connects, here also for sockets a server accepted): no 64 KiB allocation and ArrayBuffer per
//     read, no Readable push, 'data' event or tick per read;
//   - writes straight to the socket's handle when the Writable has nothing queued (what node's
//     Writable does underneath): no Writable state, write callback or tick per write. A write the
//     kernel does not take at once stays queued in libuv, in order with later writes of either
//     kind; the socket emits 'drain' when it has gone out, and a failed write destroys the socket
//     with the error, as node's own would.
// Both rest on node:net internals (the handle's useUserBuffer/writeBuffer, the user-buffer
// symbols on the Socket, stream_wrap's WriteWrap); where any of them is missing (another node, an
// HBONE stream, a TLS socket) the callers use the stream API instead.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** What this module uses of a TCP handle (node's TCPWrap, a StreamBase). */
interface StreamHandle {
  useUserBuffer?(buffer: Uint8Array): void;
  writeBuffer?(req: WriteReq, data: Buffer): number;
  writeLatin1String?(req: WriteReq, data: string): number;
  reading?: boolean;
}

/** node's WriteWrap request object, as stream_base_commons fills it in. */
interface WriteReq {
  handle: StreamHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  callback: null;
  /** The socket written to (this module's own field). */
  owner: Direct;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

type Internal = Socket & { _handle: StreamHandle | null } & Record<symbol, unknown>;

/** node:net's symbols for a Socket's user read buffer and its callback (onread), found once by their descriptions. */
let readSymbols: { buffer: symbol; callback: symbol } | null | undefined;

function userBufferSymbols(s: Internal): { buffer: symbol; callback: symbol } | null {
  if (readSymbols !== undefined) return readSymbols;
  const own = Object.getOwnPropertySymbols(s);
  const buffer = own.find((k) => k.description === 'kBuffer');
  const callback = own.find((k) => k.description === 'kBufferCb');
  readSymbols = buffer && callback && s[buffer] === null && s[callback] === null ? { buffer, callback } : null;
  return readSymbols;
}

/**
 * Have `socket`'s later reads land in `buffer` and call `onRead(n)` (`buffer[0, n)` is valid until
 * it returns) instead of emitting 'data'; end of stream, errors and close are still the
 * socket's events, and pause()/resume() stop and restart reading. False (nothing changed) when the
 * socket is not a plain TCP socket of this node. Bytes already read and buffered in the Readable
 * (unshifted) are the caller's to take first, with `socket.read()`.
 */
export function readInto(socket: Duplex, buffer: Buffer, onRead: (n: number) => void): boolean {
  if (!plainTcp(socket)) return false;
  const s = socket;
  const h = s._handle;
  if (!h || typeof h.useUserBuffer !== 'function' || s.connecting || s.destroyed) return false;
  const k = userBufferSymbols(s);
  if (!k || s[k.buffer] !== null) return false;
  s[k.buffer] = buffer;
  // node:net calls it with (nread, buffer); only `false` would stop reading (reading is paused
  // through socket.pause() instead, as for any socket), and onRead returns nothing.
  s[k.callback] = onRead;
  h.useUserBuffer(buffer);
  // Reading may have stopped while the Readable held the unshifted bytes: make sure it runs.
  if (!h.reading) s.resume();
  return true;
}

let binding: StreamWrapBinding | null | undefined;

function streamWrap(): StreamWrapBinding | null {
  if (binding !== undefined) return binding;
  try {
    // process.binding is deprecated for new uses, not removed; stream_wrap is on its allow-list.
    const b = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding('stream_wrap');
    binding =
      typeof b.WriteWrap === 'function' && b.streamBaseState instanceof Int32Array && typeof b.kLastWriteWasAsync === 'number'
        ? (b as StreamWrapBinding)
        : null;
  } catch {
    binding = null;
  }
  return binding;
}

/** Bytes written directly and still queued in libuv, per socket (they count towards backpressure). */
const QUEUED = Symbol('nodemesh.socketio.queued');
type Direct = Internal & { [QUEUED]?: number };
/** Direct writes queued in libuv, all sockets together: while none is, no socket's count is looked up. */
let inFlight = 0;

function onDirectWriteComplete(this: WriteReq, status: number): void {
  const s = this.owner;
  const bytes = this.bytes;
  this.buffer = null;
  inFlight--;
  s[QUEUED] = (s[QUEUED] ?? 0) - bytes;
  if (s.destroyed) return;
  if (status < 0) {
    s.destroy(Object.assign(new Error(`write failed (${status})`), { errno: status, syscall: 'write' }));
    return;
  }
  if (s[QUEUED] === 0) s.emit('drain');
}

/** A request object no write is using (see writeNow). */
let spare: WriteReq | undefined;

function newRequest(b: StreamWrapBinding): WriteReq {
  const req = new b.WriteWrap();
  req.handle = {};
  req.oncomplete = onDirectWriteComplete;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  req.callback = null;
  req.owner = undefined as unknown as Direct;
  return req;
}

/** A plain TCP socket of node:net (not TLS, not a stream of another kind). */
function plainTcp(s: Duplex): s is Direct {
  return Object.getPrototypeOf(s) === Socket.prototype;
}

/**
 * Write `data` (a string: latin1 text) to `socket` now, bypassing its Writable when that has
 * nothing queued (else, and for anything but a plain TCP socket of this node, `socket.write`).
 * Returns what `write` would: false when the bytes could not all go out at once ('drain' follows).
 * A Buffer must not be changed after.
 */
export function writeNow(socket: Duplex, data: Buffer | string): boolean {
  if (!plainTcp(socket)) return typeof data === 'string' ? socket.write(data, 'latin1') : socket.write(data);
  const s = socket;
  const h = s._handle;
  const b = streamWrap();
  if (
    b === null ||
    h === null ||
    s.writableLength !== 0 ||
    s.writableCorked !== 0 ||
    !s.writable ||
    s.connecting ||
    typeof h.writeBuffer !== 'function' ||
    typeof h.writeLatin1String !== 'function'
  )
    return typeof data === 'string' ? s.write(data, 'latin1') : s.write(data);
  // A write the kernel takes at once never touches its request object (node makes one per write):
  // the same one serves every write until one is left in flight.
  const req = spare ?? newRequest(b);
  spare = undefined;
  req.handle = h;
  req.owner = s;
  const err = typeof data === 'string' ? h.writeLatin1String(req, data) : h.writeBuffer(req, data);
  if (err !== 0) {
    s.destroy(Object.assign(new Error(`write failed (${err})`), { errno: err, syscall: 'write' }));
    return false;
  }
  if (b.streamBaseState[b.kLastWriteWasAsync] === 0) {
    spare = req;
    return inFlight === 0 || (s[QUEUED] ?? 0) === 0;
  }
  // Partly written: libuv keeps the rest until oncomplete (a string's rest is copied by node; a
  // Buffer is kept alive through req), and req is node's now.
  if (typeof data !== 'string') req.buffer = data;
  req.bytes = data.length;
  inFlight++;
  s[QUEUED] = (s[QUEUED] ?? 0) + data.length;
  return false;
}
