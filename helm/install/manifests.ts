// The chart's objects built in TypeScript, for `nodemesh install --dry-run` (people without Helm).
// Each function mirrors one file of helm/nodemesh/templates/; helm-template.unit.test.ts renders
// the chart with the real Helm for several value sets and requires the very same objects, so the
// two cannot drift apart unnoticed. Comments on privileges live in the templates (node.yaml).
import { NODE_PROXY_ENV, NODE_PROXY_NODE_OPTIONS } from '../../node-proxy/process-flags';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { IGatewayClass } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass' with { 'resolution-mode': 'import' };
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet' with { 'resolution-mode': 'import' };
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment' with { 'resolution-mode': 'import' };
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget' with { 'resolution-mode': 'import' };
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole' with { 'resolution-mode': 'import' };
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding' with { 'resolution-mode': 'import' };
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role' with { 'resolution-mode': 'import' };
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding' with { 'resolution-mode': 'import' };
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec' with { 'resolution-mode': 'import' };
import type { IService } from 'kubernetes-models/v1/Service' with { 'resolution-mode': 'import' };
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount' with { 'resolution-mode': 'import' };
import { meshCrds } from './crds';
import { chartDir, type ChartValues } from './values';

export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: unknown };

export interface Release {
  /** Helm's release name (`helm install NAME`). */
  readonly name: string;
  /** The namespace everything namespaced goes to (`-n`). */
  readonly namespace: string;
}

export function chartAppVersion(): string {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion?: unknown };
  if (typeof chart.appVersion !== 'string') throw new Error(`helm/nodemesh/Chart.yaml has no appVersion`);
  return chart.appVersion;
}

interface Ctx {
  readonly v: ChartValues;
  readonly release: Release;
  readonly appVersion: string;
}

function labels(c: Ctx, name: string, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/part-of': 'nodemesh',
    'app.kubernetes.io/instance': c.release.name,
    'app.kubernetes.io/version': c.appVersion,
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/component': component,
  };
}

function meta(c: Ctx, name: string, component: string, namespaced = true): Manifest['metadata'] {
  return { name, ...(namespaced ? { namespace: c.release.namespace } : {}), labels: labels(c, name, component) };
}

function selector(c: Ctx, name: string): Record<string, string> {
  return { 'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': c.release.name };
}

const image = (c: Ctx) => `${c.v.image.repository}:${c.v.image.tag || c.appVersion}`;

function scrape(c: Ctx, port: number): { annotations?: Record<string, string> } {
  return c.v.prometheus.scrape ? { annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' } } : {};
}

/** `{{- with X }} key: X {{- end }}`: present only when non-empty. */
function nonEmpty<T extends object>(value: T): T | undefined {
  return (Array.isArray(value) ? value.length : Object.keys(value).length) > 0 ? value : undefined;
}

function podScheduling(c: Ctx, nodeSelector: Record<string, string>, tolerations: ChartValues['control']['tolerations']): Pick<IPodSpec, 'imagePullSecrets' | 'nodeSelector' | 'tolerations'> {
  const out: Pick<IPodSpec, 'imagePullSecrets' | 'nodeSelector' | 'tolerations'> = {};
  const secrets = nonEmpty(c.v.imagePullSecrets);
  if (secrets) out.imagePullSecrets = secrets;
  const selector = nonEmpty(nodeSelector);
  if (selector) out.nodeSelector = selector;
  const tol = nonEmpty(tolerations);
  if (tol) out.tolerations = tol;
  return out;
}

const readyProbes = {
  readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 }, periodSeconds: 5, failureThreshold: 3 },
  livenessProbe: { tcpSocket: { port: 15021 }, initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 6 },
};

const tcp = (name: string, containerPort: number) => ({ name, containerPort, protocol: 'TCP' as const });

function control(c: Ctx): Manifest[] {
  const m = () => meta(c, 'nodemesh-control', 'control-plane');
  const plain = c.v.control.plaintextXds;
  const out: Manifest[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: m() } satisfies IServiceAccount,
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: m(),
      spec: {
        replicas: c.v.control.replicas,
        selector: { matchLabels: selector(c, 'nodemesh-control') },
        template: {
          metadata: { labels: labels(c, 'nodemesh-control', 'control-plane'), ...scrape(c, 15020) },
          spec: {
            serviceAccountName: 'nodemesh-control',
            ...podScheduling(c, c.v.control.nodeSelector, c.v.control.tolerations),
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'control',
                image: image(c),
                imagePullPolicy: c.v.image.pullPolicy,
                args: [
                  'control',
                  '--config-source=kubernetes',
                  '--listen=:15014',
                  ...(plain ? ['--plaintext-xds'] : []),
                  '--ready-port=15021',
                  '--metrics-port=15020',
                  `--ca-secret=${c.v.control.caSecret}`,
                  `--trust-domain=${c.v.trustDomain}`,
                  '--token-audience=nodemesh-ca',
                  `--waypoint-image=${image(c)}`,
                  `--log-level=${c.v.logLevel}`,
                ],
                env: [
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  { name: 'NODEMESH_DATA_DIR', value: '/var/lib/nodemesh' },
                ],
                ports: [tcp('grpc-xds', 15012), tcp('http-api', 15014), tcp('http-metrics', 15020), ...(plain ? [tcp('grpc-xds-plain', 15010)] : []), tcp('http-ready', 15021)],
                ...readyProbes,
                resources: c.v.control.resources,
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
                volumeMounts: [{ name: 'data', mountPath: '/var/lib/nodemesh' }],
              },
            ],
            volumes: [{ name: 'data', emptyDir: {} }],
          },
        },
      },
    } satisfies IDeployment,
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: m(),
      spec: {
        type: 'ClusterIP',
        selector: selector(c, 'nodemesh-control'),
        ports: [
          { name: 'grpc-xds', port: 15012, targetPort: 15012, protocol: 'TCP' as const },
          { name: 'http-api', port: 15014, targetPort: 15014, protocol: 'TCP' as const },
          { name: 'http-metrics', port: 15020, targetPort: 15020, protocol: 'TCP' as const },
          ...(plain ? [{ name: 'grpc-xds-plain', port: 15010, targetPort: 15010, protocol: 'TCP' as const }] : []),
        ],
      },
    } satisfies IService,
  ];
  if (c.v.control.podDisruptionBudget.enabled) {
    out.push({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: m(),
      spec: { maxUnavailable: c.v.control.podDisruptionBudget.maxUnavailable, selector: { matchLabels: selector(c, 'nodemesh-control') } },
    } satisfies IPodDisruptionBudget);
  }
  return out;
}

function rbac(c: Ctx): Manifest[] {
  const m = (namespaced: boolean) => meta(c, 'nodemesh-control', 'control-plane', namespaced);
  const subjects = [{ kind: 'ServiceAccount', name: 'nodemesh-control', namespace: c.release.namespace }];
  const rule = (apiGroups: string[], resources: string[], verbs: string[], resourceNames?: string[]) => ({ apiGroups, resources, ...(resourceNames ? { resourceNames } : {}), verbs });
  const read = ['get', 'list', 'watch'];
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: m(false),
      rules: [
        rule([''], ['namespaces', 'pods', 'services'], read),
        rule(['discovery.k8s.io'], ['endpointslices'], read),
        rule(['security.nodemesh.io'], ['authorizationpolicies', 'peerauthentications'], read),
        rule(['nodemesh.io'], ['workloads'], read),
        rule(['security.istio.io'], ['authorizationpolicies', 'peerauthentications'], read),
        rule(['gateway.networking.k8s.io'], ['gateways', 'httproutes'], read),
        rule(['gateway.networking.k8s.io'], ['gateways/status', 'gateways/finalizers'], ['update']),
        rule(['apps'], ['deployments'], [...read, 'create', 'update']),
        rule([''], ['services', 'serviceaccounts'], ['get', 'create', 'update']),
        rule([''], ['configmaps'], ['get', 'create', 'update']),
        rule(['authentication.k8s.io'], ['tokenreviews'], ['create']),
      ],
    } satisfies IClusterRole,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: m(false),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nodemesh-control' },
      subjects,
    } satisfies IClusterRoleBinding,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: m(true),
      rules: [
        rule([''], ['secrets'], ['create']),
        rule([''], ['secrets'], ['get'], [c.v.control.caSecret]),
      ],
    } satisfies IRole,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: m(true),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'nodemesh-control' },
      subjects,
    } satisfies IRoleBinding,
  ];
}

const restrictedRoot = { runAsUser: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true };

/** A ServiceAccount without an API token and a DaemonSet running `pod` on every node (node.yaml, cni.yaml). */
function perNode(c: Ctx, name: string, component: string, podAnnotations: { annotations?: Record<string, string> }, pod: Pick<IPodSpec, 'hostPID' | 'terminationGracePeriodSeconds' | 'containers' | 'volumes'>): Manifest[] {
  const m = () => meta(c, name, component);
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: m(), automountServiceAccountToken: false } satisfies IServiceAccount,
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: m(),
      spec: {
        selector: { matchLabels: selector(c, name) },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels: labels(c, name, component), ...podAnnotations },
          spec: {
            serviceAccountName: name,
            automountServiceAccountToken: false,
            priorityClassName: 'system-node-critical',
            ...podScheduling(c, c.v.nodeProxy.nodeSelector, c.v.nodeProxy.tolerations),
            ...pod,
          },
        },
      },
    } satisfies IDaemonSet,
  ];
}

function nodeProxy(c: Ctx): Manifest[] {
  return perNode(c, 'nodemesh-node', 'node-proxy', scrape(c, 15020), {
    hostPID: true,
    terminationGracePeriodSeconds: 30,
    containers: [
      {
        name: 'node-proxy',
        image: image(c),
        imagePullPolicy: c.v.image.pullPolicy,
        args: [
          'node-proxy',
          '--node=$(NODE_NAME)',
          `--control=nodemesh-control.${c.release.namespace}.svc:15012`,
          '--token-file=/var/run/secrets/nodemesh/token/token',
          '--trust-bundle=/var/run/secrets/nodemesh/ca/root-cert.pem',
          `--trust-domain=${c.v.trustDomain}`,
          '--pod-discovery=kubernetes',
          '--cgroup-root=/host/cgroup',
          '--cni-socket=/run/nodemesh/cni.sock',
          `--log-level=${c.v.logLevel}`,
        ],
        env: [
          { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          // through the image's entrypoint (node dist/cli/main.js): as NODE_OPTIONS
          { name: 'NODE_OPTIONS', value: NODE_PROXY_NODE_OPTIONS },
          ...Object.entries(NODE_PROXY_ENV).map(([name, value]) => ({ name, value })),
        ],
        ports: [tcp('http-metrics', 15020), tcp('http-ready', 15021)],
        ...readyProbes,
        resources: c.v.nodeProxy.resources,
        securityContext: {
          ...restrictedRoot,
          capabilities: { drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE', 'SYS_RESOURCE'] },
          seccompProfile: { type: 'RuntimeDefault' },
        },
        volumeMounts: [
          { name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' },
          { name: 'cgroup', mountPath: '/host/cgroup', readOnly: true },
          { name: 'run', mountPath: '/run/nodemesh' },
          { name: 'nodemesh-token', mountPath: '/var/run/secrets/nodemesh/token', readOnly: true },
          { name: 'ca-root', mountPath: '/var/run/secrets/nodemesh/ca', readOnly: true },
        ],
      },
    ],
    volumes: [
      { name: 'bpffs', hostPath: { path: c.v.nodeProxy.bpffsPath, type: 'Directory' } },
      { name: 'cgroup', hostPath: { path: c.v.nodeProxy.cgroupPath, type: 'Directory' } },
      { name: 'run', hostPath: { path: c.v.nodeProxy.runDir, type: 'DirectoryOrCreate' } },
      { name: 'nodemesh-token', projected: { sources: [{ serviceAccountToken: { audience: 'nodemesh-ca', expirationSeconds: 43200, path: 'token' } }] } },
      { name: 'ca-root', configMap: { name: 'nodemesh-ca-root' } },
    ],
  });
}

function cni(c: Ctx): Manifest[] {
  if (!c.v.cni.enabled) return [];
  return perNode(c, 'nodemesh-cni', 'cni', {}, {
    terminationGracePeriodSeconds: 10,
    containers: [
      {
        name: 'install-cni',
        image: image(c),
        imagePullPolicy: c.v.image.pullPolicy,
        args: [
          'cni-install',
          '--bin-dir=/host/cni/bin',
          '--conf-dir=/host/cni/net.d',
          `--host-socket=${c.v.nodeProxy.runDir}/cni.sock`,
          ...(c.v.cni.failOpen ? ['--fail-open'] : []),
          `--log-level=${c.v.logLevel}`,
        ],
        resources: c.v.cni.resources,
        securityContext: { ...restrictedRoot, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
        volumeMounts: [
          { name: 'cni-bin', mountPath: '/host/cni/bin' },
          { name: 'cni-conf', mountPath: '/host/cni/net.d' },
        ],
      },
    ],
    volumes: [
      { name: 'cni-bin', hostPath: { path: c.v.cni.binDir, type: 'DirectoryOrCreate' } },
      { name: 'cni-conf', hostPath: { path: c.v.cni.confDir, type: 'DirectoryOrCreate' } },
    ],
  });
}

function gatewayClass(c: Ctx): Manifest[] {
  if (!c.v.waypoint.gatewayClass) return [];
  return [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: meta(c, 'nodemesh-waypoint', 'waypoint', false),
      spec: { controllerName: 'nodemesh.io/waypoint-controller', description: 'nodemesh waypoint proxies (L7 policy and routing for a namespace or Service)' },
    } satisfies IGatewayClass,
  ];
}

/** The chart's templates/ objects for these values (what `helm template` prints, without CRDs). */
export function renderTemplates(values: ChartValues, release: Release, appVersion = chartAppVersion()): Manifest[] {
  const c: Ctx = { v: values, release, appVersion };
  return [...cni(c), ...control(c), ...gatewayClass(c), ...nodeProxy(c), ...rbac(c)];
}

/** CRDs first (as Helm installs crds/ before templates), then every templated object. */
export function renderInstall(values: ChartValues, release: Release, opts: { namespaceObject?: boolean } = {}): Manifest[] {
  const crds = meshCrds().map(({ crd }) => crd as Manifest);
  const ns: Manifest[] = opts.namespaceObject
    ? [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: release.namespace, labels: { 'app.kubernetes.io/part-of': 'nodemesh' } } }]
    : [];
  return [...crds, ...ns, ...renderTemplates(values, release)];
}
