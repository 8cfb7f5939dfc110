// The node proxy's end of the CNI plugin's socket: a unix socket that only root can reach (a 0700
// root-owned directory, the socket itself 0600), one request per connection, bounded in size
// (protocol.ts) and time (the request must arrive within requestTimeoutMs; the answer may take as
// long as the handler's own deadline), and in concurrency (maxConnections).
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../../common/log';
import { encodeMessage, LineReader, validatePodEvent, type PodEvent, type PodEventReply } from './protocol';

export interface CniServerOptions {
  readonly socketPath: string;
  readonly handler: (ev: PodEvent) => Promise<PodEventReply>;
  readonly log: Logger;
  /** How long a client may take to send its request (default 5 s). */
  readonly requestTimeoutMs?: number;
  /** How long the handler may take before the client is told to retry (default 60 s). */
  readonly handlerTimeoutMs?: number;
  readonly maxConnections?: number;
}

export interface CniServer {
  readonly socketPath: string;
  /** Requests refused (bad, oversized, too slow), by reason. */
  readonly refused: Readonly<Record<string, number>>;
  close(): Promise<void>;
}

/** Makes the socket's directory root-only and removes a stale socket; refuses anything else at the path. */
function prepare(socketPath: string): void {
  const dir = dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new Error(`the CNI socket directory ${dir} is owned by uid ${st.uid}, not by the node proxy's user; remove it or pick another --cni-socket`);
  }
  chmodSync(dir, 0o700);
  let existing;
  try {
    existing = lstatSync(socketPath);
  } catch {
    return;
  }
  if (!existing.isSocket()) throw new Error(`${socketPath} exists and is not a socket; remove it or pick another --cni-socket`);
  unlinkSync(socketPath);
}

export async function startCniServer(o: CniServerOptions): Promise<CniServer> {
  prepare(o.socketPath);
  const requestTimeoutMs = o.requestTimeoutMs ?? 5000;
  const handlerTimeoutMs = o.handlerTimeoutMs ?? 60_000;
  const refused: Record<string, number> = {};
  const refuse = (sock: Socket, reason: string, detail: string): void => {
    refused[reason] = (refused[reason] ?? 0) + 1;
    o.log.warn({ reason, detail }, 'CNI request refused');
    sock.end(encodeMessage({ ok: false, retry: false, error: detail }));
  };
  const server: Server = createServer({ allowHalfOpen: false }, (sock) => {
    const reader = new LineReader();
    let got = false;
    sock.setTimeout(requestTimeoutMs, () => {
      if (!got) {
        refused.timeout = (refused.timeout ?? 0) + 1;
        sock.destroy();
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: Buffer) => {
      if (got) return; // one request per connection; anything after it is ignored
      let raw: unknown;
      try {
        raw = reader.push(chunk);
      } catch (err) {
        got = true;
        refuse(sock, 'malformed', (err as Error).message);
        return;
      }
      if (raw === undefined) return;
      got = true;
      sock.setTimeout(0);
      let ev: PodEvent;
      try {
        ev = validatePodEvent(raw);
      } catch (err) {
        refuse(sock, 'invalid', `bad request: ${(err as Error).message}`);
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<PodEventReply>((resolve) => {
        timer = setTimeout(
          () =>
            resolve({
              ok: false,
              retry: true,
              error: `the node proxy did not finish ${ev.kind} of ${ev.namespace}/${ev.name} within ${handlerTimeoutMs / 1000} s`,
            }),
          handlerTimeoutMs,
        );
      });
      Promise.race([o.handler(ev), deadline])
        .catch((err: Error): PodEventReply => ({ ok: false, retry: true, error: err.message }))
        .then((reply) => {
          clearTimeout(timer);
          if (!sock.destroyed) sock.end(encodeMessage(reply));
        });
    });
  });
  server.maxConnections = o.maxConnections ?? 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(o.socketPath, 0o600);
  return {
    socketPath: o.socketPath,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          unlinkSync(o.socketPath);
        } catch {
          /* already gone */
        }
      }),
  };
}
