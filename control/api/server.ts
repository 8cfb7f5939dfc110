// The config API on 15014: apply / get / list / delete / watch behind a bearer token, plus
// unauthenticated /healthz/ready and /metrics. Every write goes through the store, so a bad
// document is refused whole (400, with each field and reason) and nothing changes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/log';
import { buildInfo } from '../../common/version';
import { resolveKind, type KindName } from '../resources/kinds';
import { parseSelector } from '../resources/selectors';
import { ValidationError } from '../resources/validation';
import { InvalidBatchError, StoreError } from '../store/errors';
import type { ConfigStore, Watch, WatchBatch } from '../store/store';
import { configMetrics, type ConfigMetrics } from '../metrics';
import { DocumentError } from './documents';
import { ExplainError, parseExplainQuery, type Explainer } from './explain';
import { ParseBusyError, ParsePool, type ParsePoolOptions } from './parse-pool';
import { parseApiPath, RouteError, type Route } from './routes';
import { statusBody } from './status';
import { bearerMatches } from './token';

export interface ConfigApiOptions {
  store: ConfigStore;
  token: string;
  registry: Registry;
  log: Logger;
  /** Extra readiness condition (e.g. the xDS server is listening); the store being open is implied. */
  isReady?: () => boolean;
  /** Debug data for GET /debug/<path> (behind the token); undefined means 404. */
  debug?: (path: string, query: URLSearchParams) => unknown;
  /** Answers GET /v1/explain (injected by the process: explain/ runs the proxies' code); undefined: 404. */
  explain?: Explainer;
  /** Largest request body accepted (default 8 MiB). */
  maxBodyBytes?: number;
  /** How bodies are parsed off the event loop (parse-pool.ts; defaults: PARSE_LIMITS). */
  parse?: ParsePoolOptions;
  /** How often an idle watch stream gets a BOOKMARK line (default 15 s). */
  heartbeatMs?: number;
  /** Paths that authenticate themselves (the /ui page), tried before the bearer check; true when taken. */
  pages?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly errors?: readonly ValidationError[],
  ) {
    super(message);
  }
}

const MAX_WATCH_BUFFER = 16 * 1024 * 1024;

export class ConfigApi {
  private readonly metrics: ConfigMetrics;
  private readonly streams = new Set<() => void>();
  private readonly maxBody: number;
  private readonly heartbeatMs: number;
  private readonly parser: ParsePool;

  constructor(private readonly opts: ConfigApiOptions) {
    this.parser = new ParsePool({ log: opts.log, ...opts.parse });
    this.metrics = configMetrics(opts.registry);
    this.metrics.revision.set(opts.store.revision);
    this.maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
  }

  /** The request listener for an http.Server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    res.on('finish', () => this.metrics.requests.inc({ method: req.method ?? '', code: String(res.statusCode) }));
    this.route(req, res).catch((err: unknown) => this.fail(res, err));
  };

  /** Ends every open watch stream (shutdown). */
  closeStreams(): void {
    for (const end of [...this.streams]) end();
    void this.parser.close();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    if (url.pathname === '/healthz/ready') {
      const ready = this.opts.isReady?.() ?? true;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ok\n' : 'not ready\n');
      return;
    }
    if (url.pathname === '/metrics') {
      this.metrics.revision.set(this.opts.store.revision);
      const text = await this.opts.registry.metrics();
      res.writeHead(200, { 'content-type': this.opts.registry.contentType }).end(text);
      return;
    }
    if (this.opts.pages?.(req, res, url)) return;
    if (!bearerMatches(req.headers.authorization, this.opts.token)) {
      throw new HttpError(
        401,
        'Unauthorized',
        'missing or wrong bearer token: send "Authorization: Bearer <token>" (the CLI reads --token-file, NODEMESH_TOKEN, or <data-dir>/token)',
      );
    }
    if (url.pathname === '/version') {
      allow(method, ['GET']);
      json(res, 200, { kind: 'Version', ...buildInfo() });
      return;
    }
    if (url.pathname.startsWith('/debug/')) {
      allow(method, ['GET']);
      const body = this.opts.debug?.(url.pathname.slice('/debug/'.length), url.searchParams);
      if (body === undefined) throw new HttpError(404, 'NotFound', `no debug data at ${url.pathname}`);
      json(res, 200, body);
      return;
    }
    let route: Route;
    try {
      route = parseApiPath(url.pathname);
    } catch (err) {
      if (err instanceof RouteError) throw new HttpError(404, 'NotFound', err.message);
      throw err;
    }
    const dryRun = url.searchParams.get('dryRun') === 'true' || url.searchParams.get('dryRun') === 'All';
    const store = this.opts.store;
    switch (route.op) {
      case 'apply': {
        allow(method, ['POST']);
        const docs = await this.parseOrThrow(await this.body(req), 'request body');
        if (docs.length === 0) throw new HttpError(400, 'BadRequest', 'the request body holds no resources');
        const result = await this.write('apply', () => store.applyAll(docs, { dryRun }));
        json(res, 200, {
          kind: 'ApplyResult',
          revision: result.revision,
          dryRun,
          results: result.results.map((r) => ({
            kind: r.resource.kind,
            namespace: r.resource.metadata.namespace,
            name: r.resource.metadata.name,
            action: r.action,
            resourceVersion: r.resource.metadata.resourceVersion,
          })),
          warnings: result.warnings,
        });
        return;
      }
      case 'watch':
        allow(method, ['GET']);
        this.watch(req, res, url);
        return;
      case 'explain': {
        allow(method, ['GET']);
        const explain = this.opts.explain;
        if (!explain)
          throw new HttpError(
            404,
            'NotFound',
            'this control plane does not serve /v1/explain (the process that runs it did not wire in explain/; `nodemesh control` does)',
          );
        try {
          json(res, 200, await explain(store.snapshot(), parseExplainQuery(url.searchParams)));
        } catch (err) {
          if (err instanceof ExplainError) throw new HttpError(err.status, err.status === 404 ? 'NotFound' : 'BadRequest', err.message);
          throw err;
        }
        return;
      }
      case 'collection': {
        allow(method, ['GET']);
        const selectorText = url.searchParams.get('labelSelector');
        let selector;
        try {
          selector = selectorText ? parseSelector(selectorText) : undefined;
        } catch (err) {
          throw new HttpError(400, 'BadRequest', (err as Error).message);
        }
        const snap = store.snapshot();
        const items = snap.list(route.kind.kind as KindName, { namespace: route.namespace, selector });
        json(res, 200, { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(snap.revision) }, items });
        return;
      }
      case 'item': {
        allow(method, ['GET', 'PUT', 'DELETE']);
        const key = { kind: route.kind.kind, namespace: route.namespace, name: route.name };
        if (method === 'GET') {
          const r = store.snapshot().get(key.kind as KindName, key.name, key.namespace);
          if (!r) throw new HttpError(404, 'NotFound', `${route.kind.kind} ${key.namespace ? `${key.namespace}/` : ''}${key.name} not found`);
          json(res, 200, r);
        } else if (method === 'DELETE') {
          const rv = url.searchParams.get('resourceVersion') ?? undefined;
          const gone = await this.write('delete', () => store.delete(key, { resourceVersion: rv, dryRun }));
          json(res, 200, gone);
        } else {
          const docs = await this.parseOrThrow(await this.body(req), 'request body');
          if (docs.length !== 1) throw new HttpError(400, 'BadRequest', `PUT takes exactly one resource, got ${docs.length}; use POST /v1/apply for several`);
          const doc = docs[0] as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
          const ns = doc.metadata?.namespace ?? (route.kind.namespaced ? route.namespace : undefined);
          if (doc.kind !== route.kind.kind || doc.metadata?.name !== route.name || ns !== route.namespace) {
            throw new HttpError(
              400,
              'BadRequest',
              `the body is not ${route.kind.kind} ${route.namespace ? `${route.namespace}/` : ''}${route.name} (the resource named by the path)`,
            );
          }
          const body =
            route.namespace !== undefined && doc.metadata?.namespace === undefined
              ? { ...doc, metadata: { ...doc.metadata, namespace: route.namespace } }
              : doc;
          const result = await this.write('apply', () => store.applyAll([body], { dryRun }));
          json(res, 200, result.results[0].resource);
        }
        return;
      }
    }
  }

  private async write<T>(operation: 'apply' | 'delete', fn: () => Promise<T>): Promise<T> {
    try {
      const r = await fn();
      this.metrics.writes.inc({ operation, result: 'ok' });
      this.metrics.revision.set(this.opts.store.revision);
      return r;
    } catch (err) {
      const result =
        err instanceof InvalidBatchError || err instanceof ValidationError ? 'invalid' : err instanceof StoreError ? err.reason.toLowerCase() : 'error';
      this.metrics.writes.inc({ operation, result });
      throw err;
    }
  }

  private watch(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const store = this.opts.store;
    // An EventSource that reconnects sends the id of the last event it saw.
    const lastEventId = req.headers['last-event-id'];
    const revText = url.searchParams.get('revision') ?? url.searchParams.get('resourceVersion') ?? (typeof lastEventId === 'string' ? lastEventId : null);
    const from = revText === null || revText === '' ? store.revision : Number(revText);
    if (!Number.isInteger(from) || from < 0) throw new HttpError(400, 'BadRequest', `revision must be a non-negative integer, got "${revText}"`);
    const kindText = url.searchParams.get('kind');
    const kind = kindText ? resolveKind(kindText) : undefined;
    if (kindText && !kind) throw new HttpError(400, 'BadRequest', `unknown kind "${kindText}"`);
    const namespace = url.searchParams.get('namespace') ?? undefined;
    const sse = (req.headers.accept ?? '').includes('text/event-stream');
    const send = (type: string, revision: number, object?: unknown): void => {
      const line = JSON.stringify(object === undefined ? { type, revision } : { type, revision, object });
      res.write(sse ? `id: ${revision}\nevent: ${type}\ndata: ${line}\n\n` : `${line}\n`);
      if (res.writableLength > MAX_WATCH_BUFFER) {
        this.opts.log.warn({ revision }, 'config watch client is too slow; closing its stream (it should relist)');
        end();
      }
    };
    const onBatch = (batch: WatchBatch): void => {
      for (const e of batch.events) {
        if (kind && e.object.kind !== kind.kind) continue;
        if (namespace !== undefined && e.object.metadata.namespace !== namespace) continue;
        send(e.type, batch.revision, e.object);
      }
    };
    let watch: Watch;
    try {
      watch = store.watch(from, onBatch); // throws RevisionCompactedError → 410 before headers go out
    } catch (err) {
      if (err instanceof RangeError) throw new HttpError(400, 'BadRequest', err.message);
      throw err;
    }
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
      'cache-control': 'no-cache',
      'x-nodemesh-revision': String(store.revision),
    });
    res.flushHeaders();
    this.metrics.watchers.inc();
    const heartbeat = setInterval(() => send('BOOKMARK', store.revision), this.heartbeatMs);
    heartbeat.unref();
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      watch.close();
      this.streams.delete(end);
      this.metrics.watchers.dec();
      res.end();
    };
    this.streams.add(end);
    req.on('close', end);
    res.on('close', end);
  }

  private async parseOrThrow(text: string, source: string): Promise<unknown[]> {
    try {
      return await this.parser.parse(text, source);
    } catch (err) {
      if (err instanceof DocumentError) throw new HttpError(400, 'BadRequest', err.message);
      if (err instanceof ParseBusyError) throw new HttpError(503, 'ServiceUnavailable', err.message);
      throw err;
    }
  }

  private body(req: IncomingMessage): Promise<string> {
    const tooLarge = (): HttpError =>
      new HttpError(413, 'RequestEntityTooLarge', `the request body is larger than ${this.maxBody} bytes; split it into several applies`);
    // Refused bodies are answered, not reset: the rest is read and discarded (bounded in time) so
    // that closing the socket with unread data does not turn the 413 into a TCP reset.
    const discard = (): void => {
      req.removeAllListeners('data');
      req.resume();
      const cut = setTimeout(() => req.destroy(), 10_000);
      cut.unref();
      req.once('end', () => clearTimeout(cut));
      req.once('close', () => clearTimeout(cut));
    };
    return new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > this.maxBody) {
        discard();
        reject(tooLarge());
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > this.maxBody) {
          chunks.length = 0;
          discard();
          reject(tooLarge());
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  private fail(res: ServerResponse, err: unknown): void {
    let body;
    if (err instanceof HttpError) body = statusBody(err.code, err.reason, err.message, err.errors);
    else if (err instanceof InvalidBatchError) body = statusBody(400, 'Invalid', err.message, err.errors);
    else if (err instanceof ValidationError) body = statusBody(400, 'Invalid', err.message, [err]);
    else if (err instanceof StoreError) body = statusBody(err.status, err.reason, err.message);
    else {
      this.opts.log.error({ err }, 'config API request failed');
      body = statusBody(500, 'InternalError', `internal error: ${(err as Error).message ?? String(err)}`);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    if (body.code === 413) res.setHeader('connection', 'close'); // the rest of the body is discarded, not parsed
    json(res, body.code, body);
  }
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed here; use ${methods.join(' or ')}`);
}

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
