// How the config API is exposed. On a loopback address it is plain HTTP (only processes on the
// host reach it, as with 15010). On any other address — the control host's, or every interface —
// it is HTTPS with a serving certificate from the mesh CA, so clients verify the control plane
// with the trust bundle they already hold and the bearer token never crosses the network in the
// clear; plaintext there needs an explicit opt-out. Its HTTP server has request and handshake
// timeouts, counted in nodemesh_listener_timeouts_total{listener="config-api"}.
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { hostname, networkInterfaces } from 'node:os';
import { isIP, type Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe';
import { CertificateAuthority } from '../ca/authority';
import { listenerTimeouts } from '../metrics';
import type { ApiLimits } from '../limits';

export { DEFAULT_API_LIMITS, type ApiLimits } from '../limits';

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export interface ApiTls {
  readonly certChainPem: string;
  readonly privateKeyPem: string;
  /** The mesh roots clients verify the API with (also `nodemesh ca root`). */
  readonly trustBundlePem: string;
}

/** Every address of this host (a wildcard listener's certificate must name what clients dial). */
function localAddresses(): string[] {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address.split('%')[0]!);
  return [...out];
}

/** A serving certificate for the API from the mesh CA in `dataDir`, naming `host` (or every local address for a wildcard). */
export async function apiServingTls(dataDir: string, host: string, trustDomain = DEFAULT_TRUST_DOMAIN): Promise<ApiTls> {
  const ca = await CertificateAuthority.open({ trustDomain, dataDir });
  const wildcard = host === '0.0.0.0' || host === '::';
  const ipAddresses = wildcard ? localAddresses() : isIP(host) ? [host, '127.0.0.1', '::1'] : ['127.0.0.1', '::1'];
  const dnsNames = ['localhost', hostname(), ...(isIP(host) || wildcard ? [] : [host])];
  const s = await ca.servingCertificate({ dnsNames, ipAddresses });
  return { certChainPem: s.certChainPem, privateKeyPem: s.privateKeyPem, trustBundlePem: s.trustBundlePem };
}

/** The API's HTTP or HTTPS server with its limits; timeouts are counted on `registry`. */
export function createApiServer(handle: RequestListener, tls: ApiTls | undefined, limits: ApiLimits, registry: Registry): Server {
  const common = {
    headersTimeout: limits.headersTimeoutMs,
    // node:http refuses a headers timeout longer than the request timeout (ERR_OUT_OF_RANGE): a
    // headers limit raised on its own (NODEMESH_API_HEADERS_TIMEOUT_MS) raises the request limit too
    requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // how often Node checks the two timeouts above (default 30 s)
    connectionsCheckingInterval: Math.max(250, Math.min(2_000, Math.floor(limits.headersTimeoutMs / 2))),
  };
  const server = tls
    ? createHttpsServer(
        { ...common, cert: tls.certChainPem, key: tls.privateKeyPem, minVersion: 'TLSv1.2', handshakeTimeout: limits.handshakeTimeoutMs },
        handle,
      )
    : createHttpServer(common, handle);
  const timeouts = listenerTimeouts(registry);
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') timeouts.inc({ listener: 'config-api', kind: 'request' });
    if (socket.writable && !socket.destroyed)
      socket.end(
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'
          : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n',
      );
    else socket.destroy();
  });
  // https (unlike http2's secure server) leaves a socket whose handshake failed or timed out open
  // once a 'tlsClientError' listener exists: destroy it here.
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') timeouts.inc({ listener: 'config-api', kind: 'handshake' });
    socket.destroy();
  });
  return server;
}
