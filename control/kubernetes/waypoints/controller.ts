// The waypoint controller (a control-plane component with --config-source kubernetes): for every
// Gateway of a waypoint class in the mirrored config, it makes sure the API server holds the
// objects render.ts describes (created when missing, replaced when what it manages differs), the
// mesh root in the ConfigMap nodemesh-ca-root of the Gateway's namespace (and of the control
// plane's own, for node proxies), and writes the Gateway's status (Accepted, Programmed, the
// Service's address) through the status subresource. Deleting a Gateway needs nothing from it:
// everything it made is owned by the Gateway and the API server's garbage collector removes it.
//
// It reconciles after every change of the mirror, after every change of a waypoint Deployment it
// manages (an informer on them: their available replicas decide `Programmed`) — at most one pass at
// a time; a change during a pass triggers one more — and every `resyncMs` (default 60 s), so
// objects changed or deleted by hand are put back. Failures are logged and retried at the next pass.
import type { Logger } from '../../../common/log';
import type { ControlPlane, ControlPlaneComponent } from '../../control-plane';
import { isWaypointClass } from '../../resources/gateway';
import { StoreFollower } from '../../store/follow';
import { kubeModule, type K8s } from '../client';
import type { KubernetesStore } from '../store';
import {
  CA_ROOT_CONFIGMAP,
  CA_ROOT_KEY,
  gatewayStatus,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  renderWaypoint,
  type RenderedObject,
  type WaypointRenderOptions,
  type WaypointState,
} from './render';

export interface WaypointControllerOptions extends WaypointRenderOptions {
  readonly store: KubernetesStore;
  /** The mesh root(s), PEM, published in nodemesh-ca-root. */
  readonly rootPem: () => Promise<string>;
  /** The control plane's namespace: gets nodemesh-ca-root too (for node proxies). */
  readonly ownNamespace?: string;
  readonly resyncMs?: number;
  readonly logger?: Logger;
}

interface ApiErrorLike {
  code?: number;
}
const notFound = (err: unknown) => (err as ApiErrorLike)?.code === 404;

interface LiveGateway {
  metadata?: { uid?: string; generation?: number; resourceVersion?: string };
  status?: { conditions?: { type?: string; status?: string; lastTransitionTime?: string }[] };
}

export class WaypointController implements ControlPlaneComponent {
  readonly name = 'waypoint-controller';
  private follower?: StoreFollower;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private objects?: K8s.KubernetesObjectApi;
  private custom?: K8s.CustomObjectsApi;
  private deployments?: K8s.Informer<K8s.V1Deployment>;
  private deploymentsRetry?: NodeJS.Timeout;
  /** Passes completed (tests wait on it). */
  passes = 0;
  lastError?: string;

  constructor(private readonly o: WaypointControllerOptions) {}

  async start(_cp?: ControlPlane): Promise<void> {
    const k8s = await kubeModule();
    this.objects = k8s.KubernetesObjectApi.makeApiClient(this.o.store.kubeConfig);
    this.custom = this.o.store.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.stopped = false;
    this.follower = new StoreFollower(
      () => {
        this.kick();
        return this.o.store.revision;
      },
      (err) => this.o.logger?.error({ err }, 'waypoint controller: scheduling a pass failed'),
    );
    this.follower.start(this.o.store);
    this.timer = setInterval(() => this.kick(), this.o.resyncMs ?? 60_000);
    // The waypoint Deployments' status (available replicas) decides Programmed, and a Deployment
    // changed or deleted by hand is put back: watch the ones this controller manages.
    const apps = this.o.store.kubeConfig.makeApiClient(k8s.AppsV1Api);
    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    const informer = k8s.makeInformer(
      this.o.store.kubeConfig,
      '/apis/apps/v1/deployments',
      () => apps.listDeploymentForAllNamespaces({ labelSelector: selector }),
      selector,
    );
    for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, () => this.kick());
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.o.logger?.warn({ err: (err as Error)?.message ?? String(err) }, 'waypoint controller: watching waypoint Deployments failed; retrying in 5 s');
      clearTimeout(this.deploymentsRetry);
      this.deploymentsRetry = setTimeout(() => {
        if (!this.stopped) void informer.start().catch(() => undefined);
      }, 5_000);
    });
    this.deployments = informer;
    await informer
      .start()
      .catch((err: unknown) => this.o.logger?.warn({ err: (err as Error)?.message }, 'waypoint controller: cannot list waypoint Deployments yet'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.follower?.stop();
    clearInterval(this.timer);
    clearTimeout(this.deploymentsRetry);
    await this.deployments?.stop();
    await this.running;
  }

  /** Resolves after a pass that started after this call has finished. */
  async settled(): Promise<void> {
    const target = this.passes + (this.running ? 2 : 1);
    this.kick();
    while (this.passes < target && !this.stopped) await new Promise((r) => setTimeout(r, 20));
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => {
        this.lastError = (err as Error).message;
        this.o.logger?.warn({ err: this.lastError }, 'waypoint controller pass failed; retrying at the next change or resync');
      })
      .finally(() => {
        this.passes++;
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async pass(): Promise<void> {
    const snapshot = this.o.store.snapshot();
    const gateways = snapshot.list('Gateway').filter((g) => isWaypointClass(g.spec.gatewayClassName));
    const root = gateways.length || this.o.ownNamespace ? await this.o.rootPem() : '';
    const namespaces = new Set(gateways.map((g) => g.metadata.namespace ?? 'default'));
    if (this.o.ownNamespace && snapshot.get('Namespace', this.o.ownNamespace)) namespaces.add(this.o.ownNamespace);
    for (const ns of namespaces) await this.ensureRoot(ns, root);
    const failures: string[] = [];
    for (const g of gateways) {
      const ns = g.metadata.namespace ?? 'default';
      try {
        // The mirror may be behind the API server (a waypoint Deployment's DELETED, seen by our
        // own informer, can arrive before the Gateway's deletion reaches the mirror): act only on a
        // Gateway the API server still has, the same one (uid).
        const live = await this.readGateway(ns, g.metadata.name);
        if (!live || (g.metadata.uid && live.metadata?.uid !== g.metadata.uid)) continue;
        const rendered = renderWaypoint(
          { name: g.metadata.name, namespace: ns, uid: g.metadata.uid ?? '', apiVersion: g.apiVersion, infrastructure: g.spec.infrastructure },
          this.o,
        );
        await this.ensure(rendered.serviceAccount);
        const deployment = (await this.ensure(rendered.deployment)) as { spec?: { replicas?: number }; status?: { availableReplicas?: number } };
        const svc = (await this.ensure(rendered.service)) as { spec?: { clusterIP?: string } };
        await this.writeStatus({
          name: g.metadata.name,
          namespace: ns,
          clusterIP: svc.spec?.clusterIP,
          availableReplicas: deployment.status?.availableReplicas,
          desiredReplicas: deployment.spec?.replicas,
        });
      } catch (err) {
        const why = (err as Error).message;
        failures.push(`${ns}/${g.metadata.name}: ${why}`);
        await this.writeStatus({ name: g.metadata.name, namespace: ns, problem: why }).catch(() => undefined);
      }
    }
    if (failures.length) throw new Error(`waypoints not reconciled: ${failures.join('; ')}`);
    this.lastError = undefined;
  }

  private async ensureRoot(namespace: string, root: string): Promise<void> {
    await this.ensure({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CA_ROOT_CONFIGMAP, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY }, ownerReferences: [] },
      data: { [CA_ROOT_KEY]: root },
    });
  }

  /** Creates `want`, or replaces the stored object when a field we manage differs. */
  private async ensure(want: RenderedObject): Promise<unknown> {
    const api = this.objects as K8s.KubernetesObjectApi;
    let have: K8s.KubernetesObject & Record<string, unknown>;
    try {
      have = (await api.read({
        apiVersion: want.apiVersion,
        kind: want.kind,
        metadata: { name: want.metadata.name, namespace: want.metadata.namespace },
      })) as typeof have;
    } catch (err) {
      if (!notFound(err)) throw err;
      this.o.logger?.info({ kind: want.kind, namespace: want.metadata.namespace, name: want.metadata.name }, 'waypoint controller: creating');
      return api.create(strip(want) as K8s.KubernetesObject);
    }
    const next: Record<string, unknown> = { ...have, ...strip(want) };
    next.metadata = {
      ...have.metadata,
      labels: want.metadata.labels,
      ...(want.metadata.annotations ? { annotations: { ...(have.metadata?.annotations ?? {}), ...want.metadata.annotations } } : {}),
      ...(want.metadata.ownerReferences.length ? { ownerReferences: want.metadata.ownerReferences } : {}),
    };
    if (want.kind === 'Service') {
      const old = (have as { spec?: { clusterIP?: string; clusterIPs?: string[] } }).spec ?? {};
      next.spec = { ...(want.spec as object), ...(old.clusterIP ? { clusterIP: old.clusterIP, clusterIPs: old.clusterIPs } : {}) };
    }
    if (managedEqual(have, next)) return have;
    this.o.logger?.info({ kind: want.kind, namespace: want.metadata.namespace, name: want.metadata.name }, 'waypoint controller: updating');
    return api.replace(next as K8s.KubernetesObject);
  }

  private async readGateway(namespace: string, name: string): Promise<LiveGateway | undefined> {
    const custom = this.custom as K8s.CustomObjectsApi;
    try {
      return (await custom.getNamespacedCustomObject({
        group: 'gateway.networking.k8s.io',
        version: 'v1',
        namespace,
        plural: 'gateways',
        name,
      })) as LiveGateway;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw err;
    }
  }

  private async writeStatus(state: WaypointState): Promise<void> {
    const { name, namespace } = state;
    const custom = this.custom as K8s.CustomObjectsApi;
    const gw = await this.readGateway(namespace, name);
    if (!gw) return;
    const status = gatewayStatus(gw.metadata?.generation ?? 1, state, new Date().toISOString().replace(/\.\d+Z$/, 'Z'), gw.status?.conditions);
    if (JSON.stringify(gw.status ?? {}) === JSON.stringify(status)) return;
    await custom.replaceNamespacedCustomObjectStatus({
      group: 'gateway.networking.k8s.io',
      version: 'v1',
      namespace,
      plural: 'gateways',
      name,
      body: { ...gw, status },
    });
  }
}

/** The object without empty ownerReferences (ConfigMaps are not owned). */
function strip(o: RenderedObject): Record<string, unknown> {
  if (o.metadata.ownerReferences.length) return o;
  const { ownerReferences: _none, ...metadata } = o.metadata;
  return { ...o, metadata };
}

/**
 * Whether the stored object already has everything the controller manages: every field of `next`
 * (labels, owners, spec, data) is in `have` with the same value. Fields the API server added
 * (defaults, status) do not count, so a pass over an unchanged object writes nothing.
 */
function managedEqual(have: Record<string, unknown>, next: Record<string, unknown>): boolean {
  const { status: _s, metadata, ...rest } = next;
  const m = (metadata ?? {}) as { labels?: unknown; annotations?: unknown; ownerReferences?: unknown };
  const hm = (have.metadata ?? {}) as Record<string, unknown>;
  return contains(hm, { labels: m.labels, annotations: m.annotations, ownerReferences: m.ownerReferences }) && contains(have, rest);
}

function contains(have: unknown, want: unknown): boolean {
  if (want === undefined) return true;
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  if (want && typeof want === 'object') {
    if (!have || typeof have !== 'object') return false;
    return Object.entries(want as Record<string, unknown>).every(([k, v]) => contains((have as Record<string, unknown>)[k], v));
  }
  return have === want;
}
