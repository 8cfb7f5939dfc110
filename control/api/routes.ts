// The config API's URL space, Kubernetes-style so it reads familiar:
//   POST   /v1/apply                                  apply YAML/JSON documents, all-or-nothing
//   GET    /v1/watch?revision=N&kind=K&namespace=NS   stream changes after revision N
//   GET    /v1/explain?from=&to=&port=&method=&path=  why a connection is allowed/denied (explain.ts)
//   GET    /v1/{plural}                               list (all namespaces)
//   GET    /v1/namespaces/{ns}/{plural}               list in a namespace
//   GET|PUT|DELETE /v1/namespaces/{ns}/{plural}/{name}   one namespaced resource
//   GET|PUT|DELETE /v1/{plural}/{name}                   one cluster-scoped resource (namespaces)
// Pure parsing; the server maps a parse failure to 404 with its message.
import { kindNames, resolveKind, type KindInfo } from '../resources/kinds';

export type Route =
  | { readonly op: 'apply' }
  | { readonly op: 'watch' }
  | { readonly op: 'explain' }
  | { readonly op: 'collection'; readonly kind: KindInfo; readonly namespace?: string }
  | { readonly op: 'item'; readonly kind: KindInfo; readonly namespace?: string; readonly name: string };

export class RouteError extends Error {}

function kindFor(plural: string): KindInfo {
  const k = resolveKind(plural);
  if (!k || k.plural !== plural) throw new RouteError(`unknown resource "${plural}" in the path; use one of: ${kindNames()}`);
  return k;
}

export function parseApiPath(pathname: string): Route {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'v1') throw new RouteError(`no such path ${pathname}; the config API lives under /v1`);
  const rest = parts.slice(1);
  if (rest.length === 1 && rest[0] === 'apply') return { op: 'apply' };
  if (rest.length === 1 && rest[0] === 'watch') return { op: 'watch' };
  if (rest.length === 1 && rest[0] === 'explain') return { op: 'explain' };
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const namespace = rest[1];
    const kind = kindFor(rest[2]);
    if (!kind.namespaced) throw new RouteError(`${kind.kind} is cluster-scoped: use /v1/${kind.plural}`);
    if (rest.length === 3) return { op: 'collection', kind, namespace };
    if (rest.length === 4) return { op: 'item', kind, namespace, name: rest[3] };
  } else if (rest.length === 1) {
    return { op: 'collection', kind: kindFor(rest[0]) };
  } else if (rest.length === 2) {
    const kind = kindFor(rest[0]);
    if (kind.namespaced) throw new RouteError(`${kind.kind} is namespaced: use /v1/namespaces/{namespace}/${kind.plural}/${rest[1]}`);
    return { op: 'item', kind, name: rest[1] };
  }
  throw new RouteError(`no such path ${pathname}`);
}

/** The API path of one resource (used by the client). */
export function itemPath(kind: KindInfo, name: string, namespace?: string): string {
  const n = encodeURIComponent(name);
  return kind.namespaced ? `/v1/namespaces/${encodeURIComponent(namespace ?? 'default')}/${kind.plural}/${n}` : `/v1/${kind.plural}/${n}`;
}

/** The API path of a collection: one namespace, or all when `namespace` is undefined. */
export function collectionPath(kind: KindInfo, namespace?: string): string {
  return kind.namespaced && namespace !== undefined ? `/v1/namespaces/${encodeURIComponent(namespace)}/${kind.plural}` : `/v1/${kind.plural}`;
}
