// The kernel send buffer of an HBONE connection's TCP socket, sized so that the two node proxies
// of a connection can never stop each other.
//
// node:http2 stops reading its socket while one of its writes is pending (a write that the kernel
// has not taken in full yet). When both directions of a tunnel carry bulk data (an echo of MiBs,
// anything bidirectional) and both peers' flow-control windows allow more bytes in flight than
// the TCP buffers between them hold, both node proxies end up with a pending write at once: each
// has stopped reading, so neither write ever completes, and nothing (not even a PING answer)
// crosses the connection again. The pool then takes it as dead and resets every tunnel on it.
// A send buffer that holds all the DATA the peer's windows admit (settings.ts) takes every write
// at once whatever the peer does, so a write is never left pending on the peer reading and this
// end keeps reading; the windows still bound the memory. Bytes are only charged while queued.
import type { Socket } from 'node:net';
import { isRawSocket, type RawSocket } from '../../common/hbone/raw-socket';
import { hboneSendBufferBytes, DEFAULT_WINDOWS } from '../../common/hbone/settings';
import { fdOf, setSendBuffer } from '../../native/netns';

const WANTED = hboneSendBufferBytes(DEFAULT_WINDOWS);
let warned = false;

type Warn = (msg: string, fields: Record<string, unknown>) => void;

/** Reserves the send buffer on an HBONE connection's TCP socket (see above); returns `socket`. */
export function reserveTunnelSendBuffer<S extends Socket | RawSocket>(socket: S, warn?: Warn): S {
  reserve(isRawSocket(socket) ? socket.fd : fdOf(socket), warn);
  return socket;
}

function reserve(fd: number, warn?: Warn): void {
  let granted: number;
  try {
    granted = setSendBuffer(fd, WANTED);
  } catch (err) {
    if (!warned) {
      warned = true;
      warn?.('could not size an HBONE connection’s send buffer; bidirectional bulk transfers may stall', { err: (err as Error).message });
    }
    return;
  }
  // the kernel reports twice the size it was asked for; less means capped at net.core.wmem_max
  if (granted < WANTED && !warned) {
    warned = true;
    warn?.(
      'the HBONE send buffer is capped by net.core.wmem_max (no CAP_NET_ADMIN for SO_SNDBUFFORCE); bidirectional bulk transfers may stall: run the node proxy with CAP_NET_ADMIN',
      { wantedBytes: WANTED, grantedBytes: granted },
    );
  }
}
