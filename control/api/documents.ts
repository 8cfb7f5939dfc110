// Turns what a user sends or points at — YAML (one or many `---` documents), JSON (an object, an
// array, or a `kind: List`) — into plain objects to validate. Errors name the document and line.
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Document } from 'yaml';
import { findExcessiveNesting, MAX_NESTING_DEPTH } from './nesting';

/** Most alias expansions (`*name`) one document may make: a "billion laughs" stops here. */
export const MAX_ALIAS_COUNT = 100;

export class DocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DocumentError';
  }
}

function flatten(value: unknown, out: unknown[]): void {
  if (value === null || value === undefined) return; // empty document
  if (Array.isArray(value)) {
    for (const v of value) flatten(v, out);
    return;
  }
  if (typeof value === 'object' && (value as { kind?: unknown }).kind === 'List' && Array.isArray((value as { items?: unknown }).items)) {
    for (const v of (value as { items: unknown[] }).items) flatten(v, out);
    return;
  }
  out.push(value);
}

/** Parses YAML or JSON text (JSON is YAML) into resource objects; `source` names it in errors. */
export function parseDocuments(text: string, source = 'input'): unknown[] {
  const out: unknown[] = [];
  // The parser recurses per nesting level: refuse deep text before it can overflow the stack.
  const deep = findExcessiveNesting(text, MAX_NESTING_DEPTH);
  if (deep) {
    throw new DocumentError(
      `${source}: nests more than ${MAX_NESTING_DEPTH} levels deep (line ${deep.line}); no resource needs that — check the brackets and indentation`,
    );
  }
  // uniqueKeys is checked below in linear time: the yaml library's own check compares every key
  // with every other (20,000 keys, a 200 KB body, took 14 s of the control plane's event loop).
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false, lineCounter });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0].line;
      throw new DocumentError(`${source}: document ${i + 1}${line ? ` (line ${line})` : ''} is not valid YAML/JSON: ${e.message.split('\n')[0]}`);
    }
    const loop = selfAlias(doc);
    if (loop) {
      const line = loop.offset !== undefined ? lineCounter.linePos(loop.offset).line : undefined;
      throw new DocumentError(
        `${source}: document ${i + 1}${line ? ` (line ${line})` : ''} is not valid YAML/JSON here: alias *${loop.name} refers to a node that contains it (a value cannot contain itself)`,
      );
    }
    const bad = badKey(doc);
    if (bad) {
      const line = bad.offset !== undefined ? lineCounter.linePos(bad.offset).line : undefined;
      const why = bad.complex
        ? `a mapping key must be a plain value, not a collection or alias (here: ${bad.key})`
        : `map keys must be unique; "${bad.key}" appears twice`;
      throw new DocumentError(`${source}: document ${i + 1}${line ? ` (line ${line})` : ''} is not valid YAML/JSON: ${why}`);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      // the yaml library refuses alias expansion beyond maxAliasCount with a ReferenceError
      const why = err instanceof Error ? err.message : String(err);
      throw new DocumentError(`${source}: document ${i + 1} cannot be expanded: ${why} (at most ${MAX_ALIAS_COUNT} alias expansions per document)`);
    }
    flatten(value, out);
  });
  for (const [i, d] of out.entries()) {
    if (typeof d !== 'object' || d === null) throw new DocumentError(`${source}: item ${i + 1} is a ${typeof d}, not a resource object`);
  }
  return out;
}

/**
 * The first alias inside the node its anchor names (`&a [*a]`): it would expand to a value that
 * contains itself, which every recursive walk after parsing (flatten, validation) follows forever
 * (found by npm run fuzz, config: "&a \n- *a" overflowed the stack, a 500). One walk in document
 * order: an alias names the latest anchor of that name before it (YAML 1.2 §3.2.2.2), which the
 * walk has just recorded; it loops when that node is one of the alias's ancestors. (yaml's
 * `alias.resolve(doc)` walks the whole document for each alias: quadratic — a document of many
 * aliases took most of the config fuzz target's time.)
 */
function selfAlias(doc: Document): { name: string; offset?: number } | undefined {
  let found: { name: string; offset?: number } | undefined;
  const anchors = new Map<string, unknown>();
  visit(doc, (_, node, path) => {
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target !== undefined && path.includes(target as never)) {
        found = { name: node.source, offset: node.range?.[0] };
        return visit.BREAK;
      }
    } else if (isNode(node) && node.anchor) anchors.set(node.anchor, node);
    return undefined;
  });
  return found;
}

/**
 * The first mapping key that is not a plain scalar (a collection or alias key: no resource has
 * one, and turning nested ones into object keys doubles a string per level — 30 levels of "? "
 * spun the parser for minutes and threw RangeError), or that appears twice in its mapping (one
 * Set per mapping: linear).
 */
function badKey(doc: Document): { key: string; offset?: number; complex?: true } | undefined {
  let found: { key: string; offset?: number; complex?: true } | undefined;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const k = pair.key;
        if (k !== null && !isScalar(k)) {
          // named by its kind only: printing a nested key is itself exponential
          found = {
            key: isMap(k) ? 'a mapping' : isSeq(k) ? 'a sequence' : isAlias(k) ? `alias *${k.source}` : 'a node',
            offset: isNode(k) ? k.range?.[0] : undefined,
            complex: true,
          };
          return visit.BREAK;
        }
        const text = isScalar(k) ? `${typeof k.value}:${String(k.value)}` : 'null';
        if (seen.has(text)) {
          found = { key: isScalar(k) ? String(k.value) : 'null', offset: isScalar(k) ? k.range?.[0] : undefined };
          return visit.BREAK;
        }
        seen.add(text);
      }
      return undefined;
    },
  });
  return found;
}
