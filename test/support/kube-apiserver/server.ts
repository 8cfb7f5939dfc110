// The stand-in API server: a test fixture (never product code) that speaks the Kubernetes API's
// HTTP protocol for the kinds nodemesh uses (types.ts), so the real `@kubernetes/client-node` and
// the real `kubectl` can drive it. It keeps its objects in memory and implements:
// - discovery (/api, /apis, /api/v1, /apis/<g>/<v>, /version); no OpenAPI (kubectl falls back to
//   its compiled-in types for strategic merge and to a merge patch for custom resources; it is run
//   with --validate=false, see docs/kubernetes.md);
// - list (labelSelector, fieldSelector, resourceVersion of the list), get, create (generateName,
//   defaults for Pods and Services), update (optimistic concurrency: 409 on a stale
//   resourceVersion), patch (merge, strategic-merge for the simple cases, JSON patch), delete,
//   the `status` subresource, `?dryRun=All`, Table output for `kubectl get`;
// - watch (`?watch=true&resourceVersion=`): replay from any resourceVersion still in its history,
//   ADDED/MODIFIED/DELETED (with selector transitions as ADDED/DELETED), BOOKMARK events with
//   allowWatchBookmarks, an ERROR event with Status 410 Expired for a too-old resourceVersion
//   (compact() makes every older one too old), timeoutSeconds;
// - ownerReference garbage collection, done at once when the owner is deleted (the real
//   collector works in the background); deleting a Namespace deletes its contents at once (no
//   Terminating phase);
// - TokenReview and TokenRequest (tokens.ts), a bearer token for its own clients;
// - API groups that are not served, as a cluster without some CRDs (`unservedGroups`): 404 for
//   their paths, absent from discovery; serveGroup() "installs the CRDs" later, unserveGroup()
//   removes them with their objects;
// - stop()/start() keep the objects and resourceVersions, like an API server restarting over etcd.
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { stringify } from 'yaml';
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from './patch';
import { parseFieldSelector, parseLabelSelector, SelectorError, type FieldMatcher, type Matcher } from './selectors';
import { selfSignedServingCert, type ServingCert } from './tls';
import { TokenSigner, type TokenRequest } from './tokens';
import { apiVersionOf, findType, RESOURCE_TYPES, typeKey, typeOfKind, type KubeObject, type ResourceType } from './types';

type Json = Parameters<typeof mergePatch>[1];
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface StoredEvent {
  readonly rv: number;
  readonly type: WatchEventType;
  readonly t: ResourceType;
  readonly obj: KubeObject;
  /** For MODIFIED: the object before, to turn selector transitions into ADDED/DELETED. */
  readonly prev?: KubeObject;
}

interface Watcher {
  readonly t: ResourceType;
  readonly namespace?: string;
  readonly labels: Matcher;
  readonly fields: FieldMatcher;
  readonly res: ServerResponse;
  readonly close: () => void;
}

export interface StandInApiServerOptions {
  /** Bearer token clients must send (default: a random one; see `token`). */
  token?: string;
  /** How many writes a watch can resume across before 410 Expired (default 10000). */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that allow them (default 1000 ms). */
  bookmarkIntervalMs?: number;
  /** Audiences a TokenReview without spec.audiences is checked against. */
  apiAudiences?: readonly string[];
  /** API groups not served at first (their CRDs not installed), e.g. ['security.istio.io']. */
  unservedGroups?: readonly string[];
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const MAX_BODY = 3 * 1024 * 1024;

export class StandInApiServer {
  readonly token: string;
  private readonly objects = new Map<string, KubeObject>();
  private history: StoredEvent[] = [];
  private rv = 1;
  private oldestRv = 1;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  private readonly extraServers: Server[] = [];
  private serving?: ServingCert;
  private port = 0;
  private readonly signer = new TokenSigner();
  private readonly historyLimit: number;
  private readonly bookmarkMs: number;
  private readonly apiAudiences: readonly string[];
  private readonly unserved: Set<string>;
  /** Requests seen, `METHOD path?query`, for tests that assert what a client did. */
  readonly requests: string[] = [];

  constructor(opts: StandInApiServerOptions = {}) {
    this.token = opts.token ?? randomBytes(16).toString('hex');
    this.historyLimit = opts.historyLimit ?? 10_000;
    this.bookmarkMs = opts.bookmarkIntervalMs ?? 1000;
    this.apiAudiences = opts.apiAudiences ?? [this.signer.issuer];
    this.unserved = new Set(opts.unservedGroups ?? []);
    for (const name of ['default', 'kube-system', 'kube-public']) this.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }

  /** Listens on 127.0.0.1 (port 0: any; after a stop(), the same port again). */
  async start(port = this.port): Promise<this> {
    if (this.server) return this;
    this.serving ??= await selfSignedServingCert();
    const server = await this.listen((srv, done) => srv.listen(port, '127.0.0.1', done));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /**
   * Serves the same API on one more listening socket as well, e.g. one opened on 127.0.0.1 inside a
   * lab netns with listenInNetns (same port: the kubeconfig works in both places). Closed by stop().
   */
  async serveAlso(fd: number): Promise<void> {
    if (!this.serving) throw new Error('start() the stand-in API server first');
    this.extraServers.push(await this.listen((srv, done) => srv.listen({ fd }, done)));
  }

  /** An HTTPS server with the serving certificate, its connections tracked, listening as `listen` says. */
  private async listen(listen: (srv: Server, done: () => void) => void): Promise<Server> {
    const serving = this.serving!;
    const server = createServer({ cert: serving.cert, key: serving.key }, (req, res) => this.handle(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      listen(server, () => resolve());
    });
    return server;
  }

  /** Closes every connection (watches end as on an API server restart); objects are kept. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const extra = this.extraServers.splice(0);
    for (const w of [...this.watchers]) w.close();
    for (const s of this.sockets) s.destroy();
    await Promise.all([...extra, ...(server ? [server] : [])].map((x) => new Promise<void>((resolve) => x.close(() => resolve()))));
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The PEM certificate clients must trust (the kubeconfig's certificate-authority-data). */
  get caCert(): string {
    if (!this.serving) throw new Error('the stand-in API server is not started');
    return this.serving.cert;
  }

  /** The newest resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** A kubeconfig for kubectl and client-node, written to `path` (mode 0600). */
  writeKubeconfig(path: string, namespace = 'default'): string {
    const cfg = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stand-in', cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.caCert).toString('base64') } }],
      users: [{ name: 'admin', user: { token: this.token } }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'admin', namespace } }],
      'current-context': 'stand-in',
    };
    writeFileSync(path, stringify(cfg), { mode: 0o600 });
    return path;
  }

  /** Forget the watch history: every watch from an older resourceVersion gets 410 Expired, open ones too. */
  compact(): void {
    this.history = [];
    this.oldestRv = this.rv;
    for (const w of [...this.watchers]) {
      this.send(w.res, 'ERROR', expiredStatus(0, this.rv));
      w.close();
    }
  }

  /** Serve `group` from now on, as when its CRDs are installed (discovery lists it; list/watch work). */
  serveGroup(group: string): void {
    this.unserved.delete(group);
  }

  /** Stop serving `group`, as when its CRDs are deleted: its objects are deleted, its watches end. */
  unserveGroup(group: string): void {
    for (const [k, o] of [...this.objects]) {
      const t = typeOfKind(o.apiVersion ?? '', o.kind ?? '');
      if (t?.group === group && this.objects.has(k)) this.doDelete(t, o.metadata.namespace, o.metadata.name ?? '', false, false);
    }
    this.unserved.add(group);
    for (const w of [...this.watchers]) if (w.t.group === group) w.close();
  }

  private servedTypes(): ResourceType[] {
    return RESOURCE_TYPES.filter((t) => !this.unserved.has(t.group));
  }

  private findServed(group: string, version: string, plural: string): ResourceType | undefined {
    return this.unserved.has(group) ? undefined : findType(group, version, plural);
  }

  // ---- direct access for tests (the same code paths as the HTTP API) ----

  create(obj: KubeObject, opts: { dryRun?: boolean } = {}): KubeObject {
    const t = this.typeOf(obj);
    return this.doCreate(t, obj.metadata.namespace, structuredClone(obj), !!opts.dryRun);
  }

  get(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject | undefined {
    const t = typeOfKind(apiVersion, kind);
    if (!t) throw new Error(`the stand-in API server does not serve ${apiVersion} ${kind}`);
    const o = this.objects.get(objKey(t, t.namespaced ? (namespace ?? 'default') : undefined, name));
    return o && structuredClone(o);
  }

  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    const t = typeOfKind(apiVersion, kind);
    if (!t) throw new Error(`the stand-in API server does not serve ${apiVersion} ${kind}`);
    return this.select(
      t,
      namespace,
      () => true,
      () => true,
    ).map((o) => structuredClone(o));
  }

  /** Replace the object (optimistic concurrency when metadata.resourceVersion is set). */
  update(obj: KubeObject, subresource?: 'status'): KubeObject {
    const t = this.typeOf(obj);
    return this.doUpdate(t, obj.metadata.namespace, obj.metadata.name ?? '', structuredClone(obj), subresource, false);
  }

  delete(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject {
    const t = typeOfKind(apiVersion, kind);
    if (!t) throw new Error(`the stand-in API server does not serve ${apiVersion} ${kind}`);
    return this.doDelete(t, t.namespaced ? (namespace ?? 'default') : undefined, name, false, false);
  }

  /**
   * What the scheduler and kubelet do for a pod: create it (with its ServiceAccount if missing),
   * bind it to `node`, and report it Running and Ready with `ip`.
   */
  runPod(p: {
    namespace: string;
    name: string;
    node: string;
    ip: string;
    serviceAccount?: string;
    labels?: Record<string, string>;
    containerPorts?: { name?: string; containerPort: number }[];
    hostNetwork?: boolean;
    ready?: boolean;
  }): KubeObject {
    const sa = p.serviceAccount ?? 'default';
    if (!this.get('v1', 'ServiceAccount', sa, p.namespace))
      this.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: p.namespace } });
    const pod = this.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: p.labels ?? {} },
      spec: {
        nodeName: p.node,
        serviceAccountName: sa,
        ...(p.hostNetwork ? { hostNetwork: true } : {}),
        containers: [{ name: 'app', image: 'app:latest', ports: p.containerPorts ?? [] }],
      },
    });
    const ready = p.ready ?? true;
    pod.status = {
      ...(pod.status as object),
      phase: 'Running',
      podIP: p.ip,
      podIPs: [{ ip: p.ip }],
      hostIP: '10.199.0.1',
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: ready ? 'True' : 'False' },
      ],
    };
    return this.update(pod, 'status');
  }

  /** A projected ServiceAccount token, as kubelet would mount it (TokenRequest with a bound pod). */
  issueToken(req: TokenRequest): string {
    const sa = this.get('v1', 'ServiceAccount', req.serviceAccount, req.namespace);
    if (!sa) throw new Error(`ServiceAccount ${req.namespace}/${req.serviceAccount} does not exist`);
    return this.signer.sign(req, sa.metadata.uid ?? '');
  }

  // ---- HTTP ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (this.requests.length > 5000) this.requests.splice(0, 1000);
    const auth = req.headers.authorization ?? '';
    if (auth !== `Bearer ${this.token}`) {
      this.sendStatus(res, new ApiError(401, 'Unauthorized', 'Unauthorized'));
      req.resume();
      return;
    }
    this.route(req, res, url).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.sendStatus(res, err instanceof ApiError ? err : new ApiError(500, 'InternalError', (err as Error).message));
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const segs = url.pathname.split('/').filter((s) => s !== '');
    const method = req.method ?? 'GET';
    if (method === 'GET' && segs.length === 1 && segs[0] === 'version') {
      return sendJson(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-nodemesh-stand-in', platform: 'linux/amd64' });
    }
    if (method === 'GET' && url.pathname === '/api') return sendJson(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (method === 'GET' && url.pathname === '/apis') return sendJson(res, 200, this.groupList());
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs.length >= 2) {
      [group, version, rest] = ['', segs[1], segs.slice(2)];
    } else if (segs[0] === 'apis' && segs.length >= 3) {
      [group, version, rest] = [segs[1], segs[2], segs.slice(3)];
    } else if (segs[0] === 'apis' && segs.length === 2 && method === 'GET') {
      const g = this.groupList().groups.find((x) => x.name === segs[1]);
      if (!g) throw new ApiError(404, 'NotFound', `the server could not find the requested resource`);
      return sendJson(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
    } else {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    if (!this.servedTypes().some((t) => t.group === group && t.version === version)) {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    if (rest.length === 0 && method === 'GET') return sendJson(res, 200, this.resourceList(group, version));
    // /namespaces/<ns>/<plural>[/<name>[/<sub>]] or /<plural>[/<name>[/<sub>]]
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && this.findServed(group, version, rest[2])) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const t = this.findServed(group, version, rest[0]);
    if (!t) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    if (namespace !== undefined && !t.namespaced) throw new ApiError(404, 'NotFound', `${t.plural} is not namespaced`);
    const name = rest[1];
    const sub = rest[2];
    if (rest.length > 3 || (sub !== undefined && sub !== 'status' && !(sub === 'token' && t.kind === 'ServiceAccount'))) {
      throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    }
    const q = url.searchParams;
    const dryRun = q.getAll('dryRun').includes('All');
    if (t.createOnly) {
      if (method !== 'POST' || name !== undefined) throw new ApiError(405, 'MethodNotAllowed', `${t.plural} only supports create`);
      return sendJson(res, 201, this.tokenReview((await readJson(req)) as KubeObject));
    }
    if (name === undefined) {
      if (method === 'GET') {
        const labels = wrapSelector(() => parseLabelSelector(q.get('labelSelector')));
        const fields = wrapSelector(() => parseFieldSelector(q.get('fieldSelector')));
        if (q.get('watch') === 'true' || q.get('watch') === '1') return this.watch(req, res, t, namespace, labels, fields, q);
        const items = this.select(t, namespace, labels, fields);
        if (wantsTable(req)) return sendJson(res, 200, this.table(items, t));
        return sendJson(res, 200, { kind: `${t.kind}List`, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(this.rv) }, items });
      }
      if (method === 'POST') {
        const body = (await readJson(req)) as KubeObject;
        return sendJson(res, 201, this.doCreate(t, namespace, body, dryRun));
      }
      if (method === 'DELETE') throw new ApiError(405, 'MethodNotAllowed', 'deletecollection is not supported by the stand-in API server');
      throw new ApiError(405, 'MethodNotAllowed', `${method} is not supported here`);
    }
    if (t.namespaced && namespace === undefined) throw new ApiError(404, 'NotFound', `${t.plural} is namespaced: use /namespaces/<ns>/${t.plural}/${name}`);
    if (sub === 'token') {
      if (method !== 'POST') throw new ApiError(405, 'MethodNotAllowed', 'token only supports create');
      return sendJson(res, 201, this.tokenRequest(namespace ?? '', name, (await readJson(req)) as KubeObject));
    }
    const key = objKey(t, namespace, name);
    switch (method) {
      case 'GET': {
        const o = this.objects.get(key);
        if (!o) throw notFound(t, name);
        if (wantsTable(req)) return sendJson(res, 200, this.table([o], t));
        return sendJson(res, 200, o);
      }
      case 'PUT': {
        const body = (await readJson(req)) as KubeObject;
        return sendJson(res, 200, this.doUpdate(t, namespace, name, body, sub as 'status' | undefined, dryRun));
      }
      case 'PATCH': {
        const o = this.objects.get(key);
        if (!o) throw notFound(t, name);
        const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim();
        const body = await readJson(req);
        let patched: Json;
        try {
          if (ctype === 'application/merge-patch+json') patched = mergePatch(o as unknown as Json, body as Json);
          else if (ctype === 'application/strategic-merge-patch+json') {
            if (!t.group || t.group === 'apps' || t.group === 'discovery.k8s.io') patched = strategicMergePatch(o as unknown as Json, body as Json);
            else throw new ApiError(415, 'UnsupportedMediaType', `strategic merge patch is not supported for ${t.kind} (a custom resource); use a merge patch`);
          } else if (ctype === 'application/json-patch+json') patched = jsonPatch(o as unknown as Json, body);
          else
            throw new ApiError(
              415,
              'UnsupportedMediaType',
              `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got "${ctype}"; server-side apply is not supported by the stand-in API server)`,
            );
        } catch (err) {
          if (err instanceof PatchError) throw new ApiError(422, 'Invalid', err.message);
          throw err;
        }
        const next = patched as unknown as KubeObject;
        if (next.metadata?.resourceVersion === undefined) next.metadata = { ...next.metadata, resourceVersion: o.metadata.resourceVersion };
        return sendJson(res, 200, this.doUpdate(t, namespace, name, next, sub as 'status' | undefined, dryRun));
      }
      case 'DELETE': {
        let orphan = q.get('propagationPolicy') === 'Orphan';
        if (!orphan && req.headers['content-length'] !== '0' && (req.headers['content-length'] || req.headers['transfer-encoding'])) {
          const body = (await readJson(req).catch(() => ({}))) as { propagationPolicy?: string } | null;
          orphan = body?.propagationPolicy === 'Orphan';
        }
        return sendJson(res, 200, this.doDelete(t, namespace, name, dryRun, orphan));
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', `${method} is not supported here`);
    }
  }

  private groupList() {
    const groups = new Map<string, Set<string>>();
    for (const t of this.servedTypes()) if (t.group) groups.set(t.group, (groups.get(t.group) ?? new Set()).add(t.version));
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => {
        const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: vs, preferredVersion: vs[0] };
      }),
    };
  }

  private resourceList(group: string, version: string) {
    const resources = this.servedTypes()
      .filter((t) => t.group === group && t.version === version)
      .flatMap((t) => {
        const verbs = t.createOnly ? ['create'] : ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
        const main = {
          name: t.plural,
          singularName: t.singular,
          namespaced: t.namespaced,
          kind: t.kind,
          verbs,
          ...(t.shortNames ? { shortNames: [...t.shortNames] } : {}),
        };
        return t.status
          ? [main, { name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] }]
          : [main];
      });
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }

  private table(items: KubeObject[], t: ResourceType) {
    const now = Date.now();
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion: String(this.rv) },
      columnDefinitions: [
        { name: 'Name', type: 'string', format: 'name', description: 'Name', priority: 0 },
        ...(t.kind === 'Pod' ? [{ name: 'Node', type: 'string', format: '', description: 'spec.nodeName', priority: 0 }] : []),
        { name: 'Age', type: 'string', format: '', description: 'CreationTimestamp', priority: 0 },
      ],
      rows: items.map((o) => ({
        cells: [
          o.metadata.name,
          ...(t.kind === 'Pod' ? [(o.spec as { nodeName?: string })?.nodeName ?? '<none>'] : []),
          age(now, o.metadata.creationTimestamp),
        ],
        object: o,
      })),
    };
  }

  private typeOf(obj: KubeObject): ResourceType {
    const t = typeOfKind(obj.apiVersion ?? '', obj.kind ?? '');
    if (!t || this.unserved.has(t.group)) throw new Error(`the stand-in API server does not serve ${obj.apiVersion} ${obj.kind}`);
    return t;
  }

  private select(t: ResourceType, namespace: string | undefined, labels: Matcher, fields: FieldMatcher): KubeObject[] {
    const prefix = `${typeKey(t)}|`;
    const out: KubeObject[] = [];
    for (const [k, o] of this.objects) {
      if (!k.startsWith(prefix)) continue;
      if (namespace !== undefined && o.metadata.namespace !== namespace) continue;
      if (labels(o.metadata.labels) && fields(o)) out.push(o);
    }
    return out.sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  }

  private doCreate(t: ResourceType, namespace: string | undefined, body: KubeObject, dryRun: boolean): KubeObject {
    if (!body || typeof body !== 'object' || !body.metadata) throw new ApiError(400, 'BadRequest', 'the object has no metadata');
    // Like the real API server, a body without apiVersion/kind takes them from the URL.
    body.apiVersion ??= apiVersionOf(t);
    body.kind ??= t.kind;
    if (body.kind !== t.kind || body.apiVersion !== apiVersionOf(t)) {
      throw new ApiError(
        400,
        'BadRequest',
        `the API version in the data (${body.apiVersion}) and kind (${body.kind}) do not match ${apiVersionOf(t)} ${t.kind}`,
      );
    }
    const ns = t.namespaced ? (namespace ?? body.metadata.namespace ?? 'default') : undefined;
    if (t.namespaced && body.metadata.namespace !== undefined && body.metadata.namespace !== ns) {
      throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    let name = body.metadata.name;
    if (!name && body.metadata.generateName) name = body.metadata.generateName + randomBytes(3).toString('hex').slice(0, 5);
    if (!name || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      throw new ApiError(
        422,
        'Invalid',
        `${t.kind} "${name ?? ''}" is invalid: metadata.name: Invalid value: "${name ?? ''}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
      );
    }
    if (ns !== undefined && !this.objects.has(objKey(nsType(), undefined, ns))) {
      throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
    }
    const key = objKey(t, ns, name);
    if (this.objects.has(key))
      throw new ApiError(409, 'AlreadyExists', `${t.plural}${t.group ? '.' + t.group : ''} "${name}" already exists`, { name, group: t.group, kind: t.plural });
    const obj: KubeObject = structuredClone(body);
    obj.metadata = { ...obj.metadata, name, uid: randomUUID(), generation: 1, creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
    delete obj.metadata.resourceVersion;
    if (ns !== undefined) obj.metadata.namespace = ns;
    if (t.status) delete obj.status;
    defaults(
      t,
      obj,
      this.select(
        t,
        undefined,
        () => true,
        () => true,
      ),
    );
    if (dryRun) return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(this.rv) } };
    const created = this.commit(t, key, 'ADDED', obj);
    // What the ServiceAccount controller does for every new namespace.
    if (t.kind === 'Namespace') this.doCreate(saType(), name, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } }, false);
    return created;
  }

  private doUpdate(t: ResourceType, namespace: string | undefined, name: string, body: KubeObject, sub: 'status' | undefined, dryRun: boolean): KubeObject {
    const key = objKey(t, namespace, name);
    const old = this.objects.get(key);
    if (!old) throw notFound(t, name);
    if (!body?.metadata) throw new ApiError(400, 'BadRequest', 'the object has no metadata');
    if (body.metadata.name !== undefined && body.metadata.name !== name)
      throw new ApiError(400, 'BadRequest', `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
    const sent = body.metadata.resourceVersion;
    if (sent !== undefined && sent !== '' && sent !== old.metadata.resourceVersion) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${t.plural}${t.group ? '.' + t.group : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, group: t.group, kind: t.plural },
      );
    }
    let next: KubeObject;
    if (sub === 'status') {
      next = { ...structuredClone(old), status: structuredClone(body.status) };
    } else {
      next = structuredClone(body);
      next.apiVersion = apiVersionOf(t);
      next.kind = t.kind;
      if (t.status) next.status = structuredClone(old.status);
      next.metadata = {
        ...next.metadata,
        name,
        uid: old.metadata.uid,
        creationTimestamp: old.metadata.creationTimestamp,
        generation: (old.metadata.generation ?? 1) + (JSON.stringify(next.spec) !== JSON.stringify(old.spec) ? 1 : 0),
      };
      if (namespace !== undefined) next.metadata.namespace = namespace;
      if (t.kind === 'Service') {
        const spec = (next.spec ?? {}) as { clusterIP?: string };
        const before = (old.spec as { clusterIP?: string }).clusterIP;
        if (spec.clusterIP === undefined || spec.clusterIP === '') spec.clusterIP = before;
        else if (spec.clusterIP !== before)
          throw new ApiError(422, 'Invalid', `Service "${name}" is invalid: spec.clusterIP: Invalid value: "${spec.clusterIP}": field is immutable`);
      }
    }
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    if (JSON.stringify(next) === JSON.stringify(old)) return structuredClone(old);
    if (dryRun) return next;
    return this.commit(t, key, 'MODIFIED', next, old);
  }

  private doDelete(t: ResourceType, namespace: string | undefined, name: string, dryRun: boolean, orphan: boolean): KubeObject {
    const key = objKey(t, namespace, name);
    const old = this.objects.get(key);
    if (!old) throw notFound(t, name);
    if (dryRun) return structuredClone(old);
    if (t.kind === 'Namespace') {
      for (const [k, o] of [...this.objects]) {
        if (o.metadata.namespace === name && this.objects.has(k)) {
          const ot = typeOfKind(o.apiVersion ?? '', o.kind ?? '') as ResourceType;
          this.doDelete(ot, name, o.metadata.name ?? '', false, false);
        }
      }
    }
    this.objects.delete(key);
    const gone = this.record(t, 'DELETED', old);
    if (!orphan) {
      // ownerReference garbage collection (foreground, at once): dependents of the deleted uid.
      for (const [k, o] of [...this.objects]) {
        if (!this.objects.has(k)) continue;
        if (o.metadata.ownerReferences?.some((r) => r.uid === old.metadata.uid)) {
          const ot = typeOfKind(o.apiVersion ?? '', o.kind ?? '') as ResourceType;
          this.doDelete(ot, o.metadata.namespace, o.metadata.name ?? '', false, false);
        }
      }
    }
    return gone;
  }

  private commit(t: ResourceType, key: string, type: WatchEventType, obj: KubeObject, prev?: KubeObject): KubeObject {
    this.objects.set(key, obj);
    return this.record(t, type, obj, prev);
  }

  /** Gives `obj` the next resourceVersion, appends the event to the history and sends it to watchers. */
  private record(t: ResourceType, type: WatchEventType, obj: KubeObject, prev?: KubeObject): KubeObject {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    const ev: StoredEvent = { rv: this.rv, type, t, obj: structuredClone(obj), prev };
    this.history.push(ev);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.oldestRv = dropped[dropped.length - 1].rv;
    }
    for (const w of this.watchers) this.deliver(w, ev);
    return structuredClone(obj);
  }

  private deliver(w: Watcher, ev: StoredEvent): void {
    if (w.t !== ev.t) return;
    if (w.namespace !== undefined && ev.obj.metadata.namespace !== w.namespace) return;
    const now = w.labels(ev.obj.metadata.labels) && w.fields(ev.obj);
    if (ev.type === 'MODIFIED' && ev.prev) {
      const before = w.labels(ev.prev.metadata.labels) && w.fields(ev.prev);
      if (now && !before) return this.send(w.res, 'ADDED', ev.obj);
      if (!now && before) return this.send(w.res, 'DELETED', ev.obj);
    }
    if (now) this.send(w.res, ev.type, ev.obj);
  }

  private send(res: ServerResponse, type: string, object: unknown): void {
    if (!res.writableEnded) res.write(JSON.stringify({ type, object }) + '\n');
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    namespace: string | undefined,
    labels: Matcher,
    fields: FieldMatcher,
    q: URLSearchParams,
  ): void {
    const rvParam = q.get('resourceVersion') ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && !Number.isInteger(fromRv)) throw new ApiError(400, 'BadRequest', `invalid resourceVersion "${rvParam}"`);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    if (fromRv !== undefined && fromRv < this.oldestRv) {
      this.send(res, 'ERROR', expiredStatus(fromRv, this.oldestRv));
      res.end();
      return;
    }
    let bookmark: NodeJS.Timeout | undefined;
    let timeout: NodeJS.Timeout | undefined;
    const w: Watcher = {
      t,
      namespace,
      labels,
      fields,
      res,
      close: () => {
        clearInterval(bookmark);
        clearTimeout(timeout);
        this.watchers.delete(w);
        if (!res.writableEnded) res.end();
      },
    };
    if (fromRv === undefined) {
      for (const o of this.select(t, namespace, labels, fields)) this.send(res, 'ADDED', o);
    } else {
      for (const ev of this.history) if (ev.rv > fromRv) this.deliver(w, ev);
    }
    this.watchers.add(w);
    if (q.get('allowWatchBookmarks') === 'true') {
      bookmark = setInterval(
        () => this.send(res, 'BOOKMARK', { kind: t.kind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(this.rv) } }),
        this.bookmarkMs,
      );
    }
    const secs = Number(q.get('timeoutSeconds') ?? '');
    if (secs > 0) timeout = setTimeout(() => w.close(), secs * 1000);
    req.on('close', () => w.close());
    res.on('close', () => w.close());
  }

  private tokenReview(body: KubeObject): KubeObject {
    const spec = (body?.spec ?? {}) as { token?: string; audiences?: string[] };
    const wanted = spec.audiences?.length ? spec.audiences : [...this.apiAudiences];
    const fail = (error: string) => ({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      metadata: { creationTimestamp: null },
      spec,
      status: { authenticated: false, user: {}, error },
    });
    const claims = spec.token ? this.signer.verify(spec.token) : undefined;
    if (!claims) return fail('[invalid bearer token, token lookup failed]') as unknown as KubeObject;
    if (claims.exp * 1000 < Date.now()) return fail('[invalid bearer token, service account token has expired]') as unknown as KubeObject;
    const audiences = claims.aud.filter((a) => wanted.includes(a));
    if (audiences.length === 0)
      return fail(
        `[invalid bearer token, token audiences ${JSON.stringify(claims.aud)} is invalid for the target audiences ${JSON.stringify(wanted)}]`,
      ) as unknown as KubeObject;
    const k = claims['kubernetes.io'];
    const sa = this.objects.get(objKey(saType(), k.namespace, k.serviceaccount.name));
    if (!sa || sa.metadata.uid !== k.serviceaccount.uid)
      return fail(`[invalid bearer token, service account ${k.namespace}/${k.serviceaccount.name} has been deleted]`) as unknown as KubeObject;
    if (k.pod) {
      const pod = this.objects.get(objKey(podType(), k.namespace, k.pod.name));
      if (!pod || pod.metadata.uid !== k.pod.uid)
        return fail(`[invalid bearer token, pod ${k.namespace}/${k.pod.name} (uid ${k.pod.uid}) is not bound to this token any more]`) as unknown as KubeObject;
    }
    const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`] };
    if (k.pod) {
      extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
    }
    if (k.node) {
      extra['authentication.kubernetes.io/node-name'] = [k.node.name];
      if (k.node.uid) extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
    }
    return {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      metadata: { creationTimestamp: null } as unknown as KubeObject['metadata'],
      spec,
      status: {
        authenticated: true,
        audiences,
        user: {
          username: claims.sub,
          uid: k.serviceaccount.uid,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'],
          extra,
        },
      },
    };
  }

  private tokenRequest(namespace: string, sa: string, body: KubeObject): KubeObject {
    const spec = (body?.spec ?? {}) as { audiences?: string[]; expirationSeconds?: number; boundObjectRef?: { kind?: string; name?: string; uid?: string } };
    if (!this.objects.get(objKey(saType(), namespace, sa))) throw new ApiError(404, 'NotFound', `serviceaccounts "${sa}" not found`);
    let pod: { name: string; uid: string } | undefined;
    let node: { name: string } | undefined;
    if (spec.boundObjectRef) {
      if (spec.boundObjectRef.kind !== 'Pod') throw new ApiError(422, 'Invalid', 'boundObjectRef.kind: only Pod is supported by the stand-in API server');
      const p = this.objects.get(objKey(podType(), namespace, spec.boundObjectRef.name ?? ''));
      if (!p || (spec.boundObjectRef.uid && p.metadata.uid !== spec.boundObjectRef.uid))
        throw new ApiError(404, 'NotFound', `pods "${spec.boundObjectRef.name}" not found`);
      pod = { name: p.metadata.name ?? '', uid: p.metadata.uid ?? '' };
      const nodeName = (p.spec as { nodeName?: string })?.nodeName;
      if (nodeName) node = { name: nodeName };
    }
    const expirationSeconds = spec.expirationSeconds ?? 3600;
    const token = this.issueToken({
      namespace,
      serviceAccount: sa,
      audiences: spec.audiences?.length ? spec.audiences : [...this.apiAudiences],
      expirationSeconds,
      pod,
      node,
    });
    return {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      metadata: { name: sa, namespace },
      spec: { ...spec, expirationSeconds },
      status: { token, expirationTimestamp: new Date(Date.now() + expirationSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  private sendStatus(res: ServerResponse, err: ApiError): void {
    sendJson(res, err.code, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: err.message,
      reason: err.reason,
      ...(err.details ? { details: err.details } : {}),
      code: err.code,
    });
  }
}

const nsType = () => typeOfKind('v1', 'Namespace') as ResourceType;
const saType = () => typeOfKind('v1', 'ServiceAccount') as ResourceType;
const podType = () => typeOfKind('v1', 'Pod') as ResourceType;

function objKey(t: ResourceType, namespace: string | undefined, name: string): string {
  return `${typeKey(t)}|${t.namespaced ? (namespace ?? '') : ''}|${name}`;
}

function notFound(t: ResourceType, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${t.plural}${t.group ? '.' + t.group : ''} "${name}" not found`, { name, group: t.group, kind: t.plural });
}

function expiredStatus(asked: number, oldest: number) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `too old resource version: ${asked} (${oldest})`,
    reason: 'Expired',
    code: 410,
  };
}

function wrapSelector<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SelectorError) throw new ApiError(400, 'BadRequest', err.message);
    throw err;
  }
}

function wantsTable(req: IncomingMessage): boolean {
  return /as=Table/.test(req.headers.accept ?? '');
}

function age(now: number, ts: string | undefined): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}

/** The defaults the real API server's admission and registry set that nodemesh reads. */
function defaults(t: ResourceType, obj: KubeObject, existing: KubeObject[]): void {
  if (t.kind === 'Namespace') obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name ?? '' };
  if (t.kind === 'Pod') {
    const spec = (obj.spec ?? {}) as {
      serviceAccountName?: string;
      containers?: { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }[];
    };
    spec.serviceAccountName ??= 'default';
    obj.spec = spec;
    obj.status = { phase: 'Pending', qosClass: qosClass(spec.containers ?? []) };
  }
  if (t.kind === 'Service') {
    const spec = (obj.spec ?? {}) as { clusterIP?: string; type?: string; clusterIPs?: string[] };
    spec.type ??= 'ClusterIP';
    if (!spec.clusterIP && spec.type !== 'ExternalName') {
      const used = new Set(existing.map((s) => (s.spec as { clusterIP?: string }).clusterIP));
      for (let i = 10; i < 65534; i++) {
        const ip = `10.96.${i >> 8}.${i & 255}`;
        if (!used.has(ip)) {
          spec.clusterIP = ip;
          break;
        }
      }
    }
    if (spec.clusterIP && spec.clusterIP !== 'None') spec.clusterIPs = [spec.clusterIP];
    obj.spec = spec;
  }
}

function qosClass(containers: { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }[]): string {
  let any = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined || (req[r] !== undefined && req[r] !== lim[r])) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'the request body is too large');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `the body is not JSON: ${(err as Error).message}`);
  }
}
