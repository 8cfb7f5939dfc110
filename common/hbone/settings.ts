// HTTP/2 and TLS settings both ends of an HBONE tunnel use. The flow-control windows are sized
// for throughput: with node:http2's defaults (64 KiB windows, 16 KiB frames) a single tunnel
// stream stalls on WINDOW_UPDATE round trips; bench/hbone.ts measures the effect (docs/hbone.md).
import { constants } from 'node:http2';

export const ALPN_H2 = 'h2';
export const TLS_VERSION = 'TLSv1.3';

export interface WindowSettings {
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE), bytes. */
  readonly streamWindow: number;
  /** Whole-connection receive window, bytes. */
  readonly connectionWindow: number;
  /** Largest DATA frame this end accepts (SETTINGS_MAX_FRAME_SIZE), 16 KiB..16 MiB-1. */
  readonly maxFrameSize: number;
}

export const DEFAULT_WINDOWS: WindowSettings = {
  streamWindow: 4 * 1024 * 1024,
  connectionWindow: 16 * 1024 * 1024,
  maxFrameSize: 64 * 1024,
};

/**
 * Kernel send buffer an HBONE connection's socket needs so that a write to it never waits for the
 * peer to read (node-proxy/proxy/tunnel-socket.ts says why): all the DATA the peer's connection
 * window admits, plus room for frame headers, TLS records and control frames.
 */
export function hboneSendBufferBytes(w: WindowSettings): number {
  return w.connectionWindow + 1024 * 1024;
}

/** Streams a server allows per connection unless configured otherwise (ztunnel's pool uses 100). */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;

/**
 * node:http2 refuses new streams once a session buffers more than this (in MiB); it must hold a
 * full connection window plus outgoing data, so it grows with the windows.
 */
export function maxSessionMemoryMiB(w: WindowSettings): number {
  return Math.max(32, Math.ceil((2 * w.connectionWindow) / (1024 * 1024)) + 16);
}

export function validateWindows(w: WindowSettings): WindowSettings {
  const maxWindow = 2 ** 31 - 1;
  if (!(w.streamWindow >= 65535 && w.streamWindow <= maxWindow)) throw new Error(`stream window ${w.streamWindow} must be 65535..${maxWindow} bytes`);
  if (!(w.connectionWindow >= 65535 && w.connectionWindow <= maxWindow))
    throw new Error(`connection window ${w.connectionWindow} must be 65535..${maxWindow} bytes`);
  if (!(w.maxFrameSize >= 16384 && w.maxFrameSize <= 16777215)) throw new Error(`max frame size ${w.maxFrameSize} must be 16384..16777215 bytes`);
  return w;
}

/** RST_STREAM code for "the proxied TCP connection was reset or closed abnormally" (RFC 9113 §8.5). */
export const RST_CONNECT_ERROR = constants.NGHTTP2_CONNECT_ERROR;
export const RST_CANCEL = constants.NGHTTP2_CANCEL;
