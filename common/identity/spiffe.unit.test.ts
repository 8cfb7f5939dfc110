import { describe, expect, it } from 'vitest';
import { DEFAULT_TRUST_DOMAIN, IdentityError, formatSpiffeId, identity, parseSpiffeId, sameIdentity, toIdentity, tryParseSpiffeId } from './spiffe';

describe('SPIFFE IDs', () => {
  it('parses a workload ID into its parts', () => {
    expect(parseSpiffeId('spiffe://cluster.local/ns/shop/sa/checkout')).toEqual({
      trustDomain: 'cluster.local',
      namespace: 'shop',
      serviceAccount: 'checkout',
    });
    expect(parseSpiffeId('spiffe://prod.example_1-x/ns/a.b/sa/C_d-1')).toEqual({
      trustDomain: 'prod.example_1-x',
      namespace: 'a.b',
      serviceAccount: 'C_d-1',
    });
  });

  it('formats and parses back to the same identity, with cluster.local as the default trust domain', () => {
    const id = identity('default', 'sleep');
    expect(id.trustDomain).toBe(DEFAULT_TRUST_DOMAIN);
    const uri = formatSpiffeId(id);
    expect(uri).toBe('spiffe://cluster.local/ns/default/sa/sleep');
    expect(sameIdentity(parseSpiffeId(uri), id)).toBe(true);
    expect(sameIdentity(toIdentity(uri), identity('default', 'sleep', 'other.td'))).toBe(false);
  });

  const bad: Array<[string, RegExp]> = [
    ['http://cluster.local/ns/a/sa/b', /does not start with 'spiffe:\/\/'/],
    ['SPIFFE://cluster.local/ns/a/sa/b', /lower case/],
    ['spiffe://Cluster.Local/ns/a/sa/b', /lower-case letters/],
    ['spiffe:///ns/a/sa/b', /trust domain is empty/],
    ['spiffe://cluster.local', /names only a trust domain/],
    ['spiffe://cluster.local/', /names only a trust domain/],
    ['spiffe://cluster.local:443/ns/a/sa/b', /no port/],
    ['spiffe://u@cluster.local/ns/a/sa/b', /no user info/],
    ['spiffe://cluster.local/ns/a/sa/b?x=1', /no query or fragment/],
    ['spiffe://cluster.local/ns/a/sa/b#f', /no query or fragment/],
    ['spiffe://cluster.local/ns/a/sa', /is not \/ns\/<namespace>\/sa\/<service-account>/],
    ['spiffe://cluster.local/ns/a/sa/b/extra', /is not \/ns/],
    ['spiffe://cluster.local/sa/b/ns/a', /is not \/ns/],
    ['spiffe://cluster.local/ns//sa/b', /namespace is empty/],
    ['spiffe://cluster.local/ns/../sa/b', /may not be '\.\.'/],
    ['spiffe://cluster.local/ns/a/sa/b%20c', /may contain only letters/],
    ['spiffe://cluster.local/ns/a b/sa/c', /may contain only letters/],
    [`spiffe://cluster.local/ns/${'a'.repeat(2100)}/sa/b`, /longer than 2048/],
  ];
  it.each(bad)('rejects %s with a reason', (uri, reason) => {
    expect(() => parseSpiffeId(uri)).toThrow(IdentityError);
    expect(() => parseSpiffeId(uri)).toThrow(reason);
    expect(tryParseSpiffeId(uri)).toBeUndefined();
  });

  it('names the expected shape in the error', () => {
    expect(() => parseSpiffeId('spiffe://cluster.local/x')).toThrow(/expected spiffe:\/\/<trust-domain>\/ns\/<namespace>\/sa\/<service-account>/);
  });

  it('refuses to build invalid identities', () => {
    expect(() => identity('', 'sa')).toThrow(/namespace is empty/);
    expect(() => identity('ns', 'a/b')).toThrow(/service account 'a\/b'/);
    expect(() => identity('ns', 'sa', 'UPPER')).toThrow(/trust domain 'UPPER'/);
  });
});
