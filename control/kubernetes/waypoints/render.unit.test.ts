import { underNodeOptions } from '../../../test/support/node-options';
import { describe, expect, it } from 'vitest';
import { WAYPOINT_ENV, WAYPOINT_MAX_SEMI_SPACE_MIB, WAYPOINT_NODE_OPTIONS } from '../../../waypoint/process-flags';
import { Bootstrap } from '../../../api/gen/envoy/config/bootstrap/v3/bootstrap';
import { waypointBootstrap } from '../../envoy/bootstrap';
import { gatewayStatus, renderWaypoint, type WaypointRenderOptions } from './render';

const gw = { name: 'waypoint', namespace: 'demo', uid: 'g-1', apiVersion: 'gateway.networking.k8s.io/v1', infrastructure: { labels: { team: 'shop' } } };
const opts: WaypointRenderOptions = {
  image: 'nodemesh/nodemesh:0.1.0',
  envoyImage: 'envoyproxy/envoy:v1.33-latest',
  proxy: 'nodemesh',
  controlAddress: 'nodemesh-control.nodemesh-system.svc:15012',
  trustDomain: 'cluster.local',
};

describe('waypoint rendering', () => {
  it('a ServiceAccount, Deployment and Service owned by the Gateway and labelled with its name', () => {
    const r = renderWaypoint(gw, opts);
    for (const o of [r.serviceAccount, r.deployment, r.service]) {
      expect(o.metadata).toMatchObject({ name: 'waypoint', namespace: 'demo', labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint', team: 'shop' } });
      expect(o.metadata.ownerReferences).toEqual([
        { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'waypoint', uid: 'g-1', controller: true, blockOwnerDeletion: true },
      ]);
    }
    const pod = (
      r.deployment.spec as {
        template: { spec: { serviceAccountName: string; containers: { args: string[] }[]; volumes: { name: string; projected?: unknown }[] } };
      }
    ).template.spec;
    expect(pod.serviceAccountName).toBe('waypoint');
    expect(pod.containers[0].args).toEqual([
      'waypoint',
      'run',
      '--name=waypoint',
      '--namespace=demo',
      '--control=nodemesh-control.nodemesh-system.svc:15012',
      '--token-file=/var/run/secrets/nodemesh/token/token',
      '--trust-bundle=/var/run/secrets/nodemesh/ca/root-cert.pem',
      '--trust-domain=cluster.local',
      '--service-account=waypoint',
      '--ip=$(POD_IP)',
    ]);
    expect(pod.volumes.find((v) => v.name === 'nodemesh-token')?.projected).toEqual({
      sources: [{ serviceAccountToken: { audience: 'nodemesh-ca', expirationSeconds: 43200, path: 'token' } }],
    });
    expect((r.service.spec as { selector: unknown; ports: { port: number }[] }).selector).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
    expect((r.service.spec as { ports: { port: number }[] }).ports.map((p) => p.port)).toEqual([15008, 15021]);
  });

  it('starts the waypoint with its process flags (waypoint/process-flags.ts), which node accepts in NODE_OPTIONS and honours', () => {
    const pod = (
      renderWaypoint(gw, opts).deployment.spec as { template: { spec: { containers: { name: string; env: { name: string; value?: string }[] }[] } } }
    ).template.spec;
    const env = Object.fromEntries(pod.containers[0].env.map((e) => [e.name, e.value]));
    expect(env.NODE_OPTIONS).toBe(WAYPOINT_NODE_OPTIONS);
    expect(env.UV_THREADPOOL_SIZE).toBe(WAYPOINT_ENV.UV_THREADPOOL_SIZE);
    // node refuses a flag it does not allow in NODE_OPTIONS (exit 9): these start, and the young
    // generation stays at the size they give it
    const r = underNodeOptions(env.NODE_OPTIONS ?? '');
    expect(r.status, r.stderr).toBe(0);
    expect(r.newSpaceBytes).toBeLessThanOrEqual(2 * WAYPOINT_MAX_SEMI_SPACE_MIB * 1024 * 1024);
  });

  it('with proxy=envoy: the bootstrap from nodemesh waypoint bootstrap in an init container, then Envoy', () => {
    const pod = (
      renderWaypoint(gw, { ...opts, proxy: 'envoy' }).deployment.spec as {
        template: {
          spec: {
            initContainers: { args: string[]; volumeMounts: { name: string }[] }[];
            containers: { image: string; args: string[]; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[];
          };
        };
      }
    ).template.spec;
    expect(pod.initContainers.map((c) => c.args.slice(0, 2).join(' '))).toEqual(['waypoint bootstrap', 'waypoint cert-agent']);
    expect(pod.initContainers[0].args).toContain('--xds-address=nodemesh-control.nodemesh-system.svc:15012');
    expect(pod.initContainers[1].args).toContain('--once');
    // The bootstrap Envoy reads holds no token (its ADS credential is the certificate), so its
    // init container does not even mount one; only the certificate agents do.
    expect(pod.initContainers[0].args.filter((a) => a.includes('token'))).toEqual([]);
    expect(pod.initContainers[0].volumeMounts.map((m) => m.name)).toEqual(['envoy-config']);
    expect(pod.initContainers[1].volumeMounts.map((m) => m.name)).toEqual(['nodemesh-token', 'ca-root', 'certs']);
    expect(pod.containers.map((c) => c.image)).toEqual(['envoyproxy/envoy:v1.33-latest', 'nodemesh/nodemesh:0.1.0']);
    expect(pod.containers[0].args).toEqual(['-c', '/etc/envoy/bootstrap.json']);
    expect(pod.containers[1].args.slice(0, 2)).toEqual(['waypoint', 'cert-agent']);
    expect(pod.containers[1].args).not.toContain('--once');
    // Envoy gets the certificate files read-only and no token; the agent has the token.
    expect(pod.containers[0].volumeMounts).toEqual([
      { name: 'envoy-config', mountPath: '/etc/envoy', readOnly: true },
      { name: 'certs', mountPath: '/var/run/nodemesh/certs', readOnly: true },
    ]);
    expect(pod.containers[1].volumeMounts.map((m) => m.name)).toEqual(['nodemesh-token', 'ca-root', 'certs']);
  });

  it("with proxy=envoy: Envoy's readiness probe reaches Envoy's admin /ready through the bootstrap's readiness listener", () => {
    type Probe = { httpGet: { path: string; port: number }; periodSeconds: number };
    const pod = (
      renderWaypoint(gw, { ...opts, proxy: 'envoy' }).deployment.spec as {
        template: { spec: { containers: { name: string; readinessProbe?: Probe; ports: { containerPort: number }[] }[] } };
      }
    ).template.spec;
    const envoy = pod.containers.find((c) => c.name === 'envoy');
    expect(envoy?.readinessProbe).toEqual({ httpGet: { path: '/healthz/ready', port: 15021 }, periodSeconds: 5, failureThreshold: 3 });
    expect(envoy?.ports.map((p) => p.containerPort)).toContain(15021);
    // What the init container's `waypoint bootstrap` gives Envoy: a listener on all addresses at
    // the probe's port whose only route takes the probe's path to the admin's /ready, and the
    // admin itself on loopback only.
    const b = Bootstrap.toJSON(waypointBootstrap({ name: 'waypoint', namespace: 'demo', xdsAddress: opts.controlAddress })) as {
      admin: { address: { socketAddress: { address: string; portValue: number } } };
      staticResources: {
        listeners: {
          address: { socketAddress: { address: string; portValue: number } };
          filterChains: { filters: { typedConfig: { routeConfig: { virtualHosts: { routes: { match: unknown; route: unknown }[] }[] } } }[] }[];
        }[];
        clusters: { name: string; loadAssignment: { endpoints: { lbEndpoints: { endpoint: { address: { socketAddress: unknown } } }[] }[] } }[];
      };
    };
    expect(b.admin.address.socketAddress).toEqual({ address: '127.0.0.1', portValue: 15000 });
    const ready = b.staticResources.listeners.filter((l) => l.address.socketAddress.portValue === envoy?.readinessProbe?.httpGet.port);
    expect(ready).toHaveLength(1);
    expect(ready[0]?.address.socketAddress.address).toBe('0.0.0.0');
    const routes = ready[0]?.filterChains[0]?.filters[0]?.typedConfig.routeConfig.virtualHosts.flatMap((v) => v.routes);
    expect(routes).toEqual([{ match: { path: '/healthz/ready' }, route: { cluster: 'envoy-admin', prefixRewrite: '/ready' } }]);
    const admin = b.staticResources.clusters.find((c) => c.name === 'envoy-admin');
    expect(admin?.loadAssignment.endpoints[0]?.lbEndpoints[0]?.endpoint.address.socketAddress).toEqual({ address: '127.0.0.1', portValue: 15000 });
  });

  it("the scrape annotations name what the waypoint serves: nodemesh 15020 /metrics; Envoy 15090 /stats/prometheus, its bootstrap's listener to the admin", () => {
    type Tpl = {
      metadata: { annotations: Record<string, string> };
      spec: { containers: { name: string; ports: { name: string; containerPort: number }[] }[] };
    };
    const tpl = (proxy: 'nodemesh' | 'envoy') => (renderWaypoint(gw, { ...opts, proxy }).deployment.spec as { template: Tpl }).template;
    const scrape = (t: Tpl) => [
      t.metadata.annotations['prometheus.io/scrape'],
      t.metadata.annotations['prometheus.io/port'],
      t.metadata.annotations['prometheus.io/path'],
    ];
    expect(scrape(tpl('nodemesh'))).toEqual(['true', '15020', '/metrics']);
    const envoyTpl = tpl('envoy');
    expect(scrape(envoyTpl)).toEqual(['true', '15090', '/stats/prometheus']);
    // Envoy declares the stats port and nothing on 15020, where it listens on nothing
    const envoy = envoyTpl.spec.containers.find((c) => c.name === 'envoy');
    expect(envoy?.ports.map((p) => p.containerPort)).toEqual([15008, 15090, 15021]);
    // What `waypoint bootstrap` gives Envoy on the annotated port: one listener on all addresses whose
    // only route takes the annotated path, unchanged, to the admin on loopback.
    const b = Bootstrap.toJSON(waypointBootstrap({ name: 'waypoint', namespace: 'demo', xdsAddress: opts.controlAddress })) as {
      staticResources: {
        listeners: {
          address: { socketAddress: { address: string; portValue: number } };
          filterChains: { filters: { typedConfig: { routeConfig: { virtualHosts: { routes: { match: unknown; route: unknown }[] }[] } } }[] }[];
        }[];
      };
    };
    const port = Number(envoyTpl.metadata.annotations['prometheus.io/port']);
    const stats = b.staticResources.listeners.filter((l) => l.address.socketAddress.portValue === port);
    expect(stats).toHaveLength(1);
    expect(stats[0]?.address.socketAddress.address).toBe('0.0.0.0');
    const routes = stats[0]?.filterChains[0]?.filters[0]?.typedConfig.routeConfig.virtualHosts.flatMap((v) => v.routes);
    expect(routes).toEqual([{ match: { prefix: envoyTpl.metadata.annotations['prometheus.io/path'] }, route: { cluster: 'envoy-admin' } }]);
    expect(b.staticResources.listeners.some((l) => l.address.socketAddress.portValue === 15020)).toBe(false);
  });

  it('status: Accepted, Programmed once the Service has an address and the Deployment an available replica; transition times kept while a condition holds', () => {
    const wp = { name: 'waypoint', namespace: 'demo' };
    const noAddress = gatewayStatus(3, wp, 'T0');
    expect(noAddress.conditions[1]).toMatchObject({ type: 'Programmed', status: 'False', reason: 'AddressNotAssigned' });
    const pending = gatewayStatus(3, { ...wp, clusterIP: '10.96.0.20', availableReplicas: 0, desiredReplicas: 2 }, 'T1', noAddress.conditions);
    expect(pending.addresses).toEqual([{ type: 'IPAddress', value: '10.96.0.20' }]);
    expect(pending.conditions[1]).toMatchObject({
      type: 'Programmed',
      status: 'False',
      reason: 'Pending',
      lastTransitionTime: 'T0',
      message:
        'the waypoint Deployment demo/waypoint has 0 of 2 replicas available: its pods are not ready yet (kubectl -n demo get pods -l gateway.networking.k8s.io/gateway-name=waypoint; kubectl -n demo describe deployment waypoint)',
    });
    const first = gatewayStatus(3, { ...wp, clusterIP: '10.96.0.20', availableReplicas: 1, desiredReplicas: 2 }, 'T2', pending.conditions);
    expect(first.conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration, c.lastTransitionTime])).toEqual([
      ['Accepted', 'True', 'Accepted', 3, 'T0'],
      ['Programmed', 'True', 'Programmed', 3, 'T2'],
    ]);
    const later = gatewayStatus(3, { ...wp, clusterIP: '10.96.0.20', availableReplicas: 2, desiredReplicas: 2 }, 'T3', first.conditions);
    expect(later.conditions.map((c) => c.lastTransitionTime)).toEqual(['T0', 'T2']);
    const failing = gatewayStatus(4, { ...wp, problem: 'deployments.apps "waypoint" is forbidden' }, 'T4', later.conditions);
    expect(failing.conditions[1]).toMatchObject({
      type: 'Programmed',
      status: 'False',
      reason: 'Invalid',
      message: 'deployments.apps "waypoint" is forbidden',
      lastTransitionTime: 'T4',
    });
    expect(failing.addresses).toBeUndefined();
  });
});
