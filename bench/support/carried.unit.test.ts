import { describe, expect, it } from 'vitest';
import { parseAccessLog } from '../../lab/mesh/report';
import { carriedBy, carriedVerdict } from './carried';

const ID = 'spiffe://cluster.local/ns/default/sa/default';
const line = (o: { src: string; dst: string; protocol: string; reporter?: string; id?: string; error?: string }): string =>
  JSON.stringify({
    level: 30,
    msg: 'connection closed',
    reporter: o.reporter ?? 'destination',
    src: { addr: o.src, identity: o.id ?? ID, workload: 'pod1-1' },
    dst: { addr: o.dst, workload: 'pod2-1' },
    protocol: o.protocol,
    bytes_sent: 10,
    bytes_recv: 10,
    ...(o.error ? { error: o.error } : {}),
  });

describe('carriedBy / carriedVerdict', () => {
  const log = [
    line({ src: '10.200.1.2:40001', dst: '10.200.2.2:5201', protocol: 'HBONE' }),
    line({ src: '10.200.1.2:40002', dst: '10.200.2.2:5201', protocol: 'HBONE' }),
    line({ src: '10.200.1.2:40003', dst: '10.200.2.2:7000', protocol: 'HBONE' }),
    line({ src: '10.200.1.2:40004', dst: '10.200.2.2:7000', protocol: 'HBONE', reporter: 'source' }),
    line({ src: '10.200.1.2:40005', dst: '10.200.1.3:7000', protocol: 'same-node' }),
    line({ src: '10.200.2.3:40006', dst: '10.200.2.2:7000', protocol: 'HBONE' }),
    'not json',
  ].join('\n');
  const entries = parseAccessLog(log);

  it('counts only destination entries from the source to the destination ports', () => {
    const c = carriedBy(entries, '10.200.1.2', '10.200.2.2', [5201, 7000]);
    expect(c).toEqual({ count: 3, protocols: { HBONE: 3 }, sourceIdentities: [ID], errors: 0 });
    expect(carriedVerdict(c, { protocol: 'HBONE', identity: ID, expected: 3 })).toEqual({ ok: true, text: 'HBONE x3' });
  });

  it('refuses a mesh row with too few entries, the wrong protocol or identity', () => {
    const c = carriedBy(entries, '10.200.1.2', '10.200.2.2', [5201, 7000]);
    expect(carriedVerdict(c, { protocol: 'HBONE', identity: ID, expected: 4 }).ok).toBe(false);
    expect(carriedVerdict(c, { protocol: 'same-node', identity: ID, expected: 1 }).ok).toBe(false);
    expect(carriedVerdict(c, { protocol: 'HBONE', identity: 'spiffe://cluster.local/ns/x/sa/y', expected: 1 }).ok).toBe(false);
    expect(carriedVerdict(carriedBy(entries, '10.200.1.9', '10.200.2.2', [7000]), { protocol: 'HBONE', identity: ID, expected: 1 })).toEqual({
      ok: false,
      text: 'BAD: no access-log entry',
    });
  });

  it('a row without the mesh is good only when no proxy saw its connections', () => {
    expect(carriedVerdict(carriedBy(entries, '10.200.1.2', '10.200.1.3', [5201]), 'no proxy')).toEqual({ ok: true, text: 'no proxy' });
    expect(carriedVerdict(carriedBy(entries, '10.200.1.2', '10.200.1.3', [7000]), 'no proxy')).toEqual({ ok: false, text: 'BAD: proxied same-node x1' });
  });
});
