// Kinds from CRDs a cluster may lack — Istio's security.istio.io AuthorizationPolicy and
// PeerAuthentication, the Gateway API — on the stand-in API server with and without those groups
// served, driven by the real kubectl and read by the real @kubernetes/client-node informers: a
// missing CRD does not hold up the sync, is logged once with what to do, and installing it later
// starts the watch; Istio's policies are mirrored as the mesh's, and yield to nodemesh's own of
// the same name.
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { KubernetesStore } from '../../control/kubernetes/store';
import { cleanupAfterEach } from '../support/cleanups';
import { kubectl, startStandIn } from '../support/kube-apiserver';
import { until } from '../support/until';

const cleanup = cleanupAfterEach();

const NAMESPACE = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
`;

const policy = (apiVersion: string, name: string, principal: string) => `apiVersion: ${apiVersion}
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: demo
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/demo/sa/${principal}"]
`;

const ISTIO = 'security.istio.io/v1';
const NODEMESH = 'security.nodemesh.io/v1alpha1';

function capturingLogger() {
  const lines: { level: number; msg: string; kind?: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function openStore(kubeconfig: string, logger = pino({ level: 'silent' })) {
  const store = await KubernetesStore.open({ kubeconfig, logger, backoff: { initialMs: 50, maxMs: 300 }, syncTimeoutMs: 10_000 });
  cleanup(() => store.close());
  return store;
}

const apiVersionOf = async (store: KubernetesStore, name: string) => (await store.get('AuthorizationPolicy', name, 'demo'))?.apiVersion;

describe('optional kinds: CRDs the cluster may not have', { timeout: 60_000 }, () => {
  it('syncs without them, says so once, and starts watching once their CRDs are installed', async () => {
    const { api, kubeconfig } = await startStandIn(cleanup, 'k8s-optional', { unservedGroups: ['security.istio.io', 'gateway.networking.k8s.io'] });
    expect((await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], NAMESPACE + '---\n' + policy(NODEMESH, 'own', 'web'))).code).toBe(0);
    const { logger, lines } = capturingLogger();
    const store = await openStore(kubeconfig, logger);
    expect(await apiVersionOf(store, 'own')).toBe(NODEMESH);
    const notServed = store
      .sources()
      .filter((s) => s.notServed)
      .map((s) => s.name)
      .sort();
    expect(notServed).toEqual(['gateways', 'httproutes', 'istio-authorizationpolicies', 'istio-peerauthentications']);

    // A user without Istio's CRDs gets kubectl's own refusal.
    const refused = await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], policy(ISTIO, 'from-istio', 'web'));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no matches for kind "AuthorizationPolicy" in version "security.istio.io\/v1"/);

    // Several retries later, still one warning per kind, naming what to do.
    await until('a few retries', () => (store.sources().find((s) => s.name === 'istio-authorizationpolicies')?.lists ?? 0) >= 3, 10_000, 50);
    const warnings = lines.filter((l) => l.level === 40 && /is not served by the API server/.test(l.msg));
    expect(warnings.map((l) => l.kind).sort()).toEqual(['gateways', 'httproutes', 'istio-authorizationpolicies', 'istio-peerauthentications']);
    expect(warnings.find((l) => l.kind === 'istio-authorizationpolicies')?.msg).toMatch(/install Istio's base CRDs/);
    expect(warnings.find((l) => l.kind === 'gateways')?.msg).toMatch(/install the Gateway API CRDs/);

    // The CRDs are installed: kubectl apply works and the policy reaches the store, as the mesh's.
    api.serveGroup('security.istio.io');
    const applied = await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], policy(ISTIO, 'from-istio', 'web'));
    expect(applied.stderr).toBe('');
    await until('the Istio policy mirrored', async () => (await apiVersionOf(store, 'from-istio')) === ISTIO, 10_000, 50);
    const ap = await store.get('AuthorizationPolicy', 'from-istio', 'demo');
    expect(ap?.spec.rules?.[0]?.from?.[0]?.source?.principals).toEqual(['cluster.local/ns/demo/sa/web']);
    expect(store.sources().find((s) => s.name === 'istio-authorizationpolicies')?.notServed).toBeUndefined();
    expect(lines.some((l) => l.level === 30 && /security.istio.io\/v1 AuthorizationPolicy is served now/.test(l.msg))).toBe(true);
    // The Gateway API is still missing: nothing else changed.
    expect(store.sources().find((s) => s.name === 'gateways')?.notServed).toBe(true);

    // The CRDs deleted again: what was mirrored from them goes.
    api.unserveGroup('security.istio.io');
    await until('the Istio policy gone', async () => (await apiVersionOf(store, 'from-istio')) === undefined, 10_000, 50);
    expect(await apiVersionOf(store, 'own')).toBe(NODEMESH);
  });

  it("with Istio's CRDs served: its policies are mirrored in the first sync, and nodemesh's own of the same name wins", async () => {
    const { kubeconfig } = await startStandIn(cleanup, 'k8s-optional');
    const docs = [NAMESPACE, policy(ISTIO, 'shared', 'istio-client'), policy(ISTIO, 'only-istio', 'web'), policy(NODEMESH, 'shared', 'nodemesh-client')];
    expect((await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], docs.join('---\n'))).code).toBe(0);
    const store = await openStore(kubeconfig);
    expect(store.sources().some((s) => s.notServed)).toBe(false);
    expect(await apiVersionOf(store, 'only-istio')).toBe(ISTIO);
    const principals = async () => (await store.get('AuthorizationPolicy', 'shared', 'demo'))?.spec.rules?.[0]?.from?.[0]?.source?.principals;
    expect(await apiVersionOf(store, 'shared')).toBe(NODEMESH);
    expect(await principals()).toEqual(['cluster.local/ns/demo/sa/nodemesh-client']);
    expect(store.notMirrored().join('\n')).toMatch(
      /security.istio.io\/v1 AuthorizationPolicy demo\/shared is not mirrored: security.nodemesh.io\/v1alpha1 .* wins/,
    );

    // nodemesh's deleted: Istio's takes its place; nodemesh's again: it wins again.
    expect((await kubectl(kubeconfig, ['delete', 'authorizationpolicies.security.nodemesh.io', 'shared', '-n', 'demo'])).code).toBe(0);
    await until('the Istio policy in its place', async () => (await apiVersionOf(store, 'shared')) === ISTIO, 10_000, 50);
    expect(await principals()).toEqual(['cluster.local/ns/demo/sa/istio-client']);
    expect(store.notMirrored()).toEqual([]);
    expect((await kubectl(kubeconfig, ['apply', '--validate=false', '-f', '-'], policy(NODEMESH, 'shared', 'nodemesh-client'))).code).toBe(0);
    await until("nodemesh's policy back", async () => (await apiVersionOf(store, 'shared')) === NODEMESH, 10_000, 50);
    // Istio's deleted while shadowed: nodemesh's stays.
    expect((await kubectl(kubeconfig, ['delete', 'authorizationpolicies.security.istio.io', 'shared', '-n', 'demo'])).code).toBe(0);
    await until('the shadow gone', async () => store.notMirrored().length === 0, 10_000, 50);
    expect(await principals()).toEqual(['cluster.local/ns/demo/sa/nodemesh-client']);
  });
});
