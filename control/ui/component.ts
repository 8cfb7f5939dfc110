// The /ui page on the config API's port (15014): a component of the control plane that answers
// /ui/* before the bearer check and authenticates it itself (auth.ts: a one-time login code from
// `nodemesh dashboard` becomes an HttpOnly session cookie; a bearer token works too). It serves the
// static page (control/ui/static: plain HTML, CSS and JS modules, no build step), JSON views built
// from the store, the observer and the xDS client list (model.ts), and an SSE stream that sends a
// new overview whenever the store changes or the observer polled (at most once a second).
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe';
import { projectRoot } from '../../common/paths';
import { ApiClient } from '../api/client';
import { syncState } from '../envoy/debug';
import type { XdsTypeDump } from '../envoy/debug';
import type { DeltaTypeView } from '../xds/delta-state';
import { bearerMatches, readToken } from '../api/token';
import type { ControlPlane, ControlPlaneComponent } from '../control-plane';
import type { ObserverComponent } from '../observe';
import type { Watch } from '../store/store';
import { SESSION_COOKIE, UiAuth, cookieValue, sessionCookie } from './auth';
import { overview, policiesFor, recordsForEdge, type UiOverview, type UiProxy } from './model';

export const UI_COMPONENT = 'ui';
const STATIC_DIR = join(projectRoot, 'control', 'ui', 'static');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
/** Open /ui/api/events streams: in all (then 503) and per client — a session, or the token (then 429). */
export const UI_STREAM_LIMITS = { total: 32, perClient: 4 } as const;
const MAX_STREAM_BUFFER = 8 * 1024 * 1024;
const PUSH_MIN_MS = 1000;
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
};

interface XdsDump {
  clients?: { api: string; nodeId: string; peer: string; view: string; types: Record<string, Record<string, unknown>> }[];
}

export class UiComponent implements ControlPlaneComponent {
  readonly name = UI_COMPONENT;
  readonly auth = new UiAuth();
  private cp?: ControlPlane;
  private token = '';
  private watch?: Watch;
  private offObserver?: () => void;
  private readonly streams = new Set<ServerResponse>();
  private readonly streamsByClient = new Map<string, number>();
  private pushTimer?: NodeJS.Timeout;
  private lastPush = 0;
  private files = new Map<string, string>();
  private self?: ApiClient;

  constructor(private readonly observe: ObserverComponent) {}

  async start(cp: ControlPlane): Promise<void> {
    this.cp = cp;
    this.token = readToken(cp.tokenFile);
    try {
      this.files = new Map(readdirSync(STATIC_DIR).map((f) => [f, join(STATIC_DIR, f)]));
    } catch (err) {
      // The page is an extra: a control plane without its files still runs (and says why /ui is empty).
      cp.log.warn({ dir: STATIC_DIR, err: (err as Error).message }, 'the /ui page files are missing; /ui answers 404');
    }
    this.watch = cp.store.watch(cp.store.revision, () => this.schedulePush());
    this.offObserver = this.observe.observer?.onUpdate(() => this.schedulePush());
    this.self = new ApiClient({ server: cp.apiURL, token: this.token, ca: cp.apiTls?.trustBundlePem, timeoutMs: 5000 });
  }

  async stop(): Promise<void> {
    this.watch?.close();
    this.offObserver?.();
    if (this.pushTimer) clearTimeout(this.pushTimer);
    for (const s of this.streams) s.end();
    this.streams.clear();
    this.streamsByClient.clear();
  }

  /** The overview the page shows now. */
  overview(): UiOverview {
    const cp = this.cp as ControlPlane;
    const o = this.observe.observer;
    return overview(cp.store.snapshot(), {
      edges: o?.edges() ?? [],
      proxies: this.proxies(),
      observations: o?.proxyObservations() ?? [],
      intervalMs: o?.intervalMs ?? 0,
      skipped: o?.skippedTargets ?? 0,
    });
  }

  private proxies(): UiProxy[] {
    const dump = this.cp?.debug('xds', new URLSearchParams()) as XdsDump | undefined;
    return (dump?.clients ?? []).map((c) => ({
      nodeId: c.nodeId,
      api: c.api,
      view: c.view,
      peer: c.peer,
      types: Object.fromEntries(Object.entries(c.types).map(([k, t]) => [k, syncState(t as unknown as XdsTypeDump | DeltaTypeView)])),
      nacks: Object.entries(c.types).flatMap(([k, t]) => {
        const r = t.rejected as { message?: string } | undefined;
        return r && syncState(t as unknown as XdsTypeDump | DeltaTypeView) === 'NACKED' ? [{ type: k, message: String(r.message ?? '') }] : [];
      }),
    }));
  }

  serve(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    if (url.pathname !== '/ui' && !url.pathname.startsWith('/ui/')) return false;
    this.route(req, res, url).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `the page failed: ${err instanceof Error ? err.message : String(err)}\n`);
      else res.end();
    });
    return true;
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const bearer = bearerMatches(req.headers.authorization, this.token);
    if (path === '/ui/login-code') {
      if (method !== 'POST') return send(res, 405, 'text/plain', 'POST with the API bearer token\n');
      if (!bearer) return send(res, 401, 'text/plain', 'a login code needs "Authorization: Bearer <API token>"\n');
      return sendJson(res, 200, { kind: 'UiLoginCode', ...this.auth.issueCode(), path: '/ui/login' });
    }
    if (path === '/ui/login') {
      const session = this.auth.redeem(url.searchParams.get('code'));
      if (!session) return send(res, 401, 'text/plain', 'this login link was used already or has expired (they last 60 s): run `nodemesh dashboard` again\n');
      const secure = (req.socket as TLSSocket).encrypted === true && req.headers['x-nodemesh-dashboard'] === undefined;
      res.writeHead(303, { ...SECURITY_HEADERS, location: '/ui/', 'set-cookie': sessionCookie(session, secure) }).end();
      return;
    }
    if (!bearer && !this.auth.hasSession(req.headers.cookie))
      return send(res, 401, 'text/plain', 'not logged in: open the link `nodemesh dashboard` prints (or send the API bearer token)\n');
    if (method !== 'GET') return send(res, 405, 'text/plain', 'the page is read-only (GET)\n');
    if (path === '/ui' || path === '/ui/') return this.file(res, 'index.html');
    if (path.startsWith('/ui/static/')) return this.file(res, path.slice('/ui/static/'.length));
    if (path === '/ui/logout') {
      this.auth.logout(req.headers.cookie);
      return send(res, 200, 'text/plain', 'logged out\n');
    }
    if (path === '/ui/api/overview') return sendJson(res, 200, this.overview());
    if (path === '/ui/api/node') return sendJson(res, 200, this.nodeDetail(url.searchParams.get('id') ?? ''));
    if (path === '/ui/api/edge') return sendJson(res, 200, await this.edgeDetail(url.searchParams.get('id') ?? ''));
    if (path === '/ui/api/events') return this.stream(req, res, bearer ? 'token' : `session:${cookieValue(req.headers.cookie, SESSION_COOKIE)}`);
    return send(res, 404, 'text/plain', `no page at ${path}\n`);
  }

  private file(res: ServerResponse, name: string): void {
    const full = this.files.get(name);
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (!full || !type) return send(res, 404, 'text/plain', `no file ${name}\n`);
    send(res, 200, type, readFileSync(full));
  }

  private trustDomain(): string {
    return process.env.NODEMESH_TRUST_DOMAIN || DEFAULT_TRUST_DOMAIN;
  }

  /** A workload's or Service's details (`id` = wl:ns/name, svc:ns/name, wp:ns/name). */
  nodeDetail(id: string): unknown {
    const cp = this.cp as ControlPlane;
    const snap = cp.store.snapshot();
    const m = /^(wl|svc|wp):([^/]+)\/(.+)$/.exec(id);
    const records = this.observe.observer?.recentRecords({ limit: 5000 }) ?? [];
    if (!m) return { kind: 'NodeDetail', id, known: false, records: records.filter((r) => JSON.stringify(r.src ?? {}).includes(id)).slice(-20) };
    const [, kind, ns, name] = m as unknown as [string, string, string, string];
    if (kind === 'wl') {
      const w = snap.get('Workload', name, ns);
      if (!w) return { kind: 'NodeDetail', id, known: false };
      // A node proxy's node id is its node's name, or `<kind>~<node>` (node-proxy~node1).
      const proxy = this.proxies().find((p) => p.nodeId === w.spec.node || p.nodeId.endsWith(`~${w.spec.node}`));
      const who = `${ns}/${name}`;
      const nsLabels = snap.get('Namespace', ns)?.metadata.labels;
      const ov = overview(snap, { edges: [], proxies: [], observations: [], intervalMs: 0, skipped: 0 }).workloads.find((x) => x.id === id);
      return {
        kind: 'NodeDetail',
        id,
        known: true,
        workload: {
          namespace: ns,
          name,
          node: w.spec.node,
          serviceAccount: w.spec.serviceAccount,
          identity: `spiffe://${this.trustDomain()}/ns/${ns}/sa/${w.spec.serviceAccount}`,
          addresses: w.spec.addresses,
          ports: w.spec.ports ?? [],
          labels: w.metadata.labels ?? {},
          namespaceLabels: nsLabels ?? {},
          enrolled: ov?.enrolled ?? false,
        },
        capture: proxy
          ? { nodeProxy: proxy.nodeId, connected: true, peer: proxy.peer, types: proxy.types, nacks: proxy.nacks }
          : { nodeProxy: w.spec.node, connected: false },
        certificate: this.certificate(`spiffe://${this.trustDomain()}/ns/${ns}/sa/${w.spec.serviceAccount}`, w.spec.node),
        policies: policiesFor(snap, id),
        records: records.filter((r) => (r.src as { workload?: string })?.workload === who || (r.dst as { workload?: string })?.workload === who).slice(-30),
      };
    }
    if (kind === 'svc') {
      const s = snap.get('Service', name, ns);
      return {
        kind: 'NodeDetail',
        id,
        known: s !== undefined,
        service: s ? { namespace: ns, name, spec: s.spec, labels: s.metadata.labels ?? {} } : undefined,
        policies: policiesFor(snap, id),
      };
    }
    const g = snap.get('Gateway', name, ns);
    return {
      kind: 'NodeDetail',
      id,
      known: g !== undefined,
      waypoint: g ? { namespace: ns, name, labels: g.metadata.labels ?? {} } : undefined,
      proxies: this.proxies().filter((p) => p.view === `waypoint:${ns}/${name}`),
    };
  }

  /** The latest certificate the CA issued for this identity to the workload's node, with its expiry. */
  private certificate(identity: string, node: string): unknown {
    const all = this.cp?.issued.forIdentity(identity) ?? [];
    const mine = all.find((c) => c.node === node);
    if (!mine)
      return {
        identity,
        note: `no certificate for ${identity} issued to node ${node} since this control plane started (node proxies fetch one when a workload is enrolled and renew it at half life)`,
      };
    const left = Date.parse(mine.notAfter) - Date.now();
    return { identity, ...mine, expiresInSeconds: Math.round(left / 1000), expired: left <= 0, otherNodes: all.filter((c) => c !== mine).map((c) => c.node) };
  }

  /** An edge's details (`id` = source->destination): numbers, identities, policies, recent records, explain. */
  async edgeDetail(id: string): Promise<unknown> {
    const cp = this.cp as ControlPlane;
    const snap = cp.store.snapshot();
    const raw = this.observe.observer?.edges().find((e) => e.id === id);
    const edge = this.overview().edges.find((e) => e.id === id);
    const arrow = id.indexOf('->');
    const source = edge?.source ?? id.slice(0, Math.max(0, arrow));
    const destination = edge?.destination ?? id.slice(arrow + 2);
    const all = this.observe.observer?.recentRecords({ limit: 5000 }) ?? [];
    // Records name the destination as the proxy saw it (a waypoint: the VIP asked for), the page by Service.
    const matched = new Set([
      ...recordsForEdge(all, { source, destination, sourcePrincipal: edge?.sourcePrincipal }),
      ...(raw ? recordsForEdge(all, { source: raw.source, destination: raw.destination, sourcePrincipal: raw.sourcePrincipal }) : []),
    ]);
    const records = all.filter((r) => matched.has(r)).slice(-30);
    const denyingPolicies = [...new Set(records.flatMap(denyingPolicy))];
    return {
      kind: 'EdgeDetail',
      id,
      edge,
      source,
      destination,
      identities: { source: edge?.sourcePrincipal, destination: edge?.destinationPrincipal },
      policies: policiesFor(snap, destination),
      denyingPolicies,
      records,
      explain: await this.explain(source, destination, records),
    };
  }

  private async explain(source: string, destination: string, records: readonly Readonly<Record<string, unknown>>[]): Promise<unknown> {
    const from = source.startsWith('wl:') ? source.slice(3) : undefined;
    if (!from) return { available: false, note: 'explain needs a known source workload' };
    const svc = /^svc:([^/]+)\/(.+)$/.exec(destination);
    const to = svc ? `${svc[2]}.${svc[1]}` : destination.replace(/^(wl|addr):/, '');
    const seen = records.map((r) => (r.dst as { port?: number } | undefined)?.port).filter((p): p is number => typeof p === 'number');
    // A Service's own port (records through a waypoint carry the tunnel's port, 15008).
    const svcPorts = svc
      ? (this.cp?.store
          .snapshot()
          .get('Service', svc[2]!, svc[1]!)
          ?.spec.ports.map((p) => p.port) ?? [])
      : [];
    const port = svc ? (seen.find((p) => svcPorts.includes(p)) ?? svcPorts[0]) : seen[0];
    const method = records.map((r) => r.method).find((m) => typeof m === 'string');
    const q = new URLSearchParams({ from, to });
    if (port !== undefined) q.set('port', String(port));
    if (typeof method === 'string') q.set('method', method);
    try {
      return { available: true, query: Object.fromEntries(q), answer: await (this.self as ApiClient).getJson(`/v1/explain?${q}`) };
    } catch (err) {
      const status = (err as { status?: number }).status;
      return {
        available: false,
        query: Object.fromEntries(q),
        note: status === 404 ? `this control plane does not answer GET /v1/explain (${(err as Error).message})` : `explain failed: ${(err as Error).message}`,
      };
    }
  }

  private stream(req: IncomingMessage, res: ServerResponse, client: string): void {
    const mine = this.streamsByClient.get(client) ?? 0;
    if (mine >= UI_STREAM_LIMITS.perClient) {
      res.setHeader('retry-after', '5');
      return send(res, 429, 'text/plain', `this session has ${mine} pages of the mesh open (at most ${UI_STREAM_LIMITS.perClient}); close one\n`);
    }
    if (this.streams.size >= UI_STREAM_LIMITS.total) {
      res.setHeader('retry-after', '5');
      return send(res, 503, 'text/plain', `the control plane serves ${this.streams.size} open pages (at most ${UI_STREAM_LIMITS.total}); close one\n`);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream' });
    this.streams.add(res);
    this.streamsByClient.set(client, mine + 1);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      this.streams.delete(res);
      const n = (this.streamsByClient.get(client) ?? 1) - 1;
      if (n > 0) this.streamsByClient.set(client, n);
      else this.streamsByClient.delete(client);
    };
    req.on('close', end);
    res.on('close', end);
    this.write(res, JSON.stringify(this.overview()));
  }

  private write(res: ServerResponse, data: string): void {
    res.write(`event: overview\ndata: ${data}\n\n`);
    if (res.writableLength > MAX_STREAM_BUFFER) {
      this.streams.delete(res);
      res.end();
    }
  }

  private schedulePush(): void {
    if (this.pushTimer || this.streams.size === 0) return;
    const wait = Math.max(0, this.lastPush + PUSH_MIN_MS - Date.now());
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      this.lastPush = Date.now();
      if (this.streams.size === 0) return;
      const data = JSON.stringify(this.overview());
      for (const s of this.streams) this.write(s, data);
    }, wait);
    this.pushTimer.unref();
  }
}

/** Which policy a record says refused it: the node proxy's `policy`, or the waypoint's RBAC detail. */
function denyingPolicy(r: Readonly<Record<string, unknown>>): string[] {
  if (r.response_flags === 'DENY') return [typeof r.policy === 'string' ? r.policy : 'no policy named'];
  const m = typeof r.detail === 'string' ? /^rbac_access_denied_matched_policy\[(.*)\]$/.exec(r.detail) : null;
  if (!m) return [];
  if (m[1] === 'none') return ['no ALLOW rule matched (RBAC at the waypoint)'];
  // ns.name[rule]: a DENY policy's rule.
  const p = /^([^.]+)\.(.+?)(\[\d+\])?$/.exec(m[1]!);
  return [p ? `${p[1]}/${p[2]} (DENY at the waypoint)` : m[1]!];
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json', JSON.stringify(body));
}

/** The observer and the page: the line control/components.ts adds. */
export async function uiComponents(env: NodeJS.ProcessEnv = process.env): Promise<ControlPlaneComponent[]> {
  const { ObserverComponent } = await import('../observe/component.js');
  const observe = new ObserverComponent(env);
  return [observe, new UiComponent(observe)];
}
