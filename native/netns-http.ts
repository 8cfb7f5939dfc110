// HTTP from the root netns to a server inside another netns (the control plane's config API, a node
// proxy's admin/readiness/metrics ports): the socket is opened inside the netns by the native
// addon and handed to http.request as its connection.
import type { ClientRequestArgs } from 'node:http';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { tlsConnector } from '../common/tls-connector';
import { connectInNetns } from './netns';

/** A `createConnection` for http.request that connects from inside `netnsPath`. */
export function netnsConnector(netnsPath: string, timeoutMs = 5000): NonNullable<ClientRequestArgs['createConnection']> {
  return (opts, oncreate) => {
    const host = String(opts.host ?? opts.hostname ?? '127.0.0.1').replace(/^\[|\]$/g, '');
    const port = Number(opts.port ?? 80);
    connectInNetns(netnsPath, { host, port, timeoutMs }).then(
      (s: Socket) => oncreate(null, s),
      (e: Error) => oncreate(e, undefined as unknown as Socket), // http ignores the socket when err is set
    );
    return undefined as unknown as Socket; // the socket comes through oncreate
  };
}

export interface NetnsResponse {
  status: number;
  body: string;
}

/**
 * GET http://host:port/path from inside a netns (https:// verified against `ca` when given);
 * rejects on connection errors and after timeoutMs.
 */
export function netnsGet(
  netnsPath: string,
  host: string,
  port: number,
  path: string,
  headers: Record<string, string> = {},
  timeoutMs = 5000,
  ca?: string,
): Promise<NetnsResponse> {
  return new Promise((resolve, reject) => {
    const connector = ca === undefined ? netnsConnector(netnsPath, timeoutMs) : tlsConnector(ca, netnsConnector(netnsPath, timeoutMs));
    const req = request({ host, port, path, headers, method: 'GET', createConnection: connector, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}:${port}${path} in ${netnsPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
