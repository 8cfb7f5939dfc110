// The one tracker every path uses, over real sockets on loopback: while a spliced connection is
// open it is in the table and under policy watch; at its end the table, both reporters' metrics
// and the watch are closed with the bytes that went through; a policy re-check that denies it
// cuts it (reset) and it is counted as closed with an error.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log';
import { ConnectionTable } from '../connections/table';
import { PolicyGuard } from '../mesh/guard';
import type { PolicyContext } from '../policy/model';
import type { ConnectionRecord } from '../telemetry/labels';
import { NodeProxyTelemetry } from '../telemetry/metrics';
import { ConnectionTracker } from './tracker';

const silent = createLogger('test', 'silent');
const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

function listen(onConnection: (s: Socket) => void): Promise<AddressInfo> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo)));
}

const record = (reporter: 'source' | 'destination'): ConnectionRecord => ({
  reporter,
  source: { identity: 'spiffe://cluster.local/ns/dp/sa/client', address: '10.200.1.2', port: 40000 },
  destination: { identity: 'spiffe://cluster.local/ns/dp/sa/echo', address: '10.200.1.3', port: 7000 },
  mtls: true,
  sameNode: true,
});

const DENY_ALL: PolicyContext = { destination: 'dp/echo', authorizations: [], peerAuthentication: { mode: 'STRICT' }, hasWaypoint: false };

/** A proxy that splices each accepted connection to an echo server through the tracker. */
async function proxyToEcho(tracker: ConnectionTracker): Promise<AddressInfo> {
  const echo = await listen((s) => {
    s.on('error', () => undefined); // reset when the proxy cuts the connection
    s.pipe(s);
  });
  return listen((down) => {
    down.pause();
    const up = connect({ port: echo.port, host: '127.0.0.1', allowHalfOpen: true }, () =>
      tracker.splice(down, up, {
        direction: 'outbound',
        workload: 'dp/client',
        source: { address: '10.200.1.2', port: 40000 },
        originalDestination: { address: '10.200.1.3', port: 7000 },
        records: [record('source'), record('destination')],
        // plaintext as policy sees it: STRICT refuses it once the re-check runs
        watch: {
          destinationUid: 'Workload/dp/echo',
          connection: { sourceIp: '10.200.1.2', destinationIp: '10.200.1.3', destinationPort: 7000 },
          describe: {},
          cut: () => down.resetAndDestroy(),
        },
      }),
    );
  });
}

describe('ConnectionTracker', () => {
  it('books a spliced connection in the table, both reporters and the guard, and closes them all with its bytes', async () => {
    const telemetry = new NodeProxyTelemetry({ accessLog: silent });
    const table = new ConnectionTable();
    const guard = new PolicyGuard(telemetry.registry, silent);
    const proxy = await proxyToEcho(new ConnectionTracker({ table, log: silent, telemetry, guard }));
    const client = connect(proxy.port, '127.0.0.1');
    const payload = Buffer.alloc(100_000, 7);
    let got = 0;
    await new Promise<void>((resolve) => {
      client.on('data', (d: Buffer) => {
        got += d.length;
        if (got === payload.length) resolve();
      });
      client.write(payload);
    });
    expect(table.list()).toHaveLength(1);
    expect(guard.size).toBe(1);
    client.end();
    await new Promise((r) => client.on('close', r));
    for (let i = 0; i < 50 && table.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(table.size).toBe(0);
    expect(guard.size).toBe(0);
    expect(table.stats()).toMatchObject({ opened: 1, closed: 1, bytesSent: 100_000, bytesReceived: 100_000 });
    const metrics = await telemetry.registry.metrics();
    for (const reporter of ['source', 'destination']) {
      expect(metrics).toMatch(new RegExp(`istio_tcp_connections_closed_total\\{reporter="${reporter}"[^}]*response_flags="-"[^}]*\\} 1`));
      expect(metrics).toMatch(new RegExp(`istio_tcp_received_bytes_total\\{reporter="${reporter}"[^}]*\\} 100000`));
    }
  });

  it('a policy re-check that denies the open connection resets it and closes its books with an error', async () => {
    const telemetry = new NodeProxyTelemetry({ accessLog: silent });
    const table = new ConnectionTable();
    const guard = new PolicyGuard(telemetry.registry, silent);
    const proxy = await proxyToEcho(new ConnectionTracker({ table, log: silent, telemetry, guard }));
    const client = connect(proxy.port, '127.0.0.1');
    await new Promise<void>((resolve) => {
      client.once('data', () => resolve());
      client.write('hello');
    });
    const ended = new Promise<string>((resolve) => {
      client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      client.on('close', () => resolve('closed'));
    });
    expect(guard.recheck(() => DENY_ALL)).toBe(1);
    expect(await ended).toBe('ECONNRESET');
    for (let i = 0; i < 50 && table.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(table.size).toBe(0);
    expect(guard.size).toBe(0);
    const metrics = await telemetry.registry.metrics();
    expect(metrics).toMatch(/istio_tcp_connections_closed_total\{reporter="destination"[^}]*response_flags="CONNECT"[^}]*\} 1/);
    expect(metrics).toContain('nodemesh_policy_connections_closed_total{policy="none"} 1');
  });
});
