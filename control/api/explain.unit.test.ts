import { describe, expect, it } from 'vitest';
import { ExplainError, parseExplainQuery } from './explain';

const q = (s: string) => parseExplainQuery(new URLSearchParams(s));
const refused = (s: string): string => {
  try {
    q(s);
  } catch (err) {
    if (err instanceof ExplainError && err.status === 400) return err.message;
    throw err;
  }
  throw new Error(`expected ${s} to be refused`);
};

describe('GET /v1/explain query', () => {
  it('takes from, to, port, method (upper-cased) and path', () => {
    expect(q('from=demo/a&to=b.demo:80')).toEqual({ from: 'demo/a', to: 'b.demo:80' });
    expect(q('from=demo/a&to=b.demo&port=8080&method=delete&path=/x?y=1')).toEqual({
      from: 'demo/a',
      to: 'b.demo',
      port: 8080,
      method: 'DELETE',
      path: '/x?y=1',
    });
  });

  it('refuses what it cannot use, naming the parameter', () => {
    expect(refused('to=b')).toContain('?from=');
    expect(refused('from=a')).toContain('?to=');
    expect(refused('from=a&to=b&port=0')).toContain('port must be 1..65535');
    expect(refused('from=a&to=b&port=80x')).toContain('port must be 1..65535');
    expect(refused('from=a&to=b&method=GE%20T')).toContain('method');
    expect(refused('from=a&to=b&path=x')).toContain('path must start with /');
    expect(refused(`from=${'a'.repeat(2000)}&to=b`)).toContain('longer than');
  });
});
