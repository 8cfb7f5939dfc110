// What route matching and policy see of a request: method, path, authority and headers by
// lower-case name, with Envoy's pseudo-headers (:method, :path, :authority, :scheme) readable as
// headers too. Built once per request from HTTP/1.1 or HTTP/2 headers.
export type HeaderMap = Record<string, string | string[] | undefined>;

export interface RequestView {
  readonly method: string;
  /** Path with query string, as sent. */
  readonly path: string;
  /** Host (and port, if sent) from :authority or Host. */
  readonly authority: string;
  readonly scheme: string;
  /** Value of a header (lower-case name); repeated headers joined with ",". */
  header(name: string): string | undefined;
}

export function requestView(method: string, path: string, authority: string, scheme: string, headers: HeaderMap): RequestView {
  return new HeaderView(method, path, authority, scheme, headers);
}

/** A RequestView over a request's header object (one plain object per request, no closure). */
class HeaderView implements RequestView {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly authority: string,
    readonly scheme: string,
    private readonly headers: HeaderMap,
  ) {}

  header(name: string): string | undefined {
    switch (name) {
      case ':method':
        return this.method;
      case ':path':
        return this.path;
      case ':authority':
      case 'host':
        return this.authority;
      case ':scheme':
        return this.scheme;
    }
    const v = this.headers[name];
    if (v === undefined) return undefined;
    return Array.isArray(v) ? v.join(',') : v;
  }
}

/** The path without its query string. */
export function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/** The query string's parameters (first value wins, as Envoy's matcher does). */
export function queryParams(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const q = path.indexOf('?');
  if (q < 0) return out;
  for (const part of path.slice(q + 1).split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    const name = safeDecode(rawName);
    if (!out.has(name)) out.set(name, safeDecode(rawValue));
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}
