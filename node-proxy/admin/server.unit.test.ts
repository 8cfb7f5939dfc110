import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionTable } from '../connections/table';
import { startAdmin, type AdminServers } from './server';

let servers: AdminServers | undefined;
afterEach(async () => {
  await servers?.close();
  servers = undefined;
});

describe('admin', () => {
  it('serves workloads, connections with bytes, and readiness that follows the proxy', async () => {
    const table = new ConnectionTable();
    const counter = { bytesRead: 1234, bytesWritten: 56 };
    table.add({
      direction: 'outbound',
      workload: 'default/pod1-1',
      source: { address: '127.0.0.1', port: 40000 },
      originalDestination: { address: '10.96.0.12', port: 8080 },
      downstream: counter,
    });
    let reason: string | undefined = 'enrolling 1 workload';
    servers = await startAdmin(
      {
        workloads: () => [{ key: 'default/pod1-1' }],
        connections: (w) => table.list(w),
        stats: () => table.stats(),
        notReadyReason: () => reason,
      },
      { adminPort: 0, readyPort: 0, readyHost: '127.0.0.1' },
    );
    const base = `http://127.0.0.1:${servers.adminPort}`;
    expect(await (await fetch(`${base}/workloads`)).json()).toEqual([{ key: 'default/pod1-1' }]);
    const conns = (await (await fetch(`${base}/connections`)).json()) as Array<Record<string, unknown>>;
    expect(conns).toHaveLength(1);
    expect(conns[0]).toMatchObject({
      workload: 'default/pod1-1',
      originalDestination: { address: '10.96.0.12', port: 8080 },
      bytesSent: 1234,
      bytesReceived: 56,
    });
    counter.bytesRead = 2000;
    expect(((await (await fetch(`${base}/connections?workload=default/pod1-1`)).json()) as Array<{ bytesSent: number }>)[0].bytesSent).toBe(2000);
    expect(await (await fetch(`${base}/connections?workload=other/x`)).json()).toEqual([]);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/workloads`, { method: 'POST' })).status).toBe(405);

    const ready = `http://127.0.0.1:${servers.readyPort}/healthz/ready`;
    const r1 = await fetch(ready);
    expect(r1.status).toBe(503);
    expect(await r1.text()).toContain('enrolling 1 workload');
    reason = undefined;
    expect((await fetch(ready)).status).toBe(200);
  });

  it('says what to do when the port is taken', async () => {
    servers = await startAdmin(
      { workloads: () => [], connections: () => [], stats: () => ({}), notReadyReason: () => undefined },
      { adminPort: 0, readyPort: 0, readyHost: '127.0.0.1' },
    );
    await expect(
      startAdmin(
        { workloads: () => [], connections: () => [], stats: () => ({}), notReadyReason: () => undefined },
        { adminPort: servers.adminPort, readyPort: 0 },
      ),
    ).rejects.toThrow(/EADDRINUSE \(another node proxy runs in this network namespace/);
  });
});
