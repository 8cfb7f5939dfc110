import { describe, expect, it } from 'vitest';
import { matchesSelector, parseSelector } from './selectors';

describe('label selectors', () => {
  it('parses the command-line form', () => {
    expect(parseSelector('app=web,tier!=db,env in (a, b),!canary,team')).toEqual({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'NotIn', values: ['db'] },
        { key: 'env', operator: 'In', values: ['a', 'b'] },
        { key: 'canary', operator: 'DoesNotExist' },
        { key: 'team', operator: 'Exists' },
      ],
    });
    expect(() => parseSelector('a in ()')).toThrow(/lists no values/);
  });
  it('matches labels', () => {
    const sel = parseSelector('app=web,env in (prod,stage),!canary');
    expect(matchesSelector({ app: 'web', env: 'prod' }, sel)).toBe(true);
    expect(matchesSelector({ app: 'web', env: 'dev' }, sel)).toBe(false);
    expect(matchesSelector({ app: 'web', env: 'prod', canary: '' }, sel)).toBe(false);
    expect(matchesSelector(undefined, {})).toBe(true);
    expect(matchesSelector({ a: 'b' }, parseSelector('a notin (b)'))).toBe(false);
  });
});
