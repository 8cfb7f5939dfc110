// The --workers xDS relay (waypoint/relay.ts) with a real waypoint behind it, as a worker runs:
// the configuration the control plane sends reaches the waypoint through the relay and serves
// requests; a resource the waypoint could not compile is refused (NACK) by the relay itself, and
// the waypoint behind it keeps serving the last good configuration; a change after that arrives.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XdsRelay } from '../../waypoint/relay';
import type { Waypoint } from '../../waypoint/waypoint';
import { TYPE } from '../../waypoint/xds/resources';
import { until } from '../support/until';
import { backend, ControlPlane, freePort, quiet, startPlainWaypoint, type Backend } from './fixture';

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host: 'web' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

const routes = (cluster: string) => ({
  name: 'routes',
  virtualHosts: [
    {
      name: 'all',
      domains: ['*'],
      routes: [
        {
          match: { pathSpecifier: { $case: 'prefix' as const, value: '/' } },
          action: { $case: 'route' as const, value: { clusterSpecifier: { $case: 'cluster' as const, value: cluster } } },
        },
      ],
    },
  ],
});

describe('the --workers xDS relay', () => {
  const cp = new ControlPlane();
  let relay: XdsRelay;
  let wp: Waypoint;
  let one: Backend, two: Backend;
  let port: number;

  beforeAll(async () => {
    await cp.start();
    one = await backend('one');
    two = await backend('two');
    port = await freePort();
    cp.cluster('one', [one.port]);
    cp.cluster('two', [two.port]);
    cp.listener('http', port, 'routes');
    cp.routes(routes('one'));
    relay = new XdsRelay({ name: 'wp', namespace: 'default', control: cp.address, logger: quiet });
    await relay.start();
    await relay.whenSynced();
    wp = await startPlainWaypoint(relay.address, [port]);
  }, 20_000);

  afterAll(async () => {
    await wp?.stop();
    await relay?.stop();
    await cp.stop();
    await one?.close();
    await two?.close();
  });

  it('passes the configuration on: the waypoint behind it serves; the control plane sees one stream', async () => {
    expect(await get(port)).toEqual({ status: 200, body: 'one' });
    expect(cp.xdsStreams).toBe(1);
    expect(relay.workerStreams).toBe(1);
  });

  it('refuses what a waypoint could not compile, keeps the last good state behind it, and passes the next good change on', async () => {
    const nacks = relay.client.status().nacks;
    cp.raw(TYPE.route, 'routes', Uint8Array.from([0xff, 0xff, 0xff, 0xff]));
    await until('the relay refused the broken RouteConfiguration', () => relay.client.status().nacks > nacks, 5000);
    expect(wp.xds.status().nacks).toBe(0);
    expect(await get(port)).toEqual({ status: 200, body: 'one' });
    cp.routes(routes('two'));
    await until('the new route reached the waypoint', () => get(port).then((r) => r.body === 'two'), 5000);
  });
});
