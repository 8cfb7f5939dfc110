import { describe, expect, it } from 'vitest';
import { validateResource } from '../resources/validate';
import { age, formatTable } from './table';

describe('get tables', () => {
  it('formats ages like kubectl', () => {
    const now = new Date('2026-01-10T00:00:00Z');
    expect(age('2026-01-09T23:59:30Z', now)).toBe('30s');
    expect(age('2026-01-09T23:00:00Z', now)).toBe('60m');
    expect(age('2026-01-09T00:00:00Z', now)).toBe('24h');
    expect(age('2026-01-01T00:00:00Z', now)).toBe('9d');
    expect(age(undefined, now)).toBe('<unknown>');
  });

  it('aligns columns and adds NAMESPACE for all-namespace listings', () => {
    const now = new Date('2026-01-10T00:00:00Z');
    const svc = (name: string, ns: string, ip: string) => {
      const r = validateResource({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: ns },
        spec: { clusterIP: ip, ports: [{ port: 80, targetPort: 8080 }] },
      });
      r.metadata.creationTimestamp = '2026-01-09T23:59:50Z';
      return r;
    };
    const text = formatTable([svc('web', 'shop', '10.96.0.12'), svc('payments-api', 'pay', '10.96.0.100')], { withNamespace: true, now });
    expect(text).toBe(
      [
        'NAMESPACE   NAME           CLUSTER-IP    PORTS         SELECTOR   WAYPOINT   AGE',
        'shop        web            10.96.0.12    80:8080/TCP   <none>     <none>     10s',
        'pay         payments-api   10.96.0.100   80:8080/TCP   <none>     <none>     10s',
        '',
      ].join('\n'),
    );
    expect(formatTable([], { withNamespace: false })).toBe('');
  });
});
