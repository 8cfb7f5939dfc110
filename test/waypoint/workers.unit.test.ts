// `nodemesh waypoint run --workers 2` (the real CLI, its own process): two worker processes share
// the listener, the control plane sees one xDS stream (the primary's, relayed to the workers), the
// primary's /metrics sums what both counted and its /healthz/ready waits for both; a worker that
// dies is replaced while the other keeps serving.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/until';
import { scaled } from '../support/speed';
import { HboneClient } from '../../common/hbone/client';
import type { WorkloadCertificate } from '../../common/identity/manager';
import { Cluster } from '../../api/gen/envoy/config/cluster/v3/cluster';
import { Listener } from '../../api/gen/envoy/config/listener/v3/listener';
import { WAYPOINT_ENV, WAYPOINT_NODE_FLAGS } from '../../waypoint/process-flags';
import { TYPE } from '../../waypoint/xds/resources';
import { anyHost, backend, connectTerminate, ControlPlane, freePort, httpOver, internalCluster, MeshCa, prefixRoute, quiet, type Backend } from './fixture';

const ROOT = join(__dirname, '..', '..');

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** One request on a connection of its own (so connections spread over the workers). */
function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'web' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

/**
 * `nodemesh waypoint run ARGS --workers 2` as its own process, started as the lab and the
 * Deployment start it (the process flags of waypoint/process-flags.ts); resolves once the primary
 * reports both workers ready.
 */
/** `proc` sent SIGTERM if it still runs, once it has exited. */
async function stopped(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
}

async function startWorkers(args: string[], readyPort: number): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    [...WAYPOINT_NODE_FLAGS, join(ROOT, 'dist', 'cli', 'main.js'), 'waypoint', 'run', ...args, '--ready-port', String(readyPort), '--workers', '2'],
    {
      env: { ...process.env, ...WAYPOINT_ENV, NODEMESH_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  proc.stderr!.resume();
  await until(
    'the primary reports both workers ready',
    () =>
      get(readyPort, '/healthz/ready').then(
        (r) => r.status === 200,
        () => false,
      ),
    // three processes' start-up: 30 s did not suffice at load 20 (a VM beside the unit tier)
    scaled(30_000),
  ).catch(async (err: unknown) => {
    // not returned, so no afterAll can stop it: a waypoint that never got ready is stopped here
    // (one that timed out at load 20 was left running with its two workers)
    await stopped(proc);
    throw err;
  });
  return proc;
}

describe('waypoint run --workers 2', () => {
  const cp = new ControlPlane();
  let web: Backend;
  let proc: ChildProcess;
  let listenPort = 0;
  let metricsPort = 0;
  let readyPort = 0;

  beforeAll(async () => {
    await cp.start();
    web = await backend('web');
    listenPort = await freePort();
    metricsPort = await freePort();
    readyPort = await freePort();
    cp.serveAll('http', listenPort, 'web', [web.port]);
    proc = await startWorkers(
      ['--name', 'wp', '-n', 'default', '--control', cp.address, '--listen-address', '127.0.0.1', '--admin-port', '0', '--metrics-port', String(metricsPort)],
      readyPort,
    );
  }, 60_000);

  afterAll(async () => {
    await stopped(proc);
    await web?.close();
    await cp.stop();
  });

  it(
    'serves from two worker processes sharing the listener; /metrics sums both',
    async () => {
      expect(children(proc.pid!)).toHaveLength(2);
      // The primary holds the one xDS stream to the control plane; the workers are served by it.
      expect(cp.xdsStreams).toBe(1);
      const results = await Promise.all(Array.from({ length: 40 }, () => get(listenPort)));
      expect(results.map((r) => `${r.status} ${r.body}`)).toEqual(Array(40).fill('200 web'));
      const metrics = (await get(metricsPort, '/metrics')).body;
      const total = [...metrics.matchAll(/^istio_requests_total\{[^}]*response_code="200"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      expect(total).toBe(40);
    },
    scaled(30_000),
  );

  it('runs every worker with the process flags the primary was started with', () => {
    const workers = children(proc.pid!);
    expect(workers).toHaveLength(2);
    for (const pid of [proc.pid!, ...workers]) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(argv.slice(1, 1 + WAYPOINT_NODE_FLAGS.length)).toEqual(WAYPOINT_NODE_FLAGS);
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      for (const [k, v] of Object.entries(WAYPOINT_ENV)) expect(env).toContain(`${k}=${v}`);
    }
  });

  it('replaces a worker that dies; the other keeps serving meanwhile', async () => {
    const [first] = children(proc.pid!);
    process.kill(first!, 'SIGKILL');
    await until('the primary saw the worker exit', () => !children(proc.pid!).includes(first!), 10_000);
    const during = await Promise.all(Array.from({ length: 10 }, () => get(listenPort)));
    expect(during.every((r) => r.status === 200)).toBe(true);
    await until(
      'a new worker replaces the killed one',
      () => {
        const now = children(proc.pid!);
        return now.length === 2 && !now.includes(first!);
      },
      20_000,
    );
    await until(
      'the primary reports both workers ready again',
      () =>
        get(readyPort, '/healthz/ready').then(
          (r) => r.status === 200,
          () => false,
        ),
      20_000,
    );
    const after = await Promise.all(Array.from({ length: 20 }, () => get(listenPort)));
    expect(after.every((r) => r.status === 200)).toBe(true);
    expect(cp.xdsStreams).toBe(1);
  }, 60_000);

  it(
    'stops with its workers on SIGTERM',
    async () => {
      const workers = children(proc.pid!);
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      for (const w of workers) expect(() => process.kill(w, 0)).toThrow();
    },
    scaled(30_000),
  );
});

describe('waypoint run --workers 2 in mesh mode', () => {
  const WEB = 'web.shop.svc.cluster.local';
  const cp = new ControlPlane();
  let mesh: MeshCa;
  let web: Backend;
  let proc: ChildProcess;
  let frontend: WorkloadCertificate;
  let hbonePort = 0;
  let readyPort = 0;
  const cleanups: Array<() => void> = [];

  beforeAll(async () => {
    mesh = await MeshCa.create();
    await cp.start(0, mesh);
    web = await backend('web');
    const f = await mesh.workloadCertificate(cp.address, 'node-a', 'shop', 'frontend');
    frontend = f.cert;
    cleanups.push(() => (f.manager.close(), f.client.close()));
    const webHttp = `inbound-vip|80|http|${WEB}`;
    cp.raw(TYPE.listener, 'connect_terminate', Listener.encode(connectTerminate([['10.96.0.50:80', webHttp]])).finish());
    cp.raw(TYPE.cluster, webHttp, Cluster.encode(internalCluster(webHttp)).finish());
    cp.internalListener(webHttp, `${WEB}:80`);
    cp.cluster('web', [web.port]);
    cp.routes(anyHost(`${WEB}:80`, [prefixRoute('/', 'web')], WEB));
    mesh.place('shop', 'shop-waypoint', 'node-wp');
    hbonePort = await freePort();
    readyPort = await freePort();
    proc = await startWorkers(
      [
        '--name',
        'shop-waypoint',
        '-n',
        'shop',
        '--control',
        cp.address,
        '--token-file',
        mesh.tokenFile('node-wp'),
        '--trust-bundle',
        mesh.trustBundleFile(),
        '--listen-address',
        '127.0.0.1',
        '--hbone-port',
        String(hbonePort),
        '--admin-port',
        '0',
        '--metrics-port',
        String(await freePort()),
      ],
      readyPort,
    );
  }, 60_000);

  afterAll(async () => {
    await stopped(proc);
    await web?.close();
    await cp.stop();
    for (const c of cleanups) c();
    mesh?.close();
  });

  it(
    'both workers serve HBONE with the one certificate the primary got; the control plane sees one xDS stream',
    async () => {
      expect(children(proc.pid!)).toHaveLength(2);
      // One client (one TLS connection) per tunnel, so the connections spread over the workers.
      const answers = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const client = new HboneClient({ logger: quiet });
          try {
            const stream = await client.open({
              source: { certChain: frontend.certChainPem, key: frontend.privateKeyPem },
              trustBundle: frontend.trustBundle,
              destination: `127.0.0.1:${hbonePort}`,
              expectedIdentity: 'spiffe://cluster.local/ns/shop/sa/shop-waypoint',
              authority: '10.96.0.50:80',
              timeoutMs: 5000,
            });
            return await httpOver(stream, '/', WEB);
          } finally {
            client.destroy();
          }
        }),
      );
      expect(answers.map((a) => `${a.status} ${a.body}`)).toEqual(Array(6).fill('200 web'));
      expect(cp.xdsStreams).toBe(1);
    },
    scaled(30_000),
  );
});
