// The waypoint end to end on loopback: resources served by the real delta ADS server, real HTTP/1.1
// and h2c clients and backends.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { LocalRateLimit } from '../../api/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit';
import { RBAC } from '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import { RBAC_Action } from '../../api/gen/envoy/config/rbac/v3/rbac';
import { pack } from '../../waypoint/config/typed';
import type { Waypoint } from '../../waypoint/waypoint';
import { until } from '../support/until';
import { backend, ControlPlane, freePort, startPlainWaypoint, type Backend } from './fixture';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function call(port: number, path: string, o: { host?: string; method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: { host: o.host ?? 'web', ...o.headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    r.on('error', reject);
    r.end(o.body);
  });
}

const prefix = (p: string) => ({ pathSpecifier: { $case: 'prefix' as const, value: p } });
const toCluster = (c: string, extra: object = {}) => ({
  $case: 'route' as const,
  value: { clusterSpecifier: { $case: 'cluster' as const, value: c }, ...extra },
});

describe('waypoint routing (HTTP/1.1 and h2c, delta ADS from the real xDS server)', () => {
  const cp = new ControlPlane();
  let wp: Waypoint;
  let port: number;
  let a: Backend, b: Backend, mirror: Backend, flaky: Backend, slow: Backend, bad: Backend;
  let flakyCount = 0;

  beforeAll(async () => {
    await cp.start();
    a = await backend('a');
    b = await backend('b');
    mirror = await backend('mirror');
    flaky = await backend('flaky', (_s, res) => {
      if (flakyCount++ % 3 !== 2) {
        res.writeHead(503);
        res.end('flaky');
        return true;
      }
      return false;
    });
    slow = await backend('slow', (_s, res) => {
      setTimeout(() => {
        res.writeHead(200);
        res.end('slow');
      }, 1500);
      return true;
    });
    bad = await backend('bad', (_s, res) => {
      res.writeHead(500);
      res.end('bad');
      return true;
    });
    port = await freePort();
    const rbac = RBAC.fromPartial({
      rules: {
        action: RBAC_Action.DENY,
        policies: {
          'deny-delete-admin': {
            permissions: [
              {
                rule: {
                  $case: 'andRules',
                  value: {
                    rules: [
                      { rule: { $case: 'header', value: { name: ':method', headerMatchSpecifier: { $case: 'exactMatch', value: 'DELETE' } } } },
                      { rule: { $case: 'urlPath', value: { rule: { $case: 'path', value: { matchPattern: { $case: 'prefix', value: '/admin' } } } } } },
                    ],
                  },
                },
              },
            ],
            principals: [{ identifier: { $case: 'any', value: true } }],
          },
        },
      },
    });
    cp.listener('http-listener', port, 'web-routes', [
      { name: 'envoy.filters.http.rbac', typedConfig: pack(RBAC, rbac) },
      { name: 'envoy.filters.http.local_ratelimit', typedConfig: pack(LocalRateLimit, LocalRateLimit.fromPartial({ statPrefix: 'http' })) },
      { name: 'envoy.filters.http.fault', typedConfig: pack(HTTPFault, HTTPFault.fromPartial({})) },
    ]);
    for (const [n, be] of [
      ['a', a],
      ['b', b],
      ['mirror', mirror],
      ['flaky', flaky],
      ['slow', slow],
    ] as const)
      cp.cluster(n, [be.port]);
    cp.cluster('outlier', [bad.port, a.port], {
      outlierDetection: { consecutive5xx: 2, baseEjectionTime: { seconds: 30, nanos: 0 }, maxEjectionPercent: 50, enforcingConsecutive5xx: 100 },
    });
    const rl = LocalRateLimit.fromPartial({
      statPrefix: 'rl',
      tokenBucket: { maxTokens: 3, tokensPerFill: 1, fillInterval: { seconds: 60, nanos: 0 } },
      filterEnabled: { defaultValue: { numerator: 100 } },
      filterEnforced: { defaultValue: { numerator: 100 } },
    });
    const abort = HTTPFault.fromPartial({ abort: { errorType: { $case: 'httpStatus', value: 418 }, percentage: { numerator: 100 } } });
    cp.routes({
      name: 'web-routes',
      virtualHosts: [
        {
          name: 'web',
          domains: ['web', 'web:80'],
          responseHeadersToAdd: [{ header: { key: 'x-vhost', value: 'web' } }],
          routes: [
            {
              match: prefix('/split'),
              action: {
                $case: 'route',
                value: {
                  clusterSpecifier: {
                    $case: 'weightedClusters',
                    value: {
                      clusters: [
                        { name: 'a', weight: 90 },
                        { name: 'b', weight: 10 },
                      ],
                    },
                  },
                },
              },
            },
            {
              match: prefix('/retry'),
              action: toCluster('flaky', { retryPolicy: { retryOn: '5xx', numRetries: 3, retryBackOff: { baseInterval: { seconds: 0, nanos: 5e6 } } } }),
            },
            { match: prefix('/noretry'), action: toCluster('flaky') },
            { match: prefix('/slow'), action: toCluster('slow', { timeout: { seconds: 0, nanos: 300e6 } }) },
            {
              match: prefix('/old'),
              action: {
                $case: 'redirect',
                value: { hostRedirect: 'new.example', pathRewriteSpecifier: { $case: 'prefixRewrite', value: '/new' }, responseCode: 1 },
              },
            },
            { match: prefix('/mirrored'), action: toCluster('a', { requestMirrorPolicies: [{ cluster: 'mirror' }] }) },
            {
              match: prefix('/headers'),
              action: toCluster('a'),
              requestHeadersToAdd: [{ header: { key: 'x-added', value: 'yes' } }],
              requestHeadersToRemove: ['x-secret'],
              responseHeadersToAdd: [{ header: { key: 'x-route', value: 'headers' } }],
              responseHeadersToRemove: ['x-backend'],
            },
            {
              match: prefix('/api/'),
              action: toCluster('a', { prefixRewrite: '/v2/', hostRewriteSpecifier: { $case: 'hostRewriteLiteral', value: 'backend.internal' } }),
            },
            { match: prefix('/fault'), action: toCluster('a'), typedPerFilterConfig: { 'envoy.filters.http.fault': pack(HTTPFault, abort) } },
            { match: prefix('/limited'), action: toCluster('a'), typedPerFilterConfig: { 'envoy.filters.http.local_ratelimit': pack(LocalRateLimit, rl) } },
            { match: prefix('/outlier'), action: toCluster('outlier') },
            { match: prefix('/echo'), action: toCluster('echo') },
            {
              match: prefix('/direct'),
              action: { $case: 'directResponse', value: { status: 202, body: { specifier: { $case: 'inlineString', value: 'direct' } } } },
            },
            { match: prefix('/'), action: toCluster('a') },
          ],
        },
      ],
    });
    wp = await startPlainWaypoint(cp.address, [port]);
  }, 20_000);

  afterAll(async () => {
    await wp?.stop();
    await cp.stop();
    for (const be of [a, b, mirror, flaky, slow, bad]) await be?.close();
  });

  it('splits 90/10 within tolerance', async () => {
    const counts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 400; i++) counts[(await call(port, '/split')).body.toString()]!++;
    expect(counts.a! + counts.b!).toBe(400);
    // binomial(400, 0.1): mean 40, sd 6; 5 sd either side
    expect(counts.b).toBeGreaterThan(10);
    expect(counts.b).toBeLessThan(70);
  });

  it('retries a flaky backend into success; without a retry policy the error shows', async () => {
    flakyCount = 0;
    const r = await call(port, '/retry');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('flaky');
    flakyCount = 0;
    expect((await call(port, '/noretry')).status).toBe(503);
  });

  it('answers 504 when the route timeout fires', async () => {
    const t0 = Date.now();
    const r = await call(port, '/slow');
    expect(r.status).toBe(504);
    expect(r.body.toString()).toBe('upstream request timeout');
    expect(Date.now() - t0).toBeLessThan(1200);
  });

  it('redirects with status and location', async () => {
    const r = await call(port, '/old/page?x=1', { host: 'web:80' });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('http://new.example/new/page?x=1'); // the scheme's default port is dropped, as Envoy does
  });

  it('mirrors to the shadow cluster with the -shadow host', async () => {
    const before = mirror.seen.length;
    const r = await call(port, '/mirrored', { method: 'POST', body: Buffer.from('copy me') });
    expect(r.body.toString()).toBe('a');
    await until('the mirrored request', () => mirror.seen.length > before);
    const m = mirror.seen[mirror.seen.length - 1]!;
    expect(m.headers.host).toBe('web-shadow');
    expect(m.body.toString()).toBe('copy me');
  });

  it('adds and removes request and response headers in Envoy order', async () => {
    const r = await call(port, '/headers', { headers: { 'x-secret': 's3', 'x-keep': 'k' } });
    const got = a.seen[a.seen.length - 1]!;
    expect(got.headers['x-added']).toBe('yes');
    expect(got.headers['x-secret']).toBeUndefined();
    expect(got.headers['x-keep']).toBe('k');
    expect(got.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(r.headers['x-route']).toBe('headers');
    expect(r.headers['x-vhost']).toBe('web');
    expect(r.headers['x-backend']).toBeUndefined();
  });

  it('rewrites prefix and host', async () => {
    await call(port, '/api/users?id=7');
    const got = a.seen[a.seen.length - 1]!;
    expect(got.url).toBe('/v2/users?id=7');
    expect(got.headers.host).toBe('backend.internal');
  });

  it('aborts with the fault status and serves direct responses', async () => {
    expect((await call(port, '/fault')).status).toBe(418);
    const d = await call(port, '/direct');
    expect([d.status, d.body.toString()]).toEqual([202, 'direct']);
  });

  it('rate limits with 429 after the bucket is empty', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await call(port, '/limited')).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it('ejects an endpoint after consecutive 5xx', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 12; i++) bodies.push((await call(port, '/outlier')).body.toString());
    // round robin: bad, a, bad (ejected now), then only a
    expect(bodies.filter((x) => x === 'bad').length).toBe(2);
    expect(bodies.slice(4).every((x) => x === 'a')).toBe(true);
  });

  it('denies by RBAC (method + path) with 403 and counts it', async () => {
    const r = await call(port, '/admin/x', { method: 'DELETE' });
    expect(r.status).toBe(403);
    expect(r.body.toString()).toBe('RBAC: access denied');
    expect((await call(port, '/admin/x', { method: 'GET' })).status).toBe(200);
    const m = await wp.metrics.registry.getSingleMetricAsString('nodemesh_waypoint_rbac_denied_total');
    expect(m).toMatch(/policy="deny-delete-admin"} 1/);
  });

  it('carries large bodies intact (sha256) over HTTP/1.1 and h2c', async () => {
    const echo = await backend('echo', (s, res) => {
      res.writeHead(200);
      res.end(createHash('sha256').update(s.body).digest('hex') + ' ' + s.body.length);
      return true;
    });
    try {
      cp.cluster('echo', [echo.port]);
      await until('the echo cluster to answer 200', async () => (await call(port, '/echo')).status === 200);
      const data = randomBytes(8 * 1024 * 1024 + 13);
      const want = createHash('sha256').update(data).digest('hex') + ' ' + data.length;
      expect((await call(port, '/echo', { method: 'POST', body: data })).body.toString()).toBe(want);
      const s = h2connect(`http://127.0.0.1:${port}`);
      try {
        const body = await new Promise<string>((resolve, reject) => {
          const st = s.request({ ':method': 'POST', ':path': '/echo', ':authority': 'web' });
          const parts: Buffer[] = [];
          st.on('data', (c: Buffer) => parts.push(c));
          st.on('end', () => resolve(Buffer.concat(parts).toString()));
          st.on('error', reject);
          st.end(data);
        });
        expect(body).toBe(want);
      } finally {
        s.close();
      }
    } finally {
      await echo.close();
    }
  });

  it('answers 404 for no route and 400 for a malformed request, and keeps serving', async () => {
    expect((await call(port, '/', { host: 'unknown-host' })).status).toBe(404);
    const { connect } = await import('node:net');
    const raw = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('GARBAGE\r\n\r\n'));
      let out = '';
      s.on('data', (c) => (out += c.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
    expect(raw).toMatch(/^HTTP\/1.1 400/);
    expect((await call(port, '/')).status).toBe(200);
  });

  it('records istio_requests_total with the standard labels', async () => {
    const text = await wp.metrics.registry.getSingleMetricAsString('istio_requests_total');
    expect(text).toMatch(/reporter="waypoint"/);
    expect(text).toMatch(/response_code="403".*response_flags="-"|response_flags="-".*response_code="403"/);
    expect(text).toMatch(/response_flags="UT"/);
    expect(text).toMatch(/connection_security_policy="none"/);
  });

  it('NACKs a RouteConfiguration with a bad regex and keeps serving the last good routes', async () => {
    cp.routes({
      name: 'web-routes',
      virtualHosts: [
        { name: 'web', domains: ['web'], routes: [{ match: { pathSpecifier: { $case: 'safeRegex', value: { regex: '/(?<=x)' } } }, action: toCluster('b') }] },
      ],
    });
    await until('a NACK', () => wp.nacks.length > 0);
    expect(wp.nacks[0]!.detail).toMatch(/web-routes: virtual_hosts\[0\] \(web\): routes\[0\]: regex .* look-around/);
    expect((await call(port, '/split')).status).toBe(200);
    expect((await call(port, '/direct')).status).toBe(202);
  });
});
