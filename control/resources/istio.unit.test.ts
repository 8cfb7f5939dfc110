// Istio compatibility: an ambient configuration written for Istio — its namespace and waypoint
// labels, its waypoint Gateway, an AuthorizationPolicy and a PeerAuthentication as Istio's docs
// print them — is accepted unchanged and means exactly what its nodemesh spelling means: both
// translate to the same workload API and the same Envoy resources. What nodemesh does not support
// is refused with the field named.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { translateEnvoy } from '../envoy/translate';
import { MemorySnapshot } from '../store/snapshot';
import { translateWorkloadApi } from '../workload/translate';
import { ISTIO_L7, ISTIO_STRICT, ISTIO_WAYPOINT } from '../../test/support/istio-docs';
import { validateResource, ValidationError, type AnyResource } from '.';

// Istio's ambient docs (Bookinfo: the waypoint and its namespace label, "Enforce Layer 7
// authorization policy" with the L4 policy admitting the waypoint, "Mutual TLS" STRICT), unchanged;
// the PeerAuthentication, which the docs apply with `-n`, carries its namespace here.
const ISTIO = [ISTIO_WAYPOINT, ISTIO_L7, ISTIO_STRICT.replace('  name: "default"\n', '  name: "default"\n  namespace: default\n')].join('---');

/** The same configuration in nodemesh's own spelling. */
const NODEMESH = ISTIO.replaceAll('istio.io/', 'nodemesh.io/')
  .replace(/security\.nodemesh\.io\/v1(beta1)?(?="?$)/gm, 'security.nodemesh.io/v1alpha1')
  .replace('istio-waypoint', 'nodemesh-waypoint');

const workload = (name: string, ip: string, labels: Record<string, string>) => ({
  apiVersion: 'nodemesh.io/v1alpha1',
  kind: 'Workload',
  metadata: { name, namespace: 'default', labels },
  spec: { node: 'node1', addresses: [ip], serviceAccount: labels.sa ?? name, ports: [{ name: 'http', port: 9080 }] },
});
const service = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { clusterIP: ip, selector: { app: name }, ports: [{ name: 'http', port: 9080, targetPort: 'http' }] },
});
const APPS = [
  workload('productpage-v1', '10.200.1.2', { app: 'productpage', sa: 'bookinfo-productpage' }),
  workload('reviews-v1', '10.200.1.3', { app: 'reviews', sa: 'bookinfo-reviews' }),
  workload('curl', '10.200.2.2', { app: 'curl' }),
  workload('waypoint-0', '10.200.2.9', { 'gateway.networking.k8s.io/gateway-name': 'waypoint', sa: 'waypoint' }),
  service('productpage', '10.96.0.20'),
  service('reviews', '10.96.0.21'),
];

function snapshotOf(yamlText: string): MemorySnapshot {
  const docs = parseAllDocuments(yamlText).map((d) => d.toJS() as unknown);
  return MemorySnapshot.of(1, [...docs, ...APPS].map((d) => validateResource(d)) as AnyResource[]);
}

function refusal(doc: unknown): string {
  try {
    validateResource(doc);
  } catch (e) {
    if (e instanceof ValidationError) return e.message;
    throw e;
  }
  throw new Error('accepted');
}

describe('Istio compatibility', () => {
  it('accepts Istio ambient configuration unchanged and keeps it as written', () => {
    const snap = snapshotOf(ISTIO);
    const ap = snap.get('AuthorizationPolicy', 'productpage-waypoint', 'default');
    expect(ap?.apiVersion).toBe('security.istio.io/v1');
    expect(snap.get('PeerAuthentication', 'default', 'default')?.apiVersion).toBe('security.istio.io/v1beta1');
    expect(snap.get('Namespace', 'default')?.metadata.labels).toEqual({ 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' });
  });

  it('translates to the same workload API (enrolment, waypoint, authorizations, STRICT) as the nodemesh spelling', () => {
    const istio = translateWorkloadApi(snapshotOf(ISTIO));
    const nodemesh = translateWorkloadApi(snapshotOf(NODEMESH));
    expect(istio.warnings).toEqual(nodemesh.warnings);
    expect(istio.addresses).toEqual(nodemesh.addresses);
    expect(istio.authorizations).toEqual(nodemesh.authorizations);
    expect(istio.peerAuthentications).toEqual(nodemesh.peerAuthentications);
    // And it means something: the pods are enrolled (HBONE) and reviews uses the waypoint.
    const reviews = [...istio.addresses.values()].find((a) => a.type?.$case === 'service' && a.type.value.name === 'reviews');
    expect(reviews?.type?.$case === 'service' ? reviews.type.value.waypoint?.gateway : undefined).toBe('default/waypoint');
    const page = [...istio.addresses.values()].find((a) => a.type?.$case === 'workload' && a.type.value.name === 'productpage-v1');
    expect(page?.type?.$case === 'workload' ? page.type.value.tunnelProtocol : undefined).toBe(1);
    expect([...istio.authorizations.keys()].some((k) => k.includes('productpage-ztunnel'))).toBe(true);
    expect(istio.peerAuthentications.size).toBe(1);
  });

  it('translates to the same Envoy resources for the waypoint (routes, RBAC, listeners)', () => {
    const a = translateEnvoy(snapshotOf(ISTIO));
    const b = translateEnvoy(snapshotOf(NODEMESH));
    expect(a.warnings).toEqual(b.warnings);
    expect(a.listeners).toEqual(b.listeners);
    expect(a.routes).toEqual(b.routes);
    expect(a.clusters).toEqual(b.clusters);
    expect(a.endpoints).toEqual(b.endpoints);
    expect([...a.views.keys()]).toEqual(['proxyless', 'waypoint:default/waypoint']);
    // The Istio L7 policy is in force at the waypoint: without it, the waypoint's listeners differ.
    const without = translateEnvoy(
      snapshotOf(
        ISTIO.split('---')
          .filter((d) => !d.includes('productpage-waypoint'))
          .join('---'),
      ),
    );
    expect(without.listeners).not.toEqual(a.listeners);
  });

  it('the nodemesh.io label wins over the Istio one on the same object', () => {
    const both = snapshotOf(ISTIO.replace('istio.io/dataplane-mode: ambient', 'istio.io/dataplane-mode: ambient\n    nodemesh.io/dataplane-mode: none'));
    const page = [...translateWorkloadApi(both).addresses.values()].find((x) => x.type?.$case === 'workload' && x.type.value.name === 'productpage-v1');
    expect(page?.type?.$case === 'workload' ? page.type.value.tunnelProtocol : undefined).toBe(0);
  });

  it('refuses what nodemesh does not support, naming the field', () => {
    const ap = (spec: unknown) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'x', namespace: 'default' }, spec });
    expect(refusal(ap({ action: 'CUSTOM', provider: { name: 'ext-authz' }, rules: [{}] }))).toMatch(/spec\.action.*CUSTOM is not supported/s);
    expect(refusal(ap({ rules: [{ from: [{ source: { serviceAccounts: ['default/sleep'] } }] }] }))).toMatch(
      /spec\.rules\[0\]\.from\[0\]\.source.*serviceAccounts/s,
    );
    expect(refusal(ap({ targetRefs: [{ kind: 'GatewayClass', group: 'gateway.networking.k8s.io', name: 'istio-waypoint' }] }))).toMatch(
      /spec\.targetRefs\[0\]\.kind/,
    );
    const pa = {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'p', namespace: 'default' },
      spec: { mtls: { mode: 'DISABLE' } },
    };
    expect(refusal(pa)).toMatch(/spec\.mtls\.mode.*DISABLE is not supported/s);
    expect(refusal({ apiVersion: 'security.istio.io/v2', kind: 'AuthorizationPolicy', metadata: { name: 'x' }, spec: {} })).toMatch(
      /apiVersion.*security\.istio\.io\/v1/s,
    );
    const nsLabel = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n', labels: { 'istio.io/dataplane-mode': 'sidecar' } } };
    expect(refusal(nsLabel)).toMatch(/metadata\.labels\["istio\.io\/dataplane-mode"\].*ambient, none/s);
  });
});
