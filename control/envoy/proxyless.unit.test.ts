import { describe, expect, it } from 'vitest';
import { RouteConfiguration } from '../../api/gen/envoy/config/route/v3/route';
import { forProxylessClients } from './proxyless';

const header = (name: string, matchPattern: unknown, ignoreCase = false) => ({
  name,
  headerMatchSpecifier: { $case: 'stringMatch', value: { matchPattern, ignoreCase } },
});
const rc = (routes: unknown[]) => RouteConfiguration.fromPartial({ name: 'r', virtualHosts: [{ name: 'vh', domains: ['*'], routes }] } as never);
const toCluster = { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: 'c' } } };
const routesOf = (r: RouteConfiguration) => r.virtualHosts[0]!.routes;

describe('routes for proxyless gRPC clients (every gRPC version)', () => {
  it('returns the same object when nothing needs rewriting', () => {
    const r = rc([{ match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: toCluster }]);
    expect(forProxylessClients(r)).toBe(r);
  });

  it('turns string_match into the original one-of fields; case-insensitive ones into a (?i) RE2 full match', () => {
    const r = rc([
      {
        match: {
          pathSpecifier: { $case: 'prefix', value: '/' },
          headers: [
            header('a', { $case: 'exact', value: 'x' }),
            header('b', { $case: 'prefix', value: 'p' }),
            header('c', { $case: 'safeRegex', value: { regex: 'v[0-9]' } }),
            header('d', { $case: 'exact', value: 'a.b' }, true),
          ],
        },
        action: toCluster,
      },
    ]);
    const out = forProxylessClients(r);
    expect(out).not.toBe(r);
    expect(forProxylessClients(r)).toBe(out); // cached per object
    const specs = routesOf(out)[0]!.match!.headers.map((h) => h.headerMatchSpecifier);
    expect(specs[0]).toEqual({ $case: 'exactMatch', value: 'x' });
    expect(specs[1]).toEqual({ $case: 'prefixMatch', value: 'p' });
    expect(specs[2]).toMatchObject({ $case: 'safeRegexMatch', value: { regex: 'v[0-9]' } });
    expect(specs[3]).toMatchObject({ $case: 'safeRegexMatch', value: { regex: '(?i)a\\.b' } });
    // The Envoy form is untouched.
    expect(routesOf(r)[0]!.match!.headers[0]!.headerMatchSpecifier?.$case).toBe('stringMatch');
    // It still encodes (the publisher serves it as bytes).
    expect(RouteConfiguration.decode(RouteConfiguration.encode(out).finish()).virtualHosts[0]!.routes[0]!.match!.headers[0]!.headerMatchSpecifier).toEqual({
      $case: 'exactMatch',
      value: 'x',
    });
  });

  it('decides :method for gRPC (always POST): POST matchers are dropped, routes for other methods removed', () => {
    const r = rc([
      { match: { pathSpecifier: { $case: 'prefix', value: '/' }, headers: [header(':method', { $case: 'exact', value: 'GET' })] }, action: toCluster },
      {
        match: {
          pathSpecifier: { $case: 'prefix', value: '/' },
          headers: [header(':method', { $case: 'exact', value: 'POST' }), header('x', { $case: 'exact', value: '1' })],
        },
        action: toCluster,
      },
      { match: { pathSpecifier: { $case: 'prefix', value: '/' } }, action: toCluster },
    ]);
    const routes = routesOf(forProxylessClients(r));
    expect(routes).toHaveLength(2);
    expect(routes[0]!.match!.headers).toEqual([expect.objectContaining({ name: 'x', headerMatchSpecifier: { $case: 'exactMatch', value: '1' } })]);
    expect(routes[1]).toBe(routesOf(r)[2]);
  });

  it('sets total_weight to the weights sum so old clients accept any split', () => {
    const r = rc([
      {
        match: { pathSpecifier: { $case: 'prefix', value: '/' } },
        action: {
          $case: 'route',
          value: {
            clusterSpecifier: {
              $case: 'weightedClusters',
              value: {
                clusters: [
                  { name: 'a', weight: 1 },
                  { name: 'b', weight: 2 },
                ],
              },
            },
          },
        },
      },
    ]);
    const action = routesOf(forProxylessClients(r))[0]!.action;
    expect(
      action?.$case === 'route' && action.value.clusterSpecifier?.$case === 'weightedClusters' ? action.value.clusterSpecifier.value.totalWeight : undefined,
    ).toBe(3);
  });
});
