import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from './prometheus';
import { peerHost, proxyTargets } from './targets';
import { addSamples, destinationNode, edgeViews, type EdgeTotals } from './traffic';

describe('reading Prometheus text', () => {
  it('samples with escaped label values, comments skipped, only the metrics asked for, bad lines ignored', () => {
    const text = [
      '# HELP x_total help',
      '# TYPE x_total counter',
      'x_total{a="1",b="with \\"quotes\\" and \\\\ and \\n"} 3',
      'x_total 4 1700000000000',
      'y_total{a="2"} 5',
      'x_total{broken 7',
      'x_total{a="nan"} NaN',
      '',
    ].join('\n');
    expect(parsePrometheusText(text, new Set(['x_total']))).toEqual([
      { name: 'x_total', labels: { a: '1', b: 'with "quotes" and \\ and \n' }, value: 3 },
      { name: 'x_total', labels: {}, value: 4 },
      { name: 'x_total', labels: { a: 'nan' }, value: Number.NaN },
    ]);
  });
});

describe('which proxies to read', () => {
  it('node proxies (delta, workload API) by their peer address, waypoints by the address in their node id; proxyless clients left out', () => {
    expect(peerHost('ipv4:10.199.0.1:4000')).toBe('10.199.0.1');
    expect(peerHost('[fd00::1]:4000')).toBe('fd00::1');
    const t = proxyTargets([
      {
        api: 'delta',
        nodeId: 'node-proxy~node1',
        peer: '10.199.0.1:51000',
        view: 'proxyless',
        types: { 'type.googleapis.com/nodemesh.workload.v1.Address': {} },
      },
      {
        api: 'delta',
        nodeId: 'node-proxy~node1',
        peer: '10.199.0.1:51002',
        view: 'proxyless',
        types: { 'type.googleapis.com/nodemesh.workload.v1.Address': {} },
      },
      { api: 'sotw', nodeId: 'waypoint~10.200.1.201~waypoint.demo~x', peer: '10.200.1.201:40000', view: 'waypoint:demo/waypoint', types: {} },
      { api: 'sotw', nodeId: 'grpc-client', peer: '10.200.1.5:40000', view: 'proxyless', types: { lds: {} } },
    ]);
    expect(t).toEqual([
      { id: 'node-proxy/node-proxy~node1', kind: 'node-proxy', address: '10.199.0.1', port: 15020, node: 'node-proxy~node1' },
      { id: 'waypoint/demo/waypoint', kind: 'waypoint', address: '10.200.1.201', port: 15020, waypoint: 'demo/waypoint' },
    ]);

    // the client dump as the control plane writes it since proxy-status shows delta ACK state: the
    // workload API's types by short name and the node proxy's view `workload-api` (seen in the lab)
    const now = proxyTargets([
      { api: 'delta', nodeId: 'node-proxy~node2', peer: '10.199.0.2:36730', view: 'workload-api', types: { wds: {}, authz: {}, peerauthn: {} } },
      {
        api: 'delta',
        nodeId: 'waypoint~10.200.1.201~waypoint.demo~x',
        peer: '10.200.1.201:39148',
        view: 'waypoint:demo/waypoint',
        types: { cds: {}, eds: {}, lds: {}, rds: {} },
      },
    ]);
    expect(now.map((x) => x.id)).toEqual(['node-proxy/node-proxy~node2', 'waypoint/demo/waypoint']);
  });
});

describe('edges from the metrics', () => {
  const labels = (extra: Record<string, string>) => ({
    source_workload: 'web',
    source_workload_namespace: 'shop',
    source_principal: 'spiffe://cluster.local/ns/shop/sa/web',
    destination_workload: 'db-0',
    destination_workload_namespace: 'shop',
    destination_principal: 'spiffe://cluster.local/ns/shop/sa/db',
    destination_service: 'db.shop.svc.cluster.local',
    destination_service_name: 'db',
    connection_security_policy: 'mutual_tls',
    response_flags: '-',
    ...extra,
  });
  it('names the destination by Service, workload or address', () => {
    expect(destinationNode(labels({}))).toBe('svc:shop/db');
    expect(destinationNode(labels({ destination_service_name: 'unknown', destination_service: '10.0.0.9' }))).toBe('wl:shop/db-0');
    expect(destinationNode({ destination_service: '10.0.0.9' })).toBe('addr:10.0.0.9');
  });

  it('a connection both node proxies report counts once; the waypoint’s requests win; denials and rates', () => {
    const edges = new Map<string, EdgeTotals>();
    addSamples(edges, [
      { name: 'istio_tcp_connections_opened_total', labels: labels({ reporter: 'source' }), value: 10 },
      { name: 'istio_tcp_connections_opened_total', labels: labels({ reporter: 'destination' }), value: 10 },
      { name: 'istio_tcp_connections_closed_total', labels: labels({ reporter: 'destination', response_flags: 'DENY' }), value: 2 },
      { name: 'istio_tcp_received_bytes_total', labels: labels({ reporter: 'destination' }), value: 500 },
    ]);
    const v1 = edgeViews(edges, new Map(), 0).get('wl:shop/web->svc:shop/db')!;
    expect(v1).toMatchObject({ reporter: 'destination', connections: 10, denied: 2, bytesIn: 500, mtlsRatio: 1, rate: 0 });
    const later = new Map<string, EdgeTotals>();
    addSamples(later, [{ name: 'istio_tcp_connections_opened_total', labels: labels({ reporter: 'destination' }), value: 30 }]);
    addSamples(later, [{ name: 'istio_requests_total', labels: labels({ reporter: 'waypoint', response_code: '403' }), value: 4 }], 'shop/wp');
    const v2 = edgeViews(later, new Map([[v1.id, v1]]), 5).get(v1.id)!;
    expect(v2).toMatchObject({ reporter: 'waypoint', requests: 4, denied: 4, waypoints: ['shop/wp'] });
  });
});
