// A client for the config API, used by the CLI and by tests. Connection creation is pluggable
// (`createConnection`), because in the lab the control plane listens inside a network namespace
// and the lab supplies a connector that opens the socket there.
import http, { type ClientRequestArgs, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { tlsConnector } from '../../common/tls-connector';
import type { AnyResource } from '../resources/kinds';
import type { KindInfo } from '../resources/kinds';
import { collectionPath, itemPath } from './routes';
import type { StatusBody } from './status';

export interface ApiClientOptions {
  /** e.g. http://127.0.0.1:15014 */
  server: string;
  token?: string;
  /** Opens the TCP (or other) connection for each request; Node's default when omitted. */
  createConnection?: ClientRequestArgs['createConnection'];
  /** Per-request timeout for non-streaming calls (default 30 s). */
  timeoutMs?: number;
  /**
   * PEM roots an https:// server must chain to (the mesh trust bundle: `nodemesh ca root`).
   * Without it the system roots are used, which never include the mesh CA.
   */
  ca?: string | Buffer;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly body?: StatusBody,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApplyResponse {
  kind: 'ApplyResult';
  revision: number;
  dryRun: boolean;
  results: { kind: string; namespace?: string; name: string; action: 'created' | 'configured' | 'unchanged'; resourceVersion?: string }[];
  warnings: string[];
}

export interface ListResponse<T = AnyResource> {
  apiVersion: 'v1';
  kind: 'List';
  metadata: { resourceVersion: string };
  items: T[];
}

export interface WatchLine {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  revision: number;
  object?: AnyResource;
}

export interface WatchStream {
  close(): void;
  /** Resolves when the server ends the stream or close() is called. */
  readonly done: Promise<void>;
}

export class ApiClient {
  private readonly base: URL;

  constructor(private readonly opts: ApiClientOptions) {
    try {
      this.base = new URL(opts.server);
    } catch {
      throw new Error(`invalid server URL "${opts.server}": expected e.g. http://127.0.0.1:15014`);
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new Error(`invalid server URL "${opts.server}": use http:// or https://`);
    }
  }

  /** GET any path of the config API (JSON), e.g. `/v1/explain?…` or `/ui/login-code` with POST. */
  getJson<T = unknown>(pathAndQuery: string, method: 'GET' | 'POST' = 'GET'): Promise<T> {
    return this.call(method, pathAndQuery);
  }

  apply(body: string | unknown[], opts: { dryRun?: boolean } = {}): Promise<ApplyResponse> {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return this.call('POST', `/v1/apply${opts.dryRun ? '?dryRun=true' : ''}`, text, typeof body === 'string' ? 'application/yaml' : 'application/json');
  }

  get<T = AnyResource>(kind: KindInfo, name: string, namespace?: string): Promise<T> {
    return this.call('GET', itemPath(kind, name, namespace));
  }

  /** Lists one namespace, or every namespace when `namespace` is undefined. */
  list<T = AnyResource>(kind: KindInfo, namespace?: string, labelSelector?: string): Promise<ListResponse<T>> {
    const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return this.call('GET', collectionPath(kind, namespace) + q);
  }

  /** Replaces one resource (conditional when it carries metadata.resourceVersion). */
  put<T = AnyResource>(
    kind: KindInfo,
    resource: { metadata: { name: string; namespace?: string; [field: string]: unknown }; [field: string]: unknown },
  ): Promise<T> {
    return this.call('PUT', itemPath(kind, resource.metadata.name, resource.metadata.namespace), JSON.stringify(resource), 'application/json');
  }

  delete<T = AnyResource>(kind: KindInfo, name: string, namespace?: string, resourceVersion?: string): Promise<T> {
    const q = resourceVersion ? `?resourceVersion=${encodeURIComponent(resourceVersion)}` : '';
    return this.call('DELETE', itemPath(kind, name, namespace) + q);
  }

  /** GET /version: the control plane's build. */
  version<T = unknown>(): Promise<T> {
    return this.call('GET', '/version');
  }

  /** GET /debug/<path> (components' debug data, e.g. `xds?client=ID`). */
  debug<T = unknown>(pathAndQuery: string): Promise<T> {
    return this.call('GET', `/debug/${pathAndQuery}`);
  }

  /** GET /v1/explain: why a connection FROM -> TO would be allowed, denied or sent where (docs/explain.md). */
  explain<T = unknown>(q: { from: string; to: string; port?: number; method?: string; path?: string }): Promise<T> {
    const p = new URLSearchParams({ from: q.from, to: q.to });
    if (q.port !== undefined) p.set('port', String(q.port));
    if (q.method) p.set('method', q.method);
    if (q.path) p.set('path', q.path);
    return this.call('GET', `/v1/explain?${p.toString()}`);
  }

  /** Streams changes after `revision` as JSON lines; `onLine` gets each one. */
  watch(params: { revision?: number; kind?: string; namespace?: string }, onLine: (line: WatchLine) => void): Promise<WatchStream> {
    const q = new URLSearchParams();
    if (params.revision !== undefined) q.set('revision', String(params.revision));
    if (params.kind) q.set('kind', params.kind);
    if (params.namespace) q.set('namespace', params.namespace);
    return new Promise((resolve, reject) => {
      const req = this.request('GET', `/v1/watch?${q.toString()}`, undefined, undefined, (res) => {
        if (res.statusCode !== 200) {
          readAll(res).then((text) => reject(toError(res.statusCode ?? 0, text)), reject);
          return;
        }
        let buf = '';
        const done = new Promise<void>((r) => {
          res.on('end', r);
          res.on('close', r);
          res.on('error', () => r());
        });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) onLine(JSON.parse(line) as WatchLine);
          }
        });
        resolve({ close: () => req.destroy(), done });
      });
      req.on('error', (err) => reject(this.connectError(err)));
      req.end();
    });
  }

  private call<T>(method: string, path: string, body?: string, contentType?: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = this.request(method, path, body, contentType, (res) => {
        readAll(res).then((text) => {
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            try {
              resolve(JSON.parse(text) as T);
            } catch {
              reject(new ApiError(code, 'BadResponse', `the server answered ${method} ${path} with something that is not JSON`));
            }
          } else reject(toError(code, text));
        }, reject);
      });
      req.setTimeout(this.opts.timeoutMs ?? 30_000, () =>
        req.destroy(new Error(`no answer from ${this.opts.server} within ${(this.opts.timeoutMs ?? 30_000) / 1000}s`)),
      );
      req.on('error', (err) => reject(this.connectError(err)));
      req.end(body);
    });
  }

  /**
   * A request passed through with the caller's headers and without the bearer token (the local
   * forwarder of `nodemesh dashboard`: the browser authenticates with its own session cookie).
   */
  passThrough(method: string, path: string, headers: Record<string, string>, onResponse: (res: IncomingMessage) => void): http.ClientRequest {
    return this.request(method, path, undefined, undefined, onResponse, headers);
  }

  private request(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    onResponse: (res: IncomingMessage) => void,
    passHeaders?: Record<string, string>,
  ): http.ClientRequest {
    const headers: Record<string, string> = { ...passHeaders };
    if (this.opts.token && !passHeaders) headers.authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) {
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const basePath = this.base.pathname.replace(/\/$/, '');
    const args: ClientRequestArgs = {
      method,
      host: this.base.hostname.replace(/^\[|\]$/g, ''),
      port: this.base.port || (this.base.protocol === 'https:' ? 443 : 80),
      path: basePath + path,
      headers,
    };
    // Node uses createConnection only when no agent is given; otherwise a fresh agent per request.
    if (this.base.protocol === 'https:' && this.opts.ca !== undefined) {
      // TLS on our side of whatever connection is opened, verified against the mesh roots; the
      // request itself then runs over it as plain HTTP/1.1.
      args.createConnection = tlsConnector(this.opts.ca, this.opts.createConnection);
      return http.request(args, onResponse);
    }
    if (this.opts.createConnection) args.createConnection = this.opts.createConnection;
    else args.agent = false;
    return (this.base.protocol === 'https:' ? https : http).request(args, onResponse);
  }

  private connectError(err: Error): Error {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND') {
      return new Error(
        `cannot reach the control plane at ${this.opts.server} (${code}): is 'nodemesh control' running? Point elsewhere with --server or NODEMESH_SERVER`,
      );
    }
    return err;
  }
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function toError(code: number, text: string): ApiError {
  try {
    const body = JSON.parse(text) as StatusBody;
    if (body.kind === 'Status') return new ApiError(code, body.reason, body.message, body);
  } catch {
    // not a Status body
  }
  return new ApiError(code, 'Unknown', `the control plane answered ${code}: ${text.slice(0, 200)}`);
}
