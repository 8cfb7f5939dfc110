// A reference reading of an HTTP/1.1 head for the http1 fuzz target: written the plain way (the
// head split into lines, a regular expression per name and value), slow and obviously right, to
// hold the waypoint's single-pass parser (waypoint/http1/parse.ts) to the same answers — what one
// accepts the other accepts, with the same method, target, version, status and headers. Only
// whether a head is refused is compared, not which status each gives (the order of the checks
// differs).

import { FIRST_WINS, NOT_REPEATABLE } from '../../waypoint/http1/parse';

// Which repeated headers combine, keep the first or are refused is a table, shared with the parser.
type Headers = Record<string, string | string[]>;

export interface ReferenceHead {
  readonly method?: string;
  readonly target?: string;
  readonly status?: number;
  readonly minor: number;
  readonly headers: Headers;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_TARGET = /[^\x21-\x7e]/;

/** The head's lines (the text before its blank line), or undefined when it is refused. */
function lines(head: string, maxHeadBytes: number): string[] | undefined {
  if (head.length > maxHeadBytes) return undefined;
  const ls = head.slice(0, head.length - 4).split('\r\n');
  if (ls.some((l) => l.includes('\r') || l.includes('\n'))) return undefined;
  return ls;
}

function headers(ls: readonly string[], maxHeaders: number): Headers | undefined {
  if (ls.length - 1 > maxHeaders) return undefined;
  const out: Headers = {};
  for (const line of ls.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return undefined;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (BAD_VALUE.test(value)) return undefined;
    const name = line.slice(0, colon).toLowerCase();
    const prev = out[name];
    if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (NOT_REPEATABLE.has(name)) return undefined;
    else if (name === 'set-cookie') (prev as string[]).push(value);
    else if (!FIRST_WINS.has(name)) out[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out;
}

function version(v: string): number | undefined {
  return v === 'HTTP/1.1' ? 1 : v === 'HTTP/1.0' ? 0 : undefined;
}

/** A request head (latin1 text ending in its blank line), or undefined when it is refused. */
export function referenceRequest(head: string, maxHeadBytes: number, maxHeaders: number): ReferenceHead | undefined {
  const ls = lines(head, maxHeadBytes);
  if (!ls) return undefined;
  const parts = ls[0]!.split(' ');
  if (parts.length !== 3) return undefined;
  const [method, target, v] = parts as [string, string, string];
  if (!TOKEN.test(method) || target.length === 0 || BAD_TARGET.test(target)) return undefined;
  const minor = version(v);
  const h = headers(ls, maxHeaders);
  if (minor === undefined || !h) return undefined;
  return { method, target, minor, headers: h };
}

/** A response head, or undefined when it is refused. */
export function referenceResponse(head: string, maxHeadBytes: number, maxHeaders: number): ReferenceHead | undefined {
  const ls = lines(head, maxHeadBytes);
  if (!ls) return undefined;
  const m = /^(HTTP\/1\.[01]) ([1-5][0-9][0-9])(?: (.*))?$/.exec(ls[0]!);
  if (!m || BAD_VALUE.test(m[3] ?? '')) return undefined;
  const h = headers(ls, maxHeaders);
  if (!h) return undefined;
  return { status: Number(m[2]), minor: version(m[1]!)!, headers: h };
}
