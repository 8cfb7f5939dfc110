// The sample servers: an HTTP/1.1 and an h2c server that answer with who they are and what they
// saw, and a TCP echo.
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createH2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import type { AppIdentity } from './identity';

export interface HttpReply extends AppIdentity {
  request: { method: string; url: string; httpVersion: string; headers: Record<string, string | string[] | undefined>; bodyBytes: number; bodySha256: string };
  peer: { address: string; port: number };
  local: { address: string; port: number };
  /** With `--call URL`: what the upstream answered to the call this request made. */
  upstream?: UpstreamResult;
}

/** One upstream call made on behalf of a request (`http --call URL`). */
export interface UpstreamResult {
  url: string;
  status?: number;
  /** The upstream's own identity, when it is the sample http server. */
  app?: string;
  pod?: string;
  /** The address the upstream saw the call come from. */
  peer?: string;
  error?: string;
  ms: number;
}

/** How long a --call waits for its answer unless told otherwise. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

export interface HttpServerOptions {
  /** Call this URL once per request (a new connection each time) and include the result; 502 when it fails. */
  call?: string;
  /** The call's limit (default DEFAULT_CALL_TIMEOUT_MS); past it the request is answered 502. */
  callTimeoutMs?: number;
}

/** One GET to `url` on a connection of its own; never rejects. */
export function callUpstream(url: string, timeoutMs: number): Promise<UpstreamResult> {
  const t0 = performance.now();
  const ms = (): number => Math.round((performance.now() - t0) * 10) / 10;
  return new Promise((resolve) => {
    let req;
    try {
      req = httpRequest(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => resolve({ url, status: res.statusCode, error: e.message, ms: ms() }));
        res.on('end', () => {
          const out: UpstreamResult = { url, status: res.statusCode, ms: ms() };
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<HttpReply>;
            out.app = body.app;
            out.pod = body.pod;
            if (body.peer) out.peer = `${body.peer.address}:${body.peer.port}`;
          } catch {
            // not the sample server: status only
          }
          resolve(out);
        });
      });
    } catch (e) {
      resolve({ url, error: (e as Error).message, ms: ms() });
      return;
    }
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ url, error: e.message, ms: ms() }));
    req.end();
  });
}

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/** The request handler both HTTP servers share: hash the body, answer with who we are and what we saw. */
function replyHandler(id: AppIdentity, opts: HttpServerOptions): (req: AnyRequest, res: AnyResponse) => void {
  return (req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const reply: HttpReply = {
        ...id,
        request: {
          method: req.method ?? '',
          url: req.url ?? '',
          httpVersion: req.httpVersion,
          headers: req.headers,
          bodyBytes: bytes,
          bodySha256: hash.digest('hex'),
        },
        peer: { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 },
        local: { address: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 },
      };
      const send = (status: number): void => {
        const body = JSON.stringify(reply);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-app': id.app, 'x-pod': id.pod });
        res.end(body);
      };
      if (!opts.call) return send(200);
      void callUpstream(opts.call, opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS).then((up) => {
        reply.upstream = up;
        send(up.error === undefined && up.status !== undefined && up.status < 500 ? 200 : 502);
      });
    });
    req.on('error', () => ('stream' in res ? res.stream.destroy() : res.destroy()));
  };
}

/**
 * How long the sample app keeps an idle keep-alive connection: longer than the proxies' upstream
 * pools keep theirs (the waypoint's 60 s), as with any server behind a proxy. With Node's default
 * (5 s) the app closed idle connections the waypoint was about to reuse, and a request sent on one
 * as its FIN crossed the tunnel got 503 "upstream reset: socket hang up".
 */
export const APP_KEEP_ALIVE_MS = 65_000;

export function startHttpServer(id: AppIdentity, port: number, host: string, opts: HttpServerOptions = {}): Promise<HttpServer> {
  const server = createHttpServer(replyHandler(id, opts));
  server.keepAliveTimeout = APP_KEEP_ALIVE_MS;
  server.headersTimeout = APP_KEEP_ALIVE_MS + 1_000;
  return listen(server, port, host);
}

/** The same answers over HTTP/2 without TLS (h2c, prior knowledge), as gRPC and h2c clients speak it. */
export function startH2Server(id: AppIdentity, port: number, host: string, opts: HttpServerOptions = {}): Promise<Http2Server> {
  const server = createH2Server({ settings: { maxConcurrentStreams: 1000 } }, replyHandler(id, opts));
  // a broken session must not take the server down
  server.on('sessionError', () => undefined);
  return listen(server, port, host);
}

/** Echoes every byte back; when the peer half-closes, finishes echoing and half-closes too. */
export function startEchoServer(port: number, host: string): Promise<TcpServer> {
  const server = createTcpServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  return listen(server, port, host);
}

function listen<S extends HttpServer | TcpServer | Http2Server>(server: S, port: number, host: string): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function boundAddress(server: HttpServer | TcpServer | Http2Server): { address: string; port: number } {
  const a = server.address() as AddressInfo;
  return { address: a.address, port: a.port };
}
