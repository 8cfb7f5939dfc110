// The config parser and validation: any text a user can POST to /v1/apply (or give to
// `nodemesh apply`) is parsed and validated, or refused with DocumentError / ValidationError —
// never another error, never a stack overflow, whatever the nesting, aliases or bytes.
import fc from 'fast-check';
import { DocumentError, parseDocuments } from '../../control/api/documents';
import { validateResource } from '../../control/resources';
import { ValidationError } from '../../control/resources/validation';
import { target } from '../target';
import { resourceDocument } from './resources';

const TOKENS = [
  '[',
  ']',
  '{',
  '}',
  '- ',
  '  ',
  '\n',
  '&a ',
  '*a',
  '&b ',
  '*b',
  'a: ',
  'b:',
  '"',
  "'",
  '\\',
  '# c',
  '---\n',
  '...\n',
  '? ',
  ':',
  ',',
  '1',
  'x',
  '|\n',
  '>-\n',
  '!!str ',
  '!!map ',
  '<<: ',
  '\t',
  'kind: ',
  'Service',
  'apiVersion: v1',
  'metadata:',
  '  name: ',
  'null',
  '~',
  '%YAML 1.2\n',
  '\u0000',
  '\uFEFF',
  'é',
];

const yamlSoup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 200 }).map((t) => t.join(''));
const deep = fc.tuple(fc.integer({ min: 1, max: 3_000 }), fc.constantFrom('[', '{"a":', '- ', '? ')).map(([n, open]) => open.repeat(n));
const indented = fc.integer({ min: 1, max: 300 }).map((n) => Array.from({ length: n }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'));
const aliases = fc.integer({ min: 1, max: 12 }).map((levels) => {
  const lines = ['l0: &l0 [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= levels; i++)
    lines.push(
      `l${i}: &l${i} [${Array(9)
        .fill(`*l${i - 1}`)
        .join(', ')}]`,
    );
  return lines.join('\n');
});
const jsonish = fc.jsonValue({ maxDepth: 8 }).map((v) => JSON.stringify(v));
const resources = fc.array(resourceDocument, { maxLength: 4 }).map((docs) => docs.map((d) => JSON.stringify(d)).join('\n---\n'));

// Built on first use: fast-check's binary-string arbitrary costs seconds of CPU to construct
// (a table over every code point), which every other target's worker process would pay at start.
let textArbitrary: fc.Arbitrary<string> | undefined;

export const configTarget = target({
  name: 'config',
  what: 'parseDocuments + validateResource on arbitrary text, YAML token soup, deep nesting, alias bombs, JSON values and mutated resources',
  get arbitrary(): fc.Arbitrary<string> {
    textArbitrary ??= fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), yamlSoup, deep, indented, aliases, jsonish, resources);
    return textArbitrary;
  },
  unitRuns: 400,
  check: (text: string) => {
    let docs: unknown[];
    try {
      docs = parseDocuments(text, 'fuzz');
    } catch (err) {
      if (err instanceof DocumentError) return;
      throw err;
    }
    for (const d of docs) {
      try {
        validateResource(d);
      } catch (err) {
        if (err instanceof ValidationError) continue;
        throw err;
      }
    }
  },
});
