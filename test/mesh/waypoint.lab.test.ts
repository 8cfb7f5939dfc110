// Waypoints in the lab ('nmwpl'), built by the real `nodemesh lab up`: the demo's backend behind
// the waypoint the lab controller runs (split v1/v2 by the HTTPRoute, GET allowed, DELETE 403), no
// way around it, `waypoint apply`/`delete` starting and stopping a waypoint pod, a waypoint killed
// during traffic restarted by the controller with no request lost unseen, the control plane and a
// node proxy SIGKILLed and restarted by the lab's supervisor, and `lab down` leaving no waypoint
// pod, cgroup or process.
import { cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { ClientReport } from '../../lab/app/client';
import { labDown } from '../../lab/down';
import { assignRoles, service, type DemoRole } from '../../lab/mesh/demo';
import { meshPaths } from '../../lab/mesh/paths';
import { runClientIn } from '../../lab/mesh/traffic';
import { meshDown } from '../../lab/mesh/up';
import { withinBinomial } from '../../lab/mesh/waypoint-demo';
import { loadLabState, readLabProcesses, readWaypointPods, tryLoadLabState, type LabTopology } from '../../lab/state';
import { isSameProcess } from '../../lab/sys';
import { privilegedDescribe } from '../support/privileged';
import { cli, leftovers } from '../lab/support';
import { lastJson, nodeIn } from './harness';
import { scaled } from '../support/speed';

const LAB = 'nmwpl';
const BACKEND = `${service('backend').vip}:${service('backend').port}`;

async function cleanLab(): Promise<void> {
  const old = tryLoadLabState(LAB);
  if (old) await meshDown(old, () => undefined).catch(() => undefined);
  await labDown(LAB);
}

const waypointProc = (pod: string) => readLabProcesses(LAB).find((p) => p.name === 'waypoint' && p.place === pod && isSameProcess(p.pid, p.startTime));

/** Polls fn until it gives a value; `ms` is the limit on the reference machine (scaled here). */
async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const limit = scaled(ms);
  const deadline = Date.now() + limit;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${limit} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Inside the frontend's pod: GETs one after the other to HOST:PORT, each on a new connection, for
// DURATION_MS (the last one still retried to its end), so the kill lands in traffic however fast
// the path is (a fixed count of 300 ended before the kill once the path got faster).
// A request is retried only when this client saw a connection error (reset, refused, hang-up),
// for up to RETRY_MS; a timeout (TIMEOUT_MS: 3 s, scaled) or any HTTP answer other than 200 is recorded as a failure
// the client saw. Prints {done, retries, failures, errors, longestRetryMs}.
const RETRY_CLIENT = `
const http = require('node:http');
const [host, port, durationMs, retryMs, timeoutMs] = process.argv.slice(1).filter((a) => a !== '--');
const conn = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ECONNABORTED']);
const one = () => new Promise((resolve) => {
  const req = http.request({ host, port: Number(port), path: '/', agent: false, timeout: Number(timeoutMs) }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (d) => (body += d));
    res.on('end', () => resolve({ status: res.statusCode, body: body.slice(0, 200) }));
    res.on('error', (e) => resolve({ error: e.code || e.message }));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
  req.on('error', (e) => resolve({ error: e.code || e.message }));
  req.end();
});
(async () => {
  let done = 0, retries = 0, longestRetryMs = 0;
  const failures = [], errors = {};
  const started = Date.now();
  for (let i = 0; Date.now() - started < Number(durationMs); i++) {
    const first = Date.now();
    for (;;) {
      const at = Date.now();
      const r = await one();
      if (r.status === 200) { done++; break; }
      const key = r.error || 'HTTP ' + r.status;
      errors[key] = (errors[key] || 0) + 1;
      if (r.error && (conn.has(r.error) || r.error === 'socket hang up') && Date.now() - first < Number(retryMs)) {
        retries++;
        longestRetryMs = Math.max(longestRetryMs, Date.now() - first);
        await new Promise((s) => setTimeout(s, 50));
        continue;
      }
      failures.push({ i, afterMs: at - first, tookMs: Date.now() - at, ...r });
      break;
    }
  }
  console.log(JSON.stringify({ done, retries, failures, errors, longestRetryMs }));
})();
`;

privilegedDescribe('lab', 'waypoints in the lab: controller, demo split and policy, restart (lab nmwpl)', () => {
  let topo: LabTopology;
  let up: { code: number; stdout: string; stderr: string };
  let fe: DemoRole;
  let failed = false;
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });

  beforeAll(async () => {
    await cleanLab();
    up = await cli(['lab', 'up', '--lab', LAB], scaled(150_000));
    topo = loadLabState(LAB);
    fe = assignRoles(topo).find((r) => r.role === 'frontend') as DemoRole;
  }, scaled(180_000));

  afterAll(async () => {
    const logs = meshPaths(LAB).logs;
    if ((failed || process.env.NMWPL_KEEP_LOGS) && existsSync(logs)) {
      const keep = join(tmpdir(), `nm-wplab-logs-${process.pid}`);
      cpSync(logs, keep, { recursive: true });
      process.stderr.write(`lab logs kept in ${keep}\n`);
    }
    const down = await cli(['lab', 'down', '--lab', LAB], scaled(60_000)).catch(() => undefined);
    if (down?.code !== 0) await cleanLab();
  }, scaled(90_000));

  it('lab up runs the backend’s waypoint in a pod of its own and prints the split, GET 200 / DELETE 403 and the waypoint’s identity', () => {
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const wps = readWaypointPods(LAB);
    expect(wps.map((w) => [w.gateway.namespace, w.gateway.name, w.pod.name])).toEqual([['demo', 'waypoint', 'wp-waypoint']]);
    expect(waypointProc('wp-waypoint')).toBeDefined();
    expect(up.stdout).toContain('through the waypoint demo/waypoint (pod wp-waypoint');
    expect(up.stdout).toMatch(/ok {2}GET {4}x100: 200 x100; v1 \d+ \(\d+ %, routed 90 %\), v2 \d+ \(\d+ %, routed 10 %\)/);
    expect(up.stdout).toMatch(/ok {2}DELETE x5: 403 x5 \(RBAC: access denied\)/);
    expect(up.stdout).toMatch(/ok {2}the backends' node proxies opened \d+ connection\(s\) from ns\/demo\/sa\/waypoint \(only/);
    const row = (label: string): string => up.stdout.split('\n').find((l) => l.includes(label)) ?? '';
    expect(row('frontend -> backend')).toMatch(/^ok .*5\/5 ok\s+waypoint: 200 x5\s+yes\s+ns\/demo\/sa\/frontend\s+ns\/demo\/sa\/waypoint/);
    expect(row('tcp-echo -> backend')).toMatch(/^ok .*0\/5 ok\s+waypoint: 403 x5\s+yes\s+ns\/demo\/sa\/tcp-echo\s+ns\/demo\/sa\/waypoint/);
  });

  it(
    'splits the backend 90/10 within 4 sigma, allows GET and denies DELETE with 403 at the waypoint',
    async () => {
      const N = 300;
      const gets = (await runClientIn(topo, fe.pod.name, BACKEND, 'http', {
        connections: N,
        concurrency: 10,
        size: 0,
        timeoutMs: scaled(60_000),
      })) as ClientReport;
      expect(gets.statusCodes, JSON.stringify(gets).slice(0, 500)).toEqual({ '200': N });
      const v1 = gets.versions?.v1 ?? 0;
      const v2 = gets.versions?.v2 ?? 0;
      expect(v1 + v2).toBe(N);
      expect(withinBinomial(v2, N, 0.1, 4), `v2 got ${v2} of ${N}`).toBe(true);
      const dels = (await runClientIn(topo, fe.pod.name, BACKEND, 'http', {
        connections: 5,
        concurrency: 5,
        size: 0,
        timeoutMs: scaled(15_000),
        method: 'DELETE',
      })) as ClientReport;
      expect(dels.statusCodes).toEqual({ '403': 5 });
      expect(dels.errorBody).toContain('RBAC: access denied');
    },
    scaled(90_000),
  );

  it(
    'a client cannot reach the backend pods around the waypoint',
    async () => {
      for (const b of assignRoles(topo).filter((r) => r.role === 'backend')) {
        const r = (await runClientIn(topo, fe.pod.name, `${b.pod.ip}:${b.port}`, 'http', {
          connections: 2,
          concurrency: 1,
          size: 0,
          timeoutMs: scaled(10_000),
        })) as ClientReport;
        expect(r.ok, `${b.pod.name}: ${JSON.stringify(r).slice(0, 300)}`).toBe(0);
        expect(r.statusCodes['200']).toBeUndefined();
      }
    },
    scaled(60_000),
  );

  it(
    'waypoint apply starts a waypoint process in its own pod within seconds; waypoint delete stops it and removes the pod',
    async () => {
      const t0 = Date.now();
      const applied = await cli(['waypoint', 'apply', '-n', 'shop', '--name', 'nm-wp2', '--enroll-namespace', '--lab', LAB]);
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.stdout).toContain('namespace/shop uses waypoint nm-wp2');
      const w = await until('the wp-nm-wp2 pod and its process', () => {
        const pod = readWaypointPods(LAB).find((x) => x.gateway.name === 'nm-wp2');
        return pod && waypointProc(pod.pod.name) ? pod : undefined;
      });
      const startedMs = Date.now() - t0;
      expect(startedMs).toBeLessThan(scaled(10_000));
      const listed = await until('waypoint list to say ready', async () => {
        const l = await cli(['waypoint', 'list', '-n', 'shop', '--json', '--lab', LAB]);
        const rows = JSON.parse(l.stdout) as Array<{ name: string; node: string; address: string; ready: string; enrolled: boolean }>;
        return rows.find((r) => r.name === 'nm-wp2' && r.ready === 'ready');
      });
      expect(listed).toMatchObject({ node: w.pod.node, address: w.pod.ip, enrolled: true });
      // least loaded: the demo's waypoint is on one node, so this one goes to the other
      expect(w.pod.node).not.toBe(readWaypointPods(LAB).find((x) => x.gateway.name === 'waypoint')?.pod.node);
      const status = await cli(['lab', 'status', '--lab', LAB]);
      expect(status.stdout).toMatch(new RegExp(`shop/nm-wp2\\s+${w.pod.name}\\s+${w.pod.node}\\s+${w.pod.ip.replace(/\./g, '\\.')}\\s+\\d+\\s+ready`));
      const pid = waypointProc(w.pod.name)!.pid;

      const deleted = await cli(['waypoint', 'delete', 'nm-wp2', '-n', 'shop', '--lab', LAB]);
      expect(deleted.code, deleted.stderr).toBe(0);
      expect(deleted.stdout).toContain('removed nodemesh.io/use-waypoint=nm-wp2');
      await until('the waypoint pod to go', () =>
        readWaypointPods(LAB).some((x) => x.gateway.name === 'nm-wp2') || existsSync(w.pod.netnsPath) || existsSync(w.pod.cgroup) || existsSync(`/proc/${pid}`)
          ? undefined
          : true,
      );
      const wl = await cli(['get', 'workloads', '-n', 'shop', '-o', 'json', '--lab', LAB]);
      expect(wl.stdout).not.toContain(w.pod.name);
    },
    scaled(60_000),
  );

  // The node proxy's pooled HBONE connection to the killed waypoint is dropped on the waypoint's FIN
  // (docs/hbone.md, Liveness): in-flight requests are reset, new ones are refused until the
  // controller has restarted it, and none hangs. NMWPL_RESTART_ROUNDS=N kills it N times in a row
  // (the 20-of-20 check; default 1).
  const rounds = Number(process.env.NMWPL_RESTART_ROUNDS ?? 1);
  it(
    'a waypoint killed during traffic is restarted by the controller, and no request is lost without the client seeing it fail',
    async () => {
      for (let round = 1; round <= rounds; round++) {
        const before = await until('a running waypoint', () => waypointProc('wp-waypoint'));
        const client = nodeIn(
          topo,
          fe.pod.name,
          RETRY_CLIENT,
          [service('backend').vip, String(service('backend').port), String(scaled(4000)), String(scaled(20_000)), String(scaled(3000))],
          90_000,
        );
        await new Promise((r) => setTimeout(r, scaled(700)));
        process.kill(before.pid, 'SIGKILL');
        const after = await until('the controller to restart the waypoint', () => {
          const p = waypointProc('wp-waypoint');
          return p && p.pid !== before.pid ? p : undefined;
        });
        const result = lastJson<{
          done: number;
          retries: number;
          failures: Array<{ status?: number; error?: string }>;
          errors: Record<string, number>;
          longestRetryMs: number;
        }>(await client);
        const what = `round ${round} of ${rounds}: ${JSON.stringify(result)}`;
        // Every request answered 200, after retries on connection errors the client saw; nothing else.
        expect(result.failures, what).toEqual([]);
        // requests ran before and after the kill, and the kill met some (the client retried them)
        expect(result.done, what).toBeGreaterThan(10);
        expect(result.retries + result.failures.length, what).toBeGreaterThan(0);
        expect(after.pid).not.toBe(before.pid);
        const again = (await runClientIn(topo, fe.pod.name, BACKEND, 'http', {
          connections: 5,
          concurrency: 1,
          size: 0,
          timeoutMs: scaled(15_000),
        })) as ClientReport;
        expect(again.statusCodes, what).toEqual({ '200': 5 });
      }
    },
    scaled(120_000) * rounds,
  );

  // The lab controller supervises the control plane and the node proxies as kubelet would
  // (lab/supervisor.ts): SIGKILLed, each is started again after its back-off, `lab status` counts
  // the restart, and traffic through the mesh works again.
  it(
    'restarts a SIGKILLed node proxy and control plane; traffic works again and lab status counts the restarts',
    async () => {
      const live = (name: string, place: string) =>
        readLabProcesses(LAB).find((p) => p.name === name && p.place === place && isSameProcess(p.pid, p.startTime));
      const node = topo.pods.find((p) => p.name === fe.pod.name)!.node;
      const victims = [
        { name: 'node-proxy', place: node },
        { name: 'control-plane', place: 'control' },
      ];
      const before = victims.map((v) => live(v.name, v.place)!);
      expect(before.every(Boolean)).toBe(true);
      for (const p of before) process.kill(p.pid, 'SIGKILL');
      const after = await Promise.all(
        victims.map((v, i) =>
          until(`the lab to restart ${v.name} on ${v.place}`, () => {
            const p = live(v.name, v.place);
            return p && p.pid !== before[i]!.pid ? p : undefined;
          }),
        ),
      );
      expect(after.map((p) => p.pid)).not.toContain(before[0]!.pid);
      // Through the restarted node proxy (which resyncs from the restarted control plane) to the backend.
      const ok = await until(
        'requests through the restarted node proxy to succeed',
        async () => {
          const r = (await runClientIn(topo, fe.pod.name, BACKEND, 'http', {
            connections: 5,
            concurrency: 1,
            size: 0,
            timeoutMs: scaled(5_000),
          })) as ClientReport;
          return r.statusCodes['200'] === 5 ? r : undefined;
        },
        60_000,
      );
      expect(ok.statusCodes).toEqual({ '200': 5 });
      const status = await cli(['lab', 'status', '--json', '--lab', LAB]);
      const parsed = JSON.parse(status.stdout) as { processes: Array<{ name: string; place: string; alive: boolean; restarts?: number }> };
      for (const v of victims) {
        const row = parsed.processes.filter((p) => p.name === v.name && p.place === v.place);
        expect(row, JSON.stringify(row)).toEqual([expect.objectContaining({ alive: true, restarts: 1 })]);
      }
      const table = await cli(['lab', 'status', '--lab', LAB]);
      expect(table.stdout).toMatch(new RegExp(`control-plane\\s+control\\s+${after[1]!.pid}\\s+running\\s+1\\s`));
    },
    scaled(120_000),
  );

  it(
    'lab down stops the controller and the waypoints and leaves no waypoint pod, cgroup or process',
    async () => {
      const wps = readWaypointPods(LAB);
      expect(wps.length).toBe(1);
      const pids = (tryLoadLabState(LAB)?.processes ?? []).map((p) => p.pid);
      expect(readLabProcesses(LAB).some((p) => p.name === 'lab-controller')).toBe(true);
      const down = await cli(['lab', 'down', '--lab', LAB], scaled(60_000));
      expect(down.code, down.stderr).toBe(0);
      expect(await leftovers(LAB, pids)).toEqual([]);
      // The supervisor went with the controller: nothing was restarted after lab down.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await leftovers(LAB, pids)).toEqual([]);
      for (const w of wps) expect(existsSync(w.pod.netnsPath) || existsSync(w.pod.cgroup)).toBe(false);
    },
    scaled(90_000),
  );
});
