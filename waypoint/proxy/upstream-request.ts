// What goes upstream for a forwarded request: the cluster (single, from a header, or a weighted
// pick), the path and authority after the route's rewrites, and the request headers — the
// downstream header object itself, edited in place (hop-by-hop and pseudo-headers removed, the
// forwarding headers set, the route's mutations applied), not a copy.
import { applyMutations, type MutableHeaders } from '../config/headers';
import type { ForwardAction } from '../config/routes';
import { formatTraceparent, requestId } from '../telemetry/trace';
import type { ClusterChoice, Exchange } from './exchange';
import { isHopByHop, type AttemptRequest } from './upstream';

const NO_MUTATION = { remove: [], add: [] } as const;

/** The cluster a forwarding route sends this request to (a weighted pick per request). */
export function chooseCluster(a: ForwardAction, ex: Exchange): ClusterChoice {
  if (a.cluster) return a.clusterTarget ?? { cluster: a.cluster, requestHeaders: NO_MUTATION, responseHeaders: NO_MUTATION, hostRewrite: undefined };
  if (a.clusterHeader)
    return { cluster: ex.view.header(a.clusterHeader) ?? '', requestHeaders: NO_MUTATION, responseHeaders: NO_MUTATION, hostRewrite: undefined };
  const w = a.weighted!;
  let r = Math.floor(Math.random() * w.total);
  for (const t of w.targets) {
    if (r < t.weight) return t;
    r -= t.weight;
  }
  return w.targets[w.targets.length - 1]!;
}

/**
 * The upstream request head. Header mutations apply weighted cluster -> route -> virtual host ->
 * route configuration (Envoy's order). Takes over the downstream header object: call it after
 * routing and the filters have read the request.
 */
export function upstreamRequest(ex: Exchange, a: ForwardAction, t: ClusterChoice): AttemptRequest {
  const m = ex.match!;
  const route = m.route;
  const headers = ex.req.headers as MutableHeaders;
  const keepTe = headers.te === 'trailers';
  // Blanked rather than deleted: the object keeps its shape (a delete turns it into a dictionary,
  // slower for every later access); every reader of headers takes undefined as absent.
  for (const k in headers) if (headers[k] !== undefined && isHopByHop(k)) headers[k] = undefined;
  if (keepTe) headers.te = 'trailers';
  if (headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = 'http';
  if (!headers['x-request-id']) headers['x-request-id'] = requestId();
  headers.traceparent = formatTraceparent(ex.span);
  if (ex.conn.principal) headers['x-forwarded-client-cert'] = `By=;URI=${ex.conn.principal}`;
  applyMutations(headers, [t.requestHeaders, route.requestHeaders, m.virtualHost.requestHeaders, ex.routeTable?.requestHeaders ?? NO_MUTATION]);
  let path = ex.view.path;
  if (a.prefixRewrite !== undefined && route.matchedPrefix !== undefined) path = a.prefixRewrite + path.slice(route.matchedPrefix.length);
  else if (a.regexRewrite) {
    const q = path.indexOf('?');
    const p = q < 0 ? path : path.slice(0, q);
    path = p.replace(a.regexRewrite.re, a.regexRewrite.substitution) + (q < 0 ? '' : path.slice(q));
  }
  let authority = ex.view.authority;
  if (t.hostRewrite) authority = t.hostRewrite;
  else if (a.hostRewrite) authority = a.hostRewrite;
  else if (a.hostRewriteHeader && typeof headers[a.hostRewriteHeader] === 'string') authority = headers[a.hostRewriteHeader] as string;
  if (authority !== ex.view.authority) headers['x-forwarded-host'] = ex.view.authority;
  return { method: ex.view.method, path, authority, headers };
}
