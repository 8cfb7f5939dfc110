// GET /v1/explain?from=&to=&port=&method=&path=: why a connection would be allowed, denied or
// sent where. The evaluation runs the node proxy's and the waypoint's own code, which the control
// plane may not import (layers: control sits below them); so the process that starts the control
// plane injects it as an Explainer (`nodemesh control` wires in explain/, docs/explain.md). Without
// one the path answers 404 and says so. Parsing the query is here; the answer's shape is explain/'s.
import type { Snapshot } from '../store/store';

/** The question, as the query string gives it. */
export interface ExplainRequest {
  readonly from: string;
  readonly to: string;
  readonly port?: number;
  readonly method?: string;
  readonly path?: string;
}

/** Answers one question over one store snapshot (a JSON-serialisable Explanation). */
export type Explainer = (snapshot: Snapshot, request: ExplainRequest) => unknown | Promise<unknown>;

/** A question that cannot be answered as asked: 400 (malformed) or 404 (names nothing known). */
export class ExplainError extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message);
  }
}

const MAX_FIELD = 1024;

/** The request from the query string; throws ExplainError(400) naming what is wrong. */
export function parseExplainQuery(q: URLSearchParams): ExplainRequest {
  const field = (name: string, required: boolean): string | undefined => {
    const v = q.get(name);
    if (v === null || v === '') {
      if (required)
        throw new ExplainError(400, `explain needs ?${name}= (from: a workload ns/name, pod or IP; to: a workload, Service name.ns or IP, with :port)`);
      return undefined;
    }
    if (v.length > MAX_FIELD) throw new ExplainError(400, `${name} is longer than ${MAX_FIELD} characters`);
    return v;
  };
  const from = field('from', true)!;
  const to = field('to', true)!;
  const portText = field('port', false);
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new ExplainError(400, `port must be 1..65535, got "${portText}"`);
  }
  const method = field('method', false);
  if (method !== undefined && !/^[A-Za-z]+$/.test(method)) throw new ExplainError(400, `method must be an HTTP method such as GET, got "${method}"`);
  const path = field('path', false);
  if (path !== undefined && (!path.startsWith('/') || /\s/.test(path))) throw new ExplainError(400, `path must start with / and hold no spaces, got "${path}"`);
  return { from, to, ...(port !== undefined ? { port } : {}), ...(method ? { method: method.toUpperCase() } : {}), ...(path ? { path } : {}) };
}
