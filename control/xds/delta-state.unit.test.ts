import { describe, expect, it } from 'vitest';
import { DeltaDiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { SharedCache } from './cache';
import { DeltaStreamState, type DeltaFrame } from './delta-state';
import { xdsResource } from './resource';

const T = 'type.googleapis.com/test.Thing';
const res = (name: string, body = name) => xdsResource(T, name, new TextEncoder().encode(body));

function cacheWith(...names: string[]): SharedCache {
  const cache = new SharedCache([T]);
  cache.replace(T, new Map(names.map((n) => [n, res(n)])));
  return cache;
}

function req(partial: Parameters<typeof DeltaDiscoveryRequest.fromPartial>[0]): DeltaDiscoveryRequest {
  return DeltaDiscoveryRequest.fromPartial({ typeUrl: T, node: { id: 'node-1' }, ...partial });
}

function stream(cache: SharedCache, options = {}): DeltaStreamState {
  const state = new DeltaStreamState(cache, '127.0.0.1:1', options);
  cache.onChange((c) => state.noteChange(c));
  return state;
}

const names = (frames: DeltaFrame[]) => frames.flatMap((f) => f.resources.map((r) => r.name)).sort();
const removed = (frames: DeltaFrame[]) => frames.flatMap((f) => f.removed).sort();

describe('DeltaStreamState', () => {
  it('sends everything to a wildcard subscriber, then only what changed', () => {
    const cache = cacheWith('a', 'b', 'c');
    const s = stream(cache);
    s.handleRequest(req({}));
    const first = s.flush();
    expect(first).toHaveLength(1);
    expect(names(first)).toEqual(['a', 'b', 'c']);
    s.handleRequest(req({ responseNonce: first[0]!.nonce }));
    expect(s.flush()).toEqual([]);

    cache.update(T, [res('b', 'b2'), res('d')], ['c']);
    const next = s.flush();
    expect(names(next)).toEqual(['b', 'd']);
    expect(removed(next)).toEqual(['c']);
    expect(next[0]!.nonce).not.toEqual(first[0]!.nonce);
  });

  it('sends nothing when an update does not change any version', () => {
    const cache = cacheWith('a', 'b');
    const s = stream(cache);
    s.handleRequest(req({}));
    s.flush();
    cache.replace(
      T,
      new Map([
        ['a', res('a')],
        ['b', res('b')],
      ]),
    );
    expect(s.pending).toBe(false);
    expect(s.flush()).toEqual([]);
  });

  it('answers the first request of a type even when nothing differs', () => {
    const cache = cacheWith('a');
    const s = stream(cache);
    s.handleRequest(req({ initialResourceVersions: { a: res('a').version } }));
    const frames = s.flush();
    expect(frames).toHaveLength(1);
    expect(frames[0]!.resources).toEqual([]);
    expect(frames[0]!.removed).toEqual([]);
  });

  it('resends only what differs from initial_resource_versions and removes what is gone', () => {
    const cache = cacheWith('a', 'b', 'c');
    const s = stream(cache);
    s.handleRequest(req({ initialResourceVersions: { a: res('a').version, b: 'stale-version', gone: 'whatever' } }));
    const frames = s.flush();
    expect(names(frames)).toEqual(['b', 'c']);
    expect(removed(frames)).toEqual(['gone']);
  });

  it('serves named subscriptions only, and reports a missing name once as removed', () => {
    const cache = cacheWith('a', 'b');
    const s = stream(cache);
    s.handleRequest(req({ resourceNamesSubscribe: ['a', 'missing'] }));
    const frames = s.flush();
    expect(names(frames)).toEqual(['a']);
    expect(removed(frames)).toEqual(['missing']);
    cache.update(T, [res('b', 'b2')]);
    expect(s.flush()).toEqual([]);
    cache.update(T, [res('zzz')]);
    expect(s.flush()).toEqual([]);
    cache.update(T, [res('missing')]);
    expect(names(s.flush())).toEqual(['missing']);
  });

  it('forgets unsubscribed names and resends them on resubscribe', () => {
    const cache = cacheWith('a', 'b');
    const s = stream(cache);
    s.handleRequest(req({ resourceNamesSubscribe: ['a', 'b'] }));
    expect(names(s.flush())).toEqual(['a', 'b']);
    s.handleRequest(req({ resourceNamesUnsubscribe: ['a'] }));
    expect(s.flush()).toEqual([]);
    cache.update(T, [res('a', 'a2')]);
    expect(s.flush()).toEqual([]);
    s.handleRequest(req({ resourceNamesSubscribe: ['a'] }));
    expect(names(s.flush())).toEqual(['a']);
    // Subscribing again to what it has is answered too (the client may have dropped it).
    s.handleRequest(req({ resourceNamesSubscribe: ['b'] }));
    expect(names(s.flush())).toEqual(['b']);
  });

  it('switches between wildcard and named with "*"', () => {
    const cache = cacheWith('a', 'b');
    const s = stream(cache);
    s.handleRequest(req({ resourceNamesSubscribe: ['a'] }));
    expect(names(s.flush())).toEqual(['a']);
    s.handleRequest(req({ resourceNamesSubscribe: ['*'] }));
    expect(names(s.flush())).toEqual(['b']);
    s.handleRequest(req({ resourceNamesUnsubscribe: ['*'] }));
    expect(s.flush()).toEqual([]);
    cache.update(T, [res('b', 'b2'), res('a', 'a2')]);
    expect(names(s.flush())).toEqual(['a']);
  });

  it('classifies ACK, NACK and unknown nonces; a NACKed version is not resent, a newer one is', () => {
    const cache = cacheWith('a');
    const s = stream(cache);
    s.handleRequest(req({}));
    const [first] = s.flush();
    expect(s.handleRequest(req({ responseNonce: first!.nonce })).outcome?.kind).toBe('ack');

    cache.update(T, [res('a', 'bad')]);
    const [bad] = s.flush();
    const nack = s.handleRequest(req({ responseNonce: bad!.nonce, errorDetail: { code: 3, message: 'cannot parse a' } })).outcome;
    expect(nack).toMatchObject({ kind: 'nack', code: 3, message: 'cannot parse a', rejected: [`a@${res('a', 'bad').version}`] });
    expect(s.flush()).toEqual([]);
    expect(s.handleRequest(req({ responseNonce: 'nope' })).outcome?.kind).toBe('unknown-nonce');

    cache.update(T, [res('a', 'good')]);
    expect(names(s.flush())).toEqual(['a']);
  });

  it('splits large responses into frames with their own nonces', () => {
    const many = Array.from({ length: 10 }, (_, i) => `r${i}`);
    const cache = new SharedCache([T]);
    cache.replace(T, new Map(many.map((n) => [n, xdsResource(T, n, new Uint8Array(100).fill(n.length))])));
    const s = stream(cache, { maxFrameBytes: 250 });
    s.handleRequest(req({}));
    const frames = s.flush();
    expect(frames.length).toBe(5);
    expect(new Set(frames.map((f) => f.nonce)).size).toBe(5);
    expect(names(frames)).toEqual([...many].sort());
  });

  it('ignores changes to types the stream did not subscribe to', () => {
    const other = 'type.googleapis.com/test.Other';
    const cache = new SharedCache([T, other]);
    const s = stream(cache);
    s.handleRequest(req({}));
    s.flush();
    cache.update(other, [xdsResource(other, 'x', new Uint8Array([1]))]);
    expect(s.pending).toBe(false);
  });

  it('refuses a request without a type URL', () => {
    const s = stream(cacheWith());
    expect(() => s.handleRequest(req({ typeUrl: '' }))).toThrow(/type_url/);
  });
});

describe('DeltaStreamState: ACK state in the config dump (proxy-status)', () => {
  it('counts responses awaiting an answer, shows a NACK until a later ACK', () => {
    const cache = cacheWith('a');
    const s = stream(cache);
    s.handleRequest(req({}));
    const first = s.flush();
    expect(s.describe(T)).toMatchObject({ sent: 1, unacked: 1 });
    expect(s.describe(T)?.nacked).toBeUndefined();
    s.handleRequest(req({ responseNonce: first[0]!.nonce }));
    expect(s.describe(T)).toMatchObject({ sent: 1, unacked: 0 });

    cache.update(T, [res('a', 'bad')], []);
    const bad = s.flush();
    s.handleRequest(req({ responseNonce: bad[0]!.nonce, errorDetail: { code: 3, message: 'cannot parse a' } }));
    expect(s.describe(T)).toMatchObject({ unacked: 0, nacked: { code: 3, message: 'cannot parse a' } });

    cache.update(T, [res('a', 'good')], []);
    const good = s.flush();
    expect(s.describe(T)).toMatchObject({ unacked: 1, nacked: { code: 3 } });
    s.handleRequest(req({ responseNonce: good[0]!.nonce }));
    expect(s.describe(T)).toMatchObject({ unacked: 0 });
    expect(s.describe(T)?.nacked).toBeUndefined();
  });
});
