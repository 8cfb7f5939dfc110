// The waypoint's /recent records kept in columns: what /recent serves is what each request was,
// across the ring's wrap-around, with strings repeated or changed from one request to the next.
import { describe, expect, it } from 'vitest';
import { RecentRecords } from '../../common/recent-records';
import { RecentRequests, type RecentRequest } from './recent-requests';

const request = (n: number): RecentRequest => ({
  identity: n % 3 === 0 ? undefined : `spiffe://cluster.local/ns/shop/sa/c${n % 2}`,
  service: n % 4 < 2 ? 'web.shop.svc.cluster.local' : `svc-${n}.shop`,
  port: 8000 + n,
  method: n % 5 === 0 ? 'POST' : 'GET',
  status: n % 7 === 0 ? 503 : 200,
  flags: n % 7 === 0 ? 'UF' : '-',
  detail: n % 7 === 0 ? `upstream connect error ${n}` : '',
  cluster: n % 2 === 0 ? 'outbound|80||web' : '',
  bytesSent: n * 10,
  bytesReceived: n * 100,
  durationMs: n + 0.12345,
});

describe('RecentRequests', () => {
  it('serves each request as it was, oldest first, after the ring wrapped around', () => {
    const ring = new RecentRecords('waypoint', 8);
    const recent = new RecentRequests(ring);
    for (let n = 1; n <= 21; n++) recent.push(request(n), 1_000 + n);
    const page = ring.page();
    expect(page.last).toBe(21);
    expect(page.records.map((r) => r.seq)).toEqual([14, 15, 16, 17, 18, 19, 20, 21]);
    for (const r of page.records) {
      const n = r.seq;
      const q = request(n);
      expect(r).toEqual({
        seq: n,
        time: 1_000 + n,
        reporter: 'waypoint',
        src: { identity: q.identity },
        dst: { service: q.service, port: q.port },
        method: q.method,
        status: q.status,
        flags: q.flags,
        detail: q.detail || undefined,
        cluster: q.cluster || undefined,
        mtls: q.identity !== undefined,
        bytes_sent: q.bytesSent,
        bytes_recv: q.bytesReceived,
        duration_ms: Math.round(q.durationMs * 1000) / 1000,
      });
    }
    // newer than a sequence number, as the control plane asks
    expect(ring.page(19).records.map((r) => r.status)).toEqual([200, 503]);
  });
});
