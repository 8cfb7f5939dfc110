// Access-log parsing and the demo table.
import { describe, expect, it } from 'vitest';
import { planLab } from '../topology';
import { assignRoles, demoEdges } from './demo';
import { entriesFor, formatEdgeTable, humanBytes, parseAccessLog, summarizeEdge } from './report';
import { edgeEntries } from './traffic';

const line = (o: Record<string, unknown>): string => JSON.stringify({ level: 30, component: 'access', ...o });
const allowed = line({
  reporter: 'destination',
  src: { addr: '10.200.1.2:41000', workload: 'demo/frontend-pod1-1', identity: 'spiffe://cluster.local/ns/demo/sa/frontend' },
  dst: { addr: '10.200.2.2:8080', workload: 'demo/backend-pod2-1', identity: 'spiffe://cluster.local/ns/demo/sa/backend' },
  protocol: 'HBONE',
  bytes_sent: 120,
  bytes_recv: 500,
  msg: 'connection complete',
});
const denied = line({
  reporter: 'destination',
  src: { addr: '10.200.1.3:41001', identity: 'spiffe://cluster.local/ns/demo/sa/tcp-echo' },
  dst: { addr: '10.200.2.2:8080', identity: 'spiffe://cluster.local/ns/demo/sa/backend' },
  protocol: 'HBONE',
  bytes_sent: 0,
  bytes_recv: 0,
  deny_reason: 'no ALLOW policy matched',
  policy: 'demo/backend-allow-frontend',
  msg: 'connection denied',
});

describe('access log', () => {
  it('parses access lines and skips everything else', () => {
    const e = parseAccessLog(['{"level":30,"msg":"node proxy ready"}', allowed, 'not json', denied, ''].join('\n'));
    expect(e).toHaveLength(2);
    expect(e[0]).toMatchObject({ srcIdentity: 'spiffe://cluster.local/ns/demo/sa/frontend', protocol: 'HBONE', bytesSent: 120, bytesRecv: 500 });
    expect(e[1]).toMatchObject({ denyReason: 'no ALLOW policy matched', policy: 'demo/backend-allow-frontend' });
    expect(entriesFor(e, '10.200.1.2', '10.200.2.2', 8080)).toHaveLength(1);
    expect(entriesFor(e, '10.200.1.2', '10.200.2.2', 9000)).toHaveLength(0);
  });

  it('summarises an allowed and a denied edge and marks a mismatch with the policy as BAD', () => {
    const roles = assignRoles({ ...planLab({ lab: 't', nodes: 2, podsPerNode: 2 }, '/cg'), phase: 'ready' });
    const [feBe, , teBe] = demoEdges(roles);
    const report = (ok: number) => ({ connections: 1, ok }) as never;
    const a = summarizeEdge({ edge: feBe!, client: report(1), entries: parseAccessLog(allowed) });
    expect(a).toMatchObject({
      verdict: 'allowed 1',
      mtls: 'yes',
      srcId: 'ns/demo/sa/frontend',
      dstId: 'ns/demo/sa/backend',
      bytes: '120 B / 500 B',
      expected: true,
    });
    const d = summarizeEdge({ edge: teBe!, client: report(0), entries: parseAccessLog(denied) });
    expect(d).toMatchObject({ verdict: 'denied 1', reason: 'no ALLOW policy matched (demo/backend-allow-frontend)', expected: true });
    const leak = summarizeEdge({ edge: teBe!, client: report(1), entries: [] });
    expect(leak).toMatchObject({ verdict: '-', mtls: 'no log', expected: false });
    const table = formatEdgeTable([a, d, leak], 'cluster.local');
    expect(table.split('\n')[1]).toMatch(/^ok  frontend -> backend/);
    expect(table.split('\n')[3]).toMatch(/^BAD tcp-echo -> backend/);
    expect(humanBytes(64 * 1024 * 1024)).toBe('64.0 MiB');
  });
});

describe('shortReason', () => {
  it('keeps the first clause, closes its parenthesis and caps the length', async () => {
    const { shortReason } = await import('./report.js');
    expect(shortReason('no ALLOW policy matched (w has ALLOW policies p; a connection must match one of them)')).toBe(
      'no ALLOW policy matched (w has ALLOW policies p)',
    );
    expect(shortReason('x'.repeat(200))).toHaveLength(110);
  });
});

describe('an edge through the waypoint counts only connections opened while it ran', () => {
  it('leaves out a pooled waypoint -> backend connection of an earlier edge that closed during this one', async () => {
    const roles = assignRoles({ ...planLab({ lab: 't', nodes: 2, podsPerNode: 2 }, '/cg'), phase: 'ready' });
    const teBe = demoEdges(roles, true, '10.200.9.9').find((e) => e.label === 'tcp-echo -> backend')!;
    expect(teBe.waypoint).toBeDefined();
    const port = teBe.to.port ?? 0;
    const since = Date.parse('2026-12-05T04:00:10.000Z');
    const pooled = line({
      reporter: 'destination',
      time: '2026-12-05T04:00:11.000Z', // closed during this edge, opened 9 s before it (an earlier edge's)
      duration_ms: 9000,
      src: { addr: `${teBe.waypoint!.ip}:40000` },
      dst: { addr: `${teBe.to.pod.ip}:${port}` },
    });
    const fresh = line({
      reporter: 'destination',
      time: '2026-12-05T04:00:11.000Z',
      duration_ms: 500.25,
      src: { addr: `${teBe.waypoint!.ip}:40001` },
      dst: { addr: `${teBe.to.pod.ip}:${port}` },
    });
    const all = parseAccessLog(`${pooled}\n${fresh}`);
    expect(all.map((e) => e.openedAtMs)).toEqual([since - 8000, since + 499.75]);
    expect(edgeEntries(all, teBe, since).map((e) => e.srcAddr)).toEqual([`${teBe.waypoint!.ip}:40001`]);
    // lines without time or duration are kept (older logs)
    expect(
      edgeEntries(
        parseAccessLog(line({ reporter: 'destination', src: { addr: `${teBe.waypoint!.ip}:1` }, dst: { addr: `${teBe.to.pod.ip}:${port}` } })),
        teBe,
        since,
      ),
    ).toHaveLength(1);
    // and with the earlier edge's entry left out, the waypoint's 403s decide the row
    const row = summarizeEdge({
      edge: teBe,
      client: { connections: 5, ok: 0, statusCodes: { '403': 5 } } as never,
      entries: edgeEntries(all.slice(0, 1), teBe, since),
    });
    expect(row.verdict).toBe('waypoint: 403 x5');
  });

  it('an allowed edge through the waypoint reads as the waypoint’s answers also when its pooled upstream connections closed during the wait', () => {
    // 5.10 VM: the wait for log lines (2 s x the speed factor) outlasted the backend's 5 s keep-alive,
    // the waypoint's upstream connections closed and were logged, and the row read `allowed 5 (via waypoint)`
    const roles = assignRoles({ ...planLab({ lab: 't', nodes: 2, podsPerNode: 2 }, '/cg'), phase: 'ready' });
    const feBe = demoEdges(roles, true, '10.200.9.9').find((e) => e.label === 'frontend -> backend')!;
    const port = feBe.to.port ?? 0;
    const upstream = parseAccessLog(
      line({
        reporter: 'destination',
        time: '2026-12-05T04:00:16.000Z',
        duration_ms: 5200,
        src: { addr: `${feBe.waypoint!.ip}:40002`, identity: 'spiffe://cluster.local/ns/demo/sa/waypoint' },
        dst: { addr: `${feBe.to.pod.ip}:${port}`, identity: 'spiffe://cluster.local/ns/demo/sa/backend' },
        protocol: 'HBONE',
      }),
    );
    expect(edgeEntries(upstream, feBe, Date.parse('2026-12-05T04:00:10.000Z'))).toHaveLength(1);
    const row = summarizeEdge({ edge: feBe, client: { connections: 5, ok: 5, statusCodes: { '200': 5 } } as never, entries: upstream });
    expect(row).toMatchObject({
      verdict: 'waypoint: 200 x5',
      mtls: 'yes',
      srcId: 'ns/demo/sa/frontend',
      dstId: 'ns/demo/sa/waypoint',
      bytes: '-',
      expected: true,
    });
    expect(summarizeEdge({ edge: feBe, client: { connections: 5, ok: 5, statusCodes: { '200': 5 } } as never, entries: [] })).toEqual(row);
  });
});
