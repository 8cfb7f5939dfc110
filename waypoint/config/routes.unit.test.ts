import { describe, expect, it } from 'vitest';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { RedirectAction_RedirectResponseCode } from '../../api/gen/envoy/config/route/v3/route_components';
import { HeaderValueOption_HeaderAppendAction } from '../../api/gen/envoy/config/core/v3/base';
import { HTTPFault } from '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import { ConfigError } from './errors';
import { applyMutations } from './headers';
import { requestView } from './request';
import { backoffMs, compileRouteConfiguration, matchRoute, redirectLocation, type ForwardAction, type RedirectResult } from './routes';
import { pack } from './typed';

const req = (path: string, authority = 'web', headers: Record<string, string> = {}, method = 'GET') => requestView(method, path, authority, 'http', headers);

function table(vhosts: unknown) {
  return compileRouteConfiguration(RouteConfiguration.fromPartial({ name: 'rc', virtualHosts: vhosts as never }));
}
const to = (cluster: string) => ({ $case: 'route' as const, value: { clusterSpecifier: { $case: 'cluster' as const, value: cluster } } });
const clusterOf = (t: ReturnType<typeof table>, r: ReturnType<typeof req>) => (matchRoute(t, r)?.route.action as ForwardAction | undefined)?.cluster;

describe('virtual host selection', () => {
  const t = table([
    { name: 'exact', domains: ['web', 'web:8080'], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('exact') }] },
    { name: 'suffix', domains: ['*.example.com'], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('suffix') }] },
    { name: 'longer-suffix', domains: ['*.api.example.com'], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('longer') }] },
    { name: 'prefix', domains: ['foo.*'], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('prefix') }] },
    { name: 'any', domains: ['*'], routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('any') }] },
  ]);
  it('prefers exact, then the longest suffix wildcard, then prefix wildcards, then *', () => {
    expect(clusterOf(t, req('/', 'WEB'))).toBe('exact');
    expect(clusterOf(t, req('/', 'web:8080'))).toBe('exact');
    expect(clusterOf(t, req('/', 'web:9999'))).toBe('exact'); // port stripped on a miss
    expect(clusterOf(t, req('/', 'a.example.com'))).toBe('suffix');
    expect(clusterOf(t, req('/', 'x.api.example.com'))).toBe('longer');
    expect(clusterOf(t, req('/', 'foo.bar'))).toBe('prefix');
    expect(clusterOf(t, req('/', 'other'))).toBe('any');
    expect(clusterOf(t, req('/', '.example.com'))).toBe('any'); // a wildcard never matches the empty string
  });
  it("selects by each request's own authority when consecutive requests repeat or alternate them", () => {
    const seq = ['web', 'web', 'other', 'other', 'a.example.com', 'web', 'other', 'web:9999', 'foo.bar', 'foo.bar', 'web'];
    expect(seq.map((a) => clusterOf(t, req('/', a)))).toEqual(['exact', 'exact', 'any', 'any', 'suffix', 'exact', 'any', 'exact', 'prefix', 'prefix', 'exact']);
  });
  it('refuses a domain in two virtual hosts', () => {
    expect(() =>
      table([
        { name: 'a', domains: ['x'] },
        { name: 'b', domains: ['x'] },
      ]),
    ).toThrow(/more than one virtual host/);
  });
});

describe('route matching', () => {
  const t = table([
    {
      name: 'vh',
      domains: ['*'],
      routes: [
        { match: { pathSpecifier: { $case: 'path', value: '/exact' } }, action: to('path') },
        { match: { pathSpecifier: { $case: 'pathSeparatedPrefix', value: '/api' } }, action: to('sep') },
        { match: { pathSpecifier: { $case: 'safeRegex', value: { regex: '/items/[0-9]+' } } }, action: to('regex') },
        {
          match: { pathSpecifier: { $case: 'prefix', value: '/h' }, headers: [{ name: 'x-v', headerMatchSpecifier: { $case: 'exactMatch', value: '2' } }] },
          action: to('hdr-exact'),
        },
        {
          match: { pathSpecifier: { $case: 'prefix', value: '/h' }, headers: [{ name: 'x-v', headerMatchSpecifier: { $case: 'prefixMatch', value: 'be' } }] },
          action: to('hdr-prefix'),
        },
        {
          match: { pathSpecifier: { $case: 'prefix', value: '/h' }, headers: [{ name: 'x-v', headerMatchSpecifier: { $case: 'suffixMatch', value: 'ta' } }] },
          action: to('hdr-suffix'),
        },
        {
          match: { pathSpecifier: { $case: 'prefix', value: '/h' }, headers: [{ name: 'x-v', headerMatchSpecifier: { $case: 'containsMatch', value: 'mm' } }] },
          action: to('hdr-contains'),
        },
        {
          match: {
            pathSpecifier: { $case: 'prefix', value: '/h' },
            headers: [{ name: 'x-v', headerMatchSpecifier: { $case: 'safeRegexMatch', value: { regex: 'v[0-9]' } } }],
          },
          action: to('hdr-regex'),
        },
        {
          match: {
            pathSpecifier: { $case: 'prefix', value: '/h' },
            headers: [{ name: 'x-debug', headerMatchSpecifier: { $case: 'presentMatch', value: true } }],
          },
          action: to('hdr-present'),
        },
        {
          match: {
            pathSpecifier: { $case: 'prefix', value: '/h' },
            headers: [{ name: 'x-v', headerMatchSpecifier: { $case: 'exactMatch', value: 'x' }, invertMatch: true }],
          },
          action: to('hdr-invert'),
        },
        {
          match: {
            pathSpecifier: { $case: 'prefix', value: '/q' },
            queryParameters: [
              { name: 'env', queryParameterMatchSpecifier: { $case: 'stringMatch', value: { matchPattern: { $case: 'exact', value: 'canary' } } } },
            ],
          },
          action: to('query'),
        },
        { match: { pathSpecifier: { $case: 'prefix', value: '/CI' }, caseSensitive: false }, action: to('ci') },
        {
          match: {
            pathSpecifier: { $case: 'prefix', value: '/m' },
            headers: [{ name: ':method', headerMatchSpecifier: { $case: 'exactMatch', value: 'POST' } }],
          },
          action: to('post'),
        },
        { match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('default') },
        { match: { pathSpecifier: { $case: 'prefix', value: '/never' } }, action: to('shadowed') },
      ],
    },
  ]);
  it('takes the first matching route, in order', () => {
    expect(clusterOf(t, req('/exact'))).toBe('path');
    expect(clusterOf(t, req('/exact?x=1'))).toBe('path');
    expect(clusterOf(t, req('/exactly'))).toBe('default');
    expect(clusterOf(t, req('/api'))).toBe('sep');
    expect(clusterOf(t, req('/api/v1'))).toBe('sep');
    expect(clusterOf(t, req('/apis'))).toBe('default');
    expect(clusterOf(t, req('/items/42'))).toBe('regex');
    expect(clusterOf(t, req('/items/42x'))).toBe('default'); // regex matches the whole path
    expect(clusterOf(t, req('/never'))).toBe('default');
  });
  it('matches headers exact/prefix/suffix/contains/regex/present/invert', () => {
    expect(clusterOf(t, req('/h', 'w', { 'x-v': '2' }))).toBe('hdr-exact');
    expect(clusterOf(t, req('/h', 'w', { 'x-v': 'beta' }))).toBe('hdr-prefix');
    expect(clusterOf(t, req('/h', 'w', { 'x-v': 'delta' }))).toBe('hdr-suffix');
    expect(clusterOf(t, req('/h', 'w', { 'x-v': 'gimme' }))).toBe('hdr-contains');
    expect(clusterOf(t, req('/h', 'w', { 'x-v': 'v7' }))).toBe('hdr-regex');
    expect(clusterOf(t, req('/h', 'w', { 'x-debug': '' }))).toBe('hdr-present');
    expect(clusterOf(t, req('/h', 'w', { 'x-v': 'y' }))).toBe('hdr-invert');
    expect(clusterOf(t, req('/h', 'w', { 'x-v': 'x' }))).toBe('default');
    expect(clusterOf(t, req('/h', 'w', {}))).toBe('default'); // inverted value matcher still needs the header
  });
  it('matches query parameters, case-insensitive prefixes and :method', () => {
    expect(clusterOf(t, req('/q?a=b&env=canary'))).toBe('query');
    expect(clusterOf(t, req('/q?env=prod'))).toBe('default');
    expect(clusterOf(t, req('/ci/x'))).toBe('ci');
    expect(clusterOf(t, req('/m', 'w', {}, 'POST'))).toBe('post');
    expect(clusterOf(t, req('/m', 'w', {}, 'GET'))).toBe('default');
  });
  it('refuses regexes RE2 would refuse, with the field named', () => {
    const bad = () =>
      table([
        { name: 'vh', domains: ['*'], routes: [{ name: 'r0', match: { pathSpecifier: { $case: 'safeRegex', value: { regex: '/(?=x)' } } }, action: to('c') }] },
      ]);
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/virtual_hosts\[0\] \(vh\): routes\[0\] \(r0\): regex .* look-around/);
    expect(() =>
      table([{ name: 'vh', domains: ['*'], routes: [{ match: { pathSpecifier: { $case: 'safeRegex', value: { regex: '/(' } } }, action: to('c') }] }]),
    ).toThrow(/does not compile/);
  });
});

describe('actions', () => {
  it('weighted clusters carry weights and refuse a wrong total', () => {
    const t = table([
      {
        name: 'vh',
        domains: ['*'],
        routes: [
          {
            match: { pathSpecifier: { $case: 'prefix', value: '/' } },
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
        ],
      },
    ]);
    const a = matchRoute(t, req('/'))!.route.action as ForwardAction;
    expect(a.weighted!.total).toBe(100);
    expect(a.weighted!.targets.map((x) => [x.cluster, x.weight])).toEqual([
      ['a', 90],
      ['b', 10],
    ]);
    expect(() =>
      table([
        {
          name: 'vh',
          domains: ['*'],
          routes: [
            {
              match: { pathSpecifier: { $case: 'prefix', value: '/' } },
              action: {
                $case: 'route',
                value: { clusterSpecifier: { $case: 'weightedClusters', value: { totalWeight: 50, clusters: [{ name: 'a', weight: 90 }] } } },
              },
            },
          ],
        },
      ]),
    ).toThrow(/total_weight/);
  });
  it('computes redirect locations as Envoy does', () => {
    const mk = (redirect: object, prefix = '/') =>
      table([
        {
          name: 'vh',
          domains: ['*'],
          routes: [{ match: { pathSpecifier: { $case: 'prefix', value: prefix } }, action: { $case: 'redirect', value: redirect } }],
        },
      ]);
    const loc = (t: ReturnType<typeof mk>, r: ReturnType<typeof req>) => {
      const m = matchRoute(t, r)!;
      const a = m.route.action as RedirectResult;
      return [a.status, redirectLocation(a, r, m.route.matchedPrefix)];
    };
    expect(
      loc(mk({ hostRedirect: 'new.example.com', responseCode: RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT }), req('/a?b=1', 'old:8080')),
    ).toEqual([308, 'http://new.example.com:8080/a?b=1']);
    expect(loc(mk({ schemeRewriteSpecifier: { $case: 'httpsRedirect', value: true } }), req('/x', 'web'))).toEqual([301, 'https://web/x']);
    expect(loc(mk({ pathRewriteSpecifier: { $case: 'prefixRewrite', value: '/v2/' }, responseCode: 1 }, '/v1/'), req('/v1/users?id=3', 'web'))).toEqual([
      302,
      'http://web/v2/users?id=3',
    ]);
    expect(
      loc(mk({ pathRewriteSpecifier: { $case: 'pathRedirect', value: '/login' }, stripQuery: true, portRedirect: 9000 }), req('/p?q=1', 'web:80')),
    ).toEqual([301, 'http://web:9000/login']);
    expect(
      loc(
        mk({ pathRewriteSpecifier: { $case: 'regexRewrite', value: { pattern: { regex: '^/old/(.*)$' }, substitution: '/new/\\1' } } }),
        req('/old/a/b', 'web'),
      ),
    ).toEqual([301, 'http://web/new/a/b']);
  });
  it('compiles a retry policy and a bounded jittered back-off', () => {
    const t = table([
      {
        name: 'vh',
        domains: ['*'],
        retryPolicy: { retryOn: '5xx', numRetries: 2 },
        routes: [
          {
            match: { pathSpecifier: { $case: 'prefix', value: '/' } },
            action: {
              $case: 'route',
              value: {
                clusterSpecifier: { $case: 'cluster', value: 'c' },
                retryPolicy: {
                  retryOn: 'gateway-error,retriable-status-codes',
                  numRetries: 3,
                  retriableStatusCodes: [409],
                  retryBackOff: { baseInterval: { seconds: 0, nanos: 100e6 }, maxInterval: { seconds: 0, nanos: 250e6 } },
                },
              },
            },
          },
        ],
      },
    ]);
    const r = (matchRoute(t, req('/'))!.route.action as ForwardAction).retry!;
    expect([...r.on]).toEqual(['gateway-error', 'retriable-status-codes']);
    expect(r.numRetries).toBe(3);
    expect(r.retriableStatusCodes.has(409)).toBe(true);
    expect(backoffMs(r, 1, () => 0.999999)).toBe(100);
    expect(backoffMs(r, 2, () => 0.999999)).toBe(250); // 300 capped at max
    expect(backoffMs(r, 5, () => 0)).toBe(0);
    expect(() => table([{ name: 'vh', domains: ['*'], retryPolicy: { retryOn: 'sometimes' }, routes: [] }])).toThrow(/retry_on "sometimes"/);
  });
  it('defaults the route timeout to 15 s and honours 0 (disabled)', () => {
    const t = table([
      {
        name: 'vh',
        domains: ['*'],
        routes: [
          { match: { pathSpecifier: { $case: 'prefix', value: '/a' } }, action: to('c') },
          {
            match: { pathSpecifier: { $case: 'prefix', value: '/b' } },
            action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'c' }, timeout: { seconds: 0, nanos: 0 } } },
          },
        ],
      },
    ]);
    expect((matchRoute(t, req('/a'))!.route.action as ForwardAction).timeoutMs).toBe(15_000);
    expect((matchRoute(t, req('/b'))!.route.action as ForwardAction).timeoutMs).toBe(0);
  });
  it('reads per-route fault config and refuses unknown filters', () => {
    const fault = pack(HTTPFault, HTTPFault.fromPartial({ abort: { errorType: { $case: 'httpStatus', value: 503 }, percentage: { numerator: 100 } } }));
    const t = table([
      {
        name: 'vh',
        domains: ['*'],
        routes: [{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: to('c'), typedPerFilterConfig: { 'envoy.filters.http.fault': fault } }],
      },
    ]);
    expect(matchRoute(t, req('/'))!.route.perFilter.fault?.abort).toEqual({ httpStatus: 503, fraction: 1 });
    expect(() =>
      table([
        {
          name: 'vh',
          domains: ['*'],
          routes: [
            {
              match: { pathSpecifier: { $case: 'prefix', value: '/' } },
              action: to('c'),
              typedPerFilterConfig: { 'envoy.filters.http.lua': { ...fault, typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute' } },
            },
          ],
        },
      ]),
    ).toThrow(/no filter envoy.filters.http.lua/);
  });
});

describe('header mutations', () => {
  it('applies removals then additions per level, most specific level first, with append actions', () => {
    const t = table([
      {
        name: 'vh',
        domains: ['*'],
        requestHeadersToAdd: [{ header: { key: 'x-level', value: 'vhost' }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD }],
        routes: [
          {
            match: { pathSpecifier: { $case: 'prefix', value: '/' } },
            action: to('c'),
            requestHeadersToRemove: ['x-secret'],
            requestHeadersToAdd: [
              { header: { key: 'x-level', value: 'route' }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD },
              { header: { key: 'x-multi', value: 'b' } },
              { header: { key: 'x-once', value: 'new' }, appendAction: HeaderValueOption_HeaderAppendAction.ADD_IF_ABSENT },
              { header: { key: 'x-only-if', value: 'set' }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS },
            ],
          },
        ],
      },
    ]);
    const m = matchRoute(t, req('/'))!;
    const h: Record<string, string | string[] | undefined> = { 'x-secret': 's', 'x-multi': 'a', 'x-once': 'old' };
    applyMutations(h, [m.route.requestHeaders, m.virtualHost.requestHeaders, t.requestHeaders]);
    expect(h).toEqual({ 'x-level': 'vhost', 'x-multi': ['a', 'b'], 'x-once': 'old' });
  });
  it('refuses to touch pseudo-headers', () => {
    expect(() => table([{ name: 'vh', domains: ['*'], requestHeadersToAdd: [{ header: { key: ':path', value: '/' } }], routes: [] }])).toThrow(
      /:path cannot be set/,
    );
  });
});
