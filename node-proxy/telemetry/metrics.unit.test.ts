// Scrapes the real registry over the real /metrics endpoint and reads the Prometheus text back.
import { request } from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeProxyTelemetry } from './metrics';
import { tcpLabels, type ConnectionRecord } from './labels';
import { startMetricsServer, type MetricsServer } from './server';

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function capture() {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    logger: pino({ level: 'info' }, sink),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function get(port: number, path: string): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    })
      .on('error', reject)
      .end();
  });
}

/** Samples of one metric as { labels, value } from Prometheus text exposition. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = line.match(/^[^{ ]+(?:\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

const web = { name: 'web-1', namespace: 'frontend', canonicalName: 'web', canonicalRevision: 'v1' };
const db = { name: 'db-0', namespace: 'backend', canonicalName: 'db', canonicalRevision: 'v2' };
const allowedInbound: ConnectionRecord = {
  reporter: 'destination',
  source: { workload: web, identity: 'spiffe://cluster.local/ns/frontend/sa/web', address: '10.200.1.5', port: 40000 },
  destination: { workload: db, identity: 'spiffe://cluster.local/ns/backend/sa/db', address: '10.200.2.7', port: 5432 },
  service: { name: 'db', namespace: 'backend', hostname: 'db.backend.svc.cluster.local' },
  mtls: true,
};

async function scrape(t: NodeProxyTelemetry) {
  const s = await startMetricsServer(t.registry, { host: '127.0.0.1', port: 0 });
  servers.push(s);
  const r = await get(s.port, '/metrics');
  expect(r.status).toBe(200);
  expect(r.type).toMatch(/^text\/plain/);
  return r.body;
}

describe('node proxy telemetry', () => {
  it('an allowed mTLS connection: Istio labels on opened/closed and bytes each way, and one access-log line', async () => {
    const { logger, lines } = capture();
    const t = new NodeProxyTelemetry({ accessLog: logger });
    const h = t.open(allowedInbound);
    h.progress(1000, 10);
    h.close({ requestBytes: 1500, responseBytes: 4096 });
    h.close({ requestBytes: 9999, responseBytes: 9999 }); // a second close changes nothing
    const text = await scrape(t);

    const expected = {
      reporter: 'destination',
      source_workload: 'web-1',
      source_workload_namespace: 'frontend',
      source_principal: 'spiffe://cluster.local/ns/frontend/sa/web',
      source_app: 'web',
      source_version: 'v1',
      source_canonical_service: 'web',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
      destination_workload: 'db-0',
      destination_workload_namespace: 'backend',
      destination_principal: 'spiffe://cluster.local/ns/backend/sa/db',
      destination_app: 'db',
      destination_version: 'v2',
      destination_canonical_service: 'db',
      destination_canonical_revision: 'v2',
      destination_service: 'db.backend.svc.cluster.local',
      destination_service_name: 'db',
      destination_service_namespace: 'backend',
      destination_cluster: 'Kubernetes',
      request_protocol: 'tcp',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    };
    expect(samples(text, 'istio_tcp_connections_opened_total')).toEqual([{ labels: expected, value: 1 }]);
    expect(samples(text, 'istio_tcp_connections_closed_total')).toEqual([{ labels: expected, value: 1 }]);
    expect(samples(text, 'istio_tcp_received_bytes_total')).toEqual([{ labels: expected, value: 1500 }]);
    expect(samples(text, 'istio_tcp_sent_bytes_total')).toEqual([{ labels: expected, value: 4096 }]);
    expect(samples(text, 'nodemesh_policy_denials_total')).toEqual([]);

    const log = lines();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({
      msg: 'connection complete',
      reporter: 'destination',
      src: { addr: '10.200.1.5:40000', workload: 'frontend/web-1', identity: 'spiffe://cluster.local/ns/frontend/sa/web' },
      dst: { addr: '10.200.2.7:5432', workload: 'backend/db-0', identity: 'spiffe://cluster.local/ns/backend/sa/db', service: 'db.backend.svc.cluster.local' },
      protocol: 'HBONE',
      bytes_sent: 1500,
      bytes_recv: 4096,
      response_flags: '-',
    });
    expect(typeof log[0]!.duration_ms).toBe('number');
  });

  it('counts kept per label set: every scrape reports the totals, and a connection with other labels is a series of its own', async () => {
    const t = new NodeProxyTelemetry({ accessLog: capture().logger });
    for (let i = 0; i < 3; i++)
      t.open({ ...allowedInbound, source: { ...allowedInbound.source, port: 40000 + i } }).close({ requestBytes: 10, responseBytes: 20 });
    const first = await scrape(t);
    expect(await scrape(t)).toBe(first); // a scrape changes nothing
    const other = { ...allowedInbound, destination: { ...allowedInbound.destination, identity: 'spiffe://cluster.local/ns/backend/sa/db2' } };
    t.open(other).close({ requestBytes: 1, responseBytes: 0, error: 'ECONNRESET' });
    t.open(allowedInbound).close({ requestBytes: 5, responseBytes: 5 });
    const text = await scrape(t);
    const by = (name: string) => samples(text, name).map((x) => [x.labels.destination_principal, x.labels.response_flags, x.value]);
    expect(by('istio_tcp_connections_opened_total')).toEqual([
      ['spiffe://cluster.local/ns/backend/sa/db', '-', 4],
      ['spiffe://cluster.local/ns/backend/sa/db2', '-', 1],
    ]);
    expect(by('istio_tcp_connections_closed_total')).toEqual([
      ['spiffe://cluster.local/ns/backend/sa/db', '-', 4],
      ['spiffe://cluster.local/ns/backend/sa/db2', 'CONNECT', 1],
    ]);
    expect(by('istio_tcp_received_bytes_total')).toEqual([
      ['spiffe://cluster.local/ns/backend/sa/db', '-', 35],
      ['spiffe://cluster.local/ns/backend/sa/db2', '-', 1],
    ]);
    // no bytes back on db2: no series, as prom-client keeps none for a counter never incremented
    expect(by('istio_tcp_sent_bytes_total')).toEqual([['spiffe://cluster.local/ns/backend/sa/db', '-', 65]]);
  });

  it('a denied plaintext connection: closed with DENY, unknown source, no bytes, a denial by policy, the reason in the log', async () => {
    const { logger, lines } = capture();
    const t = new NodeProxyTelemetry({ accessLog: logger });
    const plaintext: ConnectionRecord = {
      reporter: 'destination',
      source: { address: '10.199.0.1', port: 51000 },
      destination: { workload: db, identity: 'spiffe://cluster.local/ns/backend/sa/db', address: '10.200.2.7', port: 5432 },
      mtls: false,
    };
    t.denied(plaintext, { policy: 'backend/strict', reason: 'PeerAuthentication backend/strict requires mutual TLS (STRICT)' });
    t.denied(plaintext, { policy: 'backend/strict', reason: 'again' });
    const text = await scrape(t);
    const opened = samples(text, 'istio_tcp_connections_opened_total');
    expect(opened).toHaveLength(1);
    expect(opened[0]!.value).toBe(2);
    expect(opened[0]!.labels).toMatchObject({
      source_workload: 'unknown',
      source_workload_namespace: 'unknown',
      source_principal: 'unknown',
      source_cluster: 'unknown',
      destination_workload: 'db-0',
      destination_service: '10.200.2.7',
      destination_service_name: 'unknown',
      response_flags: '-',
      connection_security_policy: 'none',
    });
    // The close carries the DENY flag (ztunnel's accounting).
    const closedDenied = samples(text, 'istio_tcp_connections_closed_total');
    expect(closedDenied).toHaveLength(1);
    expect(closedDenied[0]).toMatchObject({ labels: { ...opened[0]!.labels, response_flags: 'DENY' }, value: 2 });
    expect(samples(text, 'istio_tcp_received_bytes_total')).toEqual([]);
    expect(samples(text, 'nodemesh_policy_denials_total')).toEqual([{ labels: { reporter: 'destination', policy: 'backend/strict' }, value: 2 }]);
    expect(lines()[0]).toMatchObject({
      msg: 'connection denied',
      src: { addr: '10.199.0.1:51000' },
      response_flags: 'DENY',
      deny_reason: 'PeerAuthentication backend/strict requires mutual TLS (STRICT)',
      policy: 'backend/strict',
      bytes_sent: 0,
      bytes_recv: 0,
    });
  });

  it('a failed outbound connection closes with CONNECT and logs the error', async () => {
    const { logger, lines } = capture();
    const t = new NodeProxyTelemetry({ accessLog: logger });
    const outbound: ConnectionRecord = { ...allowedInbound, reporter: 'source' };
    t.open(outbound).close({ requestBytes: 0, responseBytes: 0, error: 'connect ECONNREFUSED 10.200.2.7:15008' });
    const text = await scrape(t);
    expect(samples(text, 'istio_tcp_connections_opened_total')[0]!.labels).toMatchObject({ reporter: 'source', response_flags: '-' });
    expect(samples(text, 'istio_tcp_connections_closed_total')[0]!.labels).toMatchObject({ reporter: 'source', response_flags: 'CONNECT' });
    expect(lines()[0]).toMatchObject({ msg: 'connection failed', error: 'connect ECONNREFUSED 10.200.2.7:15008' });
  });

  it('exports mesh health: xDS status, state size, BPF map fill; serves /stats/prometheus too', async () => {
    const t = new NodeProxyTelemetry({ accessLog: pino({ level: 'silent' }), bpfMapFill: () => [{ map: 'nm_workload_ips', entries: 3, capacity: 4 }] });
    t.xdsStatus({ connected: true, synced: true, nacks: 2 });
    t.stateStats({ workloads: 5, services: 2, authorizations: 1, localEnrolled: 3 });
    const text = await scrape(t);
    expect(samples(text, 'nodemesh_xds_connected')).toEqual([{ labels: {}, value: 1 }]);
    expect(samples(text, 'nodemesh_xds_client_nacks')).toEqual([{ labels: {}, value: 2 }]);
    expect(samples(text, 'nodemesh_state_objects')).toContainEqual({ labels: { kind: 'local_enrolled' }, value: 3 });
    expect(samples(text, 'nodemesh_bpf_map_fill_ratio')).toEqual([{ labels: { map: 'nm_workload_ips' }, value: 0.75 }]);
    expect(samples(text, 'nodemesh_bpf_map_entries')).toEqual([{ labels: { map: 'nm_workload_ips' }, value: 3 }]);
    const s = servers[0]!;
    expect((await get(s.port, '/stats/prometheus')).body).toContain('nodemesh_xds_connected 1');
    expect((await get(s.port, '/nope')).status).toBe(404);
  });

  it('labels an outbound plaintext passthrough with what is known', () => {
    const l = tcpLabels({
      reporter: 'source',
      source: { workload: web, identity: undefined, address: '10.200.1.5', port: 1 },
      destination: { address: '93.184.216.34', port: 443 },
      mtls: false,
    });
    expect(l).toMatchObject({
      source_workload: 'web-1',
      source_principal: 'unknown',
      destination_workload: 'unknown',
      destination_service: '93.184.216.34',
      connection_security_policy: 'none',
      destination_cluster: 'unknown',
    });
  });

  it('serves the recent connections at /recent: allowed and denied, with the deciding policy, no client address', async () => {
    const { logger } = capture();
    const t = new NodeProxyTelemetry({ accessLog: logger });
    t.open(allowedInbound).close({ requestBytes: 10, responseBytes: 20 });
    t.denied(allowedInbound, { policy: 'backend/deny-web', reason: 'DENY policy backend/deny-web matched' });
    const s = await startMetricsServer(t.registry, { host: '127.0.0.1', port: 0, recent: t.recent });
    servers.push(s);
    const r = await get(s.port, '/recent');
    expect(r.status).toBe(200);
    const page = JSON.parse(r.body);
    expect(page).toMatchObject({ kind: 'RecentRecords', proxy: 'node-proxy', last: 2 });
    expect(page.records[0]).toMatchObject({
      seq: 1,
      reporter: 'destination',
      src: { workload: 'frontend/web-1', identity: 'spiffe://cluster.local/ns/frontend/sa/web' },
      dst: { workload: 'backend/db-0', service: 'db.backend.svc.cluster.local', port: 5432 },
      mtls: true,
      bytes_sent: 10,
      bytes_recv: 20,
      response_flags: '-',
    });
    expect(page.records[1]).toMatchObject({ seq: 2, response_flags: 'DENY', policy: 'backend/deny-web' });
    expect(r.body).not.toContain('10.200.1.5');
    expect(JSON.parse((await get(s.port, '/recent?since=1')).body).records).toHaveLength(1);
  });
});
