// The sample servers: an HTTP server that answers with who it is and what it saw, and a TCP echo.
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import type { AppIdentity } from './identity';

export interface HttpReply extends AppIdentity {
  request: { method: string; url: string; httpVersion: string; headers: Record<string, string | string[] | undefined>; bodyBytes: number; bodySha256: string };
  peer: { address: string; port: number };
  local: { address: string; port: number };
}

export function startHttpServer(id: AppIdentity, port: number, host: string): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const reply: HttpReply = {
        ...id,
        request: { method: req.method ?? '', url: req.url ?? '', httpVersion: req.httpVersion, headers: req.headers, bodyBytes: bytes, bodySha256: hash.digest('hex') },
        peer: { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 },
        local: { address: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 },
      };
      const body = JSON.stringify(reply);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-app': id.app, 'x-pod': id.pod });
      res.end(body);
    });
    req.on('error', () => res.destroy());
  });
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

function listen<S extends HttpServer | TcpServer>(server: S, port: number, host: string): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function boundAddress(server: HttpServer | TcpServer): { address: string; port: number } {
  const a = server.address() as AddressInfo;
  return { address: a.address, port: a.port };
}
