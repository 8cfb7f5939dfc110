// istio_requests_total as scraped, while requests take the recent-series shortcut
// (metrics.ts recordRequest): every request is counted in its own label set, whatever order the
// label sets come in, and a reset of the series is not undone by series the shortcut still holds.
import { describe, expect, it } from 'vitest';
import { WaypointMetrics, type RequestFacts } from './metrics';

async function requestsTotal(m: WaypointMetrics): Promise<Map<string, number>> {
  const text = await m.registry.metrics();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('istio_requests_total{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    const get = (k: string): string => new RegExp(`${k}="([^"]*)"`).exec(labels)?.[1] ?? '?';
    out.set(
      `${get('source_principal')} ${get('destination_service')} ${get('response_code')} ${get('response_flags')} ${get('request_protocol')}`,
      Number(line.slice(line.lastIndexOf(' ') + 1)),
    );
  }
  return out;
}

describe('WaypointMetrics.recordRequest', () => {
  it('counts each request in its own series, across more label sets than the shortcut holds, and after a reset', async () => {
    const m = new WaypointMetrics();
    const alice = { principal: 'spiffe://cluster.local/ns/a/sa/alice' };
    const plain = { principal: undefined };
    const facts = (peer: RequestFacts['peer'], cluster: string, status: number, flags: string[] = [], contentType?: string): RequestFacts => ({
      peer,
      cluster,
      authority: 'web.a:80',
      endpointIdentity: undefined,
      contentType,
      status,
      grpcStatus: '',
      flags,
    });
    const svc = (n: string): string => `outbound|80||${n}.a.svc.cluster.local`;
    // Six label sets per source (more than the four the shortcut keeps), interleaved, three rounds.
    const sets = [
      facts(alice, svc('v1'), 200),
      facts(alice, svc('v2'), 200),
      facts(alice, svc('v1'), 503),
      facts(plain, svc('v1'), 200),
      facts(alice, svc('v3'), 200, [], 'application/grpc'),
      facts(alice, svc('v4'), 404),
      facts(alice, svc('v1'), 503, ['UF']),
    ];
    for (let round = 0; round < 3; round++) for (const f of sets) expect(m.recordRequest(f, 1, 10, 20)).toBe(f.flags.length ? f.flags.join(',') : '-');
    // The same request facts again, repeated: the shortcut's path.
    for (let i = 0; i < 5; i++) m.recordRequest(sets[0]!, 1, 10, 20);
    const a = 'spiffe://cluster.local/ns/a/sa/alice';
    expect(await requestsTotal(m)).toEqual(
      new Map([
        [`${a} v1.a.svc.cluster.local 200 - http`, 8],
        [`${a} v2.a.svc.cluster.local 200 - http`, 3],
        [`${a} v1.a.svc.cluster.local 503 - http`, 3],
        ['unknown v1.a.svc.cluster.local 200 - http', 3],
        [`${a} v3.a.svc.cluster.local 200 - grpc`, 3],
        [`${a} v4.a.svc.cluster.local 404 - http`, 3],
        [`${a} v1.a.svc.cluster.local 503 UF http`, 3],
      ]),
    );
    // A reset drops the series; the next requests start new ones rather than counting into dropped ones.
    m.registry.resetMetrics();
    m.recordRequest(sets[0]!, 1, 10, 20);
    m.recordRequest(sets[1]!, 1, 10, 20);
    expect(await requestsTotal(m)).toEqual(
      new Map([
        [`${a} v1.a.svc.cluster.local 200 - http`, 1],
        [`${a} v2.a.svc.cluster.local 200 - http`, 1],
      ]),
    );
  });
});
