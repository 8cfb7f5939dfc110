// Turns what a user sends or points at — YAML (one or many `---` documents), JSON (an object, an
// array, or a `kind: List`) — into plain objects to validate. Errors name the document and line.
import { parseAllDocuments } from 'yaml';

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
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0].line;
      throw new DocumentError(`${source}: document ${i + 1}${line ? ` (line ${line})` : ''} is not valid YAML/JSON: ${e.message.split('\n')[0]}`);
    }
    flatten(doc.toJS({ maxAliasCount: 100 }), out);
  });
  for (const [i, d] of out.entries()) {
    if (typeof d !== 'object' || d === null) throw new DocumentError(`${source}: item ${i + 1} is a ${typeof d}, not a resource object`);
  }
  return out;
}
