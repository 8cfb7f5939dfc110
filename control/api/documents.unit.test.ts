import { describe, expect, it } from 'vitest';
import { DocumentError, MAX_ALIAS_COUNT, parseDocuments } from './documents';
import { scaled } from '../../test/support/speed';
import { findExcessiveNesting, MAX_NESTING_DEPTH } from './nesting';

const laughs = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`),
].join('\n');

function refused(text: string): DocumentError {
  try {
    parseDocuments(text, 'request body');
  } catch (err) {
    if (err instanceof DocumentError) return err;
    throw err;
  }
  throw new Error('expected the document to be refused');
}

describe('parseDocuments limits', () => {
  it('refuses deep flow nesting (JSON or YAML) with the reason, every time, without overflowing', () => {
    // [x1000 once answered "Maximum call stack size exceeded", and a later try aborted the
    // process (FATAL ERROR: RegExpCompiler Allocation failed); x10000 crashed it at once.
    for (let k = 0; k < 20; k++) {
      for (const depth of [1_000, 10_000]) {
        expect(refused('['.repeat(depth) + ']'.repeat(depth)).message).toMatch(/nests more than 64 levels deep \(line 1\)/);
        expect(refused('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)).message).toMatch(/nests more than/);
      }
    }
  });

  it('refuses deep block nesting: indentation and compact "- - -" sequences', () => {
    let block = '';
    for (let i = 0; i < 1_000; i++) block += `${' '.repeat(i)}a:\n`;
    expect(refused(block).message).toMatch(/nests more than 64 levels deep \(line 6\d\)/);
    expect(refused(`${'- '.repeat(1_000)}x\n`).message).toMatch(/nests more than/);
    expect(refused(`kind: List\nitems:\n${'  '.repeat(1)}- ${'[ '.repeat(100)}`).message).toMatch(/line 3/);
  });

  it('refuses a billion laughs with 400-class DocumentError naming the alias limit', () => {
    expect(refused(laughs).message).toMatch(new RegExp(`alias.*at most ${MAX_ALIAS_COUNT} alias expansions`, 's'));
  });

  it('accepts nesting up to the limit and ordinary resources', () => {
    const d = MAX_NESTING_DEPTH - 1;
    expect(parseDocuments(`x: ${'['.repeat(d - 1)}${']'.repeat(d - 1)}`)).toHaveLength(1);
    const yaml = `apiVersion: v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}   # a comment with [[[[ brackets
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/a/sa/[weird", 'it''s {fine']
    to:
    - operation:
        ports: ["80"]
  description: |
    text with [ unbalanced { brackets
`;
    expect(parseDocuments(yaml)).toHaveLength(1);
    expect(findExcessiveNesting(yaml)).toBeUndefined();
    // a few aliases are fine
    expect(parseDocuments('a: &x {k: v}\nb: *x\nc: *x\n')).toEqual([{ a: { k: 'v' }, b: { k: 'v' }, c: { k: 'v' } }]);
  });

  it('scans 8 MiB of flat text quickly', () => {
    const text = 'k: [1, 2, "three", {a: b}]\n'.repeat(300_000);
    const t0 = performance.now();
    expect(findExcessiveNesting(text)).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});

describe('parseDocuments cost', () => {
  it('checks duplicate keys in linear time (20,000 keys: was 14 s in the yaml library)', () => {
    const many = Array.from({ length: 20_000 }, (_, i) => `k${i}: v`).join('\n');
    const t0 = performance.now();
    expect(parseDocuments(many)).toHaveLength(1);
    expect(performance.now() - t0).toBeLessThan(scaled(5_000));
    expect(() => parseDocuments(`${many}\nk7: again`)).toThrow(/line 20001\).*map keys must be unique; "k7" appears twice/);
    expect(() => parseDocuments('a: {x: 1, x: 2}')).toThrow(/"x" appears twice/);
    expect(parseDocuments('a: {"1": x, 1: y}')).toHaveLength(1); // a string and a number key differ, as in YAML
  });

  it('looks for self-referencing aliases in linear time (8,000 aliases in 56 KB: 14 s when each alias walked the document)', () => {
    const many = `a: &x 1\nb:\n${Array.from({ length: 8_000 }, () => '  - *x').join('\n')}\n`;
    const t0 = performance.now();
    expect(() => parseDocuments(many)).toThrow(/cannot be expanded.*at most 100 alias expansions/);
    // 14 s when quadratic; the limit follows the machine's measured speed (a loaded runner is slower)
    expect(performance.now() - t0).toBeLessThan(scaled(3_000));
  });
});

describe('parseDocuments mapping keys', () => {
  it('refuses collection and alias keys at once (30 nested "? " keys spun for minutes and threw RangeError)', () => {
    const t0 = performance.now();
    expect(() => parseDocuments('? '.repeat(30))).toThrow(/a mapping key must be a plain value.*a mapping/);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(() => parseDocuments('[a]: b')).toThrow(/here: a sequence/);
    expect(() => parseDocuments('a: &k x\n*k : 1')).toThrow(/here: alias \*k/);
    expect(parseDocuments('? a\n: b\nc: d')).toEqual([{ a: 'b', c: 'd' }]); // an explicit plain key is fine
  });
});

describe('self-referencing aliases', () => {
  it('refuses an alias inside the node its anchor names with a DocumentError (found by npm run fuzz)', () => {
    for (const text of ['&a \n- *a', 'a: &x\n  b: *x\n', '&a [1, [*a]]']) {
      expect(() => parseDocuments(text, 'fuzz')).toThrow(/alias \*\w+ refers to a node that contains it/);
    }
    // an alias to a sibling is fine
    expect(parseDocuments('a: &x {k: v}\nb: *x\n', 'ok')).toEqual([{ a: { k: 'v' }, b: { k: 'v' } }]);
  });
});
