// Routing by header and by method for proxyless gRPC clients of two independent implementations
// and ages, against the same control plane: @grpc/grpc-js-xds (current, in this process) and
// gRPC C-core 1.51 through Debian's python3-grpcio (before gRFC A63's string_match: it rejects a
// whole RouteConfiguration that uses it). Both must accept every route and follow every change.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTE_TYPE_URL } from '../../control/envoy/names';
import { echoBackend, echoMesh, echoRoute } from './fixtures';
import { ECHO_PATH, eventually, startBackend, startControlPlane, who, type Backend, type ControlPlane } from './harness';

const HOST = 'echo.default.svc.cluster.local';
const TARGET = `xds:///${HOST}:9090`;
const PYTHON = '/usr/bin/python3';

interface Answer {
  names: string[];
  errors: string[];
}

/** The C-core client: one long-lived Python process and channel, one JSON line per batch of calls. */
class CoreClient {
  private readonly lines: AsyncIterator<string>;
  version = '';
  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }
  static async start(bootstrap: string): Promise<CoreClient> {
    const child = spawn(PYTHON, [join(__dirname, 'grpc_xds_client.py'), TARGET, ECHO_PATH], {
      env: { ...process.env, GRPC_XDS_BOOTSTRAP: bootstrap, GRPC_VERBOSITY: 'ERROR' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    const c = new CoreClient(child);
    const first = await c.next(10_000, () => stderr);
    c.version = (JSON.parse(first) as { ready: string }).ready;
    return c;
  }
  private async next(ms: number, why: () => string = () => ''): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`the C-core client did not answer within ${ms} ms ${why()}`)), ms)),
    );
    try {
      const r = await Promise.race([this.lines.next(), timeout]);
      if (r.done) throw new Error(`the C-core client exited ${why()}`);
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }
  async call(n: number, metadata: Record<string, string> = {}): Promise<Answer> {
    this.child.stdin.write(JSON.stringify({ n, metadata, timeout: 5 }) + '\n');
    return JSON.parse(await this.next(5_000 * n + 5_000)) as Answer;
  }
  close(): void {
    this.child.stdin.end();
    this.child.kill('SIGKILL');
  }
}

let cp: ControlPlane;
let v1: Backend;
let v2: Backend;
let js: grpc.Client;
let core: CoreClient;
let dir: string;

const route = echoRoute;
const to = echoBackend;

async function jsCalls(n: number, md: Record<string, string> = {}): Promise<Answer> {
  const out: Answer = { names: [], errors: [] };
  for (let i = 0; i < n; i++) {
    const r = await who(js, md);
    if (r.name !== undefined) out.names.push(r.name);
    else out.errors.push(`${r.error?.code}: ${r.error?.details}`);
  }
  return out;
}

/** Both clients, n calls each with the metadata: what answered. */
async function both(n: number, md: Record<string, string> = {}): Promise<{ js: Answer; core: Answer }> {
  return { js: await jsCalls(n, md), core: await core.call(n, md) };
}

const only = (a: Answer, name: string): boolean => a.errors.length === 0 && a.names.length > 0 && a.names.every((x) => x === name);

/** No client has a rejected RouteConfiguration outstanding: the last one sent was ACKed. */
function routesAccepted(): void {
  const clients = cp.sotw.clients().filter((c) => c.nodeId.startsWith('proxyless~'));
  expect(clients.map((c) => c.nodeId).sort()).toEqual([
    'proxyless~127.0.0.1~core.default~default.svc.cluster.local',
    'proxyless~127.0.0.1~js.default~default.svc.cluster.local',
  ]);
  for (const c of clients) {
    const rds = c.types[ROUTE_TYPE_URL];
    expect(rds?.acked?.version, `${c.nodeId} did not ACK the routes: ${rds?.rejected?.message ?? ''}`).toBe(rds?.sent?.version);
  }
}

const bootstrapFor = (id: string, port: number) =>
  JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: `proxyless~127.0.0.1~${id}.default~default.svc.cluster.local`, cluster: 'test', locality: {}, metadata: {} },
  });

beforeAll(async () => {
  cp = await startControlPlane();
  v1 = await startBackend('echo-v1', '127.0.0.31');
  v2 = await startBackend('echo-v2', '127.0.0.32');
  await cp.store.applyAll(echoMesh(v1, v2));
  dir = mkdtempSync(join(tmpdir(), 'nm-grpc-clients-'));
  const coreBootstrap = join(dir, 'core-bootstrap.json');
  writeFileSync(coreBootstrap, bootstrapFor('core', cp.port));
  core = await CoreClient.start(coreBootstrap);
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = bootstrapFor('js', cp.port);
  delete process.env.GRPC_XDS_BOOTSTRAP;
  (await import('@grpc/grpc-js-xds')).register();
  js = new grpc.Client(TARGET, grpc.credentials.createInsecure());
}, 30_000);

afterAll(async () => {
  js?.close();
  core?.close();
  v1?.close();
  v2?.close();
  await cp?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('proxyless gRPC clients of two implementations and ages', () => {
  it('the C-core client is a pre-A63 gRPC (the age that rejects string_match)', () => {
    const [major, minor] = core.version.split('.').map(Number);
    expect(major).toBe(1);
    expect(minor).toBeLessThan(54);
  });

  it('route by header: both reach v2 with x-version: v2 and v1 without, and ACK the routes', async () => {
    await eventually(
      'both clients to route by header',
      async () => {
        const a = await both(1, { 'x-version': 'v2' });
        return only(a.js, 'echo-v2') && only(a.core, 'echo-v2');
      },
      20_000,
    );
    const v2calls = await both(10, { 'x-version': 'v2' });
    const v1calls = await both(10);
    expect(v2calls.js).toEqual({ names: Array(10).fill('echo-v2'), errors: [] });
    expect(v2calls.core).toEqual({ names: Array(10).fill('echo-v2'), errors: [] });
    expect(v1calls.js).toEqual({ names: Array(10).fill('echo-v1'), errors: [] });
    expect(v1calls.core).toEqual({ names: Array(10).fill('echo-v1'), errors: [] });
    routesAccepted();
  }, 40_000);

  it('route by method (HTTP method and gRPC method) and by a header regex: GET never matches a gRPC call, POST does', async () => {
    await cp.store.apply(route([{ matches: [{ method: 'GET' }], backendRefs: [to('echo-v2')] }, { backendRefs: [to('echo-v1')] }]));
    await eventually(
      'the GET route to be in effect (nothing lands on v2)',
      async () => {
        const a = await both(3, { 'x-version': 'v2' });
        return only(a.js, 'echo-v1') && only(a.core, 'echo-v1');
      },
      20_000,
    );
    routesAccepted();
    await cp.store.apply(
      route([
        { matches: [{ method: 'POST', headers: [{ name: 'x-version', type: 'RegularExpression', value: 'v[2-9]' }] }], backendRefs: [to('echo-v2')] },
        { backendRefs: [to('echo-v1')] },
      ]),
    );
    await eventually(
      'the POST + regex route to be in effect',
      async () => {
        const a = await both(1, { 'x-version': 'v3' });
        return only(a.js, 'echo-v2') && only(a.core, 'echo-v2');
      },
      20_000,
    );
    const hit = await both(10, { 'x-version': 'v7' });
    const miss = await both(10, { 'x-version': 'v1' });
    expect(only(hit.js, 'echo-v2') && only(hit.core, 'echo-v2'), JSON.stringify(hit)).toBe(true);
    expect(only(miss.js, 'echo-v1') && only(miss.core, 'echo-v1'), JSON.stringify(miss)).toBe(true);
    routesAccepted();
    // The gRPC method itself: an exact path match on /service/method.
    await cp.store.apply(
      route([
        { matches: [{ path: { type: 'Exact', value: '/nodemesh.test.Echo/Other' } }], backendRefs: [to('echo-v1')] },
        { matches: [{ path: { type: 'Exact', value: ECHO_PATH } }], backendRefs: [to('echo-v2')] },
        { backendRefs: [to('echo-v1')] },
      ]),
    );
    await eventually(
      'the gRPC-method route to be in effect',
      async () => {
        const a = await both(1);
        return only(a.js, 'echo-v2') && only(a.core, 'echo-v2');
      },
      20_000,
    );
    routesAccepted();
  }, 60_000);

  it('a 1:1 split (weights that do not add up to 100) is accepted and used by both', async () => {
    await cp.store.apply(route([{ backendRefs: [to('echo-v1', 1), to('echo-v2', 1)] }]));
    await eventually(
      'both versions to answer both clients',
      async () => {
        const a = await both(20);
        return [a.js, a.core].every((x) => x.errors.length === 0 && x.names.includes('echo-v1') && x.names.includes('echo-v2'));
      },
      20_000,
    );
    routesAccepted();
  }, 40_000);
});
