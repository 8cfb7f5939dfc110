import { describe, expect, it } from 'vitest';
import { validateResource } from '../../control/resources/validate';
import { checkWaypointFor, namespaceLabelsFor, waypointGateway, waypointRows } from './model';

describe('waypoint operations (pure)', () => {
  it('apply writes a waypoint Gateway the control plane accepts', () => {
    const g = waypointGateway('waypoint', 'shop', 'all');
    expect(() => validateResource(g)).not.toThrow();
    expect(g).toMatchObject({
      kind: 'Gateway',
      metadata: { labels: { 'nodemesh.io/waypoint-for': 'all' } },
      spec: { gatewayClassName: 'nodemesh-waypoint', listeners: [{ port: 15008, protocol: 'HBONE' }] },
    });
    expect(checkWaypointFor(undefined)).toBe('service');
    expect(() => checkWaypointFor('pods')).toThrow(/--for must be one of service, workload, all/);
  });

  it('enrolling sets use-waypoint; delete removes it only when it names this waypoint', () => {
    expect(namespaceLabelsFor({ a: 'b' }, 'wp', true)).toEqual({ a: 'b', 'nodemesh.io/use-waypoint': 'wp' });
    expect(namespaceLabelsFor({ 'nodemesh.io/use-waypoint': 'wp' }, 'wp', true)).toBeUndefined();
    expect(namespaceLabelsFor({ a: 'b', 'nodemesh.io/use-waypoint': 'wp' }, 'wp', false)).toEqual({ a: 'b' });
    expect(namespaceLabelsFor({ 'nodemesh.io/use-waypoint': 'other' }, 'wp', false)).toBeUndefined();
    expect(namespaceLabelsFor(undefined, 'wp', false)).toBeUndefined();
  });

  it('list shows where each waypoint runs, from the Workloads labelled with its gateway name', () => {
    const gws = [
      { metadata: { name: 'waypoint', namespace: 'shop', labels: { 'nodemesh.io/waypoint-for': 'service' } }, spec: { gatewayClassName: 'nodemesh-waypoint' } },
      { metadata: { name: 'idle', namespace: 'shop' }, spec: { gatewayClassName: 'nodemesh-waypoint' } },
      { metadata: { name: 'other', namespace: 'shop' }, spec: { gatewayClassName: 'istio' } },
    ];
    const wls = [
      {
        metadata: { name: 'wp-waypoint', namespace: 'shop', labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } },
        spec: { node: 'node2', addresses: ['10.200.2.201'], netnsPath: '/run/netns/x' },
      },
      {
        metadata: { name: 'same-name-other-ns', namespace: 'web', labels: { 'gateway.networking.k8s.io/gateway-name': 'idle' } },
        spec: { node: 'node1', addresses: ['10.200.1.9'] },
      },
    ];
    const rows = waypointRows(gws, wls, [{ metadata: { name: 'shop', labels: { 'nodemesh.io/use-waypoint': 'waypoint' } } }]);
    expect(rows.map((r) => [r.name, r.node, r.address, r.enrolled])).toEqual([
      ['idle', '-', '-', false],
      ['waypoint', 'node2', '10.200.2.201', true],
    ]);
    expect(rows[0]?.ready).toMatch(/not deployed/);
    expect(rows[1]?.netnsPath).toBe('/run/netns/x');
  });
});
