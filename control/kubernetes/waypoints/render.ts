// What the waypoint controller creates for a Gateway of a waypoint class, as a pure function: a
// ServiceAccount (the waypoint's identity, named as the Gateway), a Deployment running
// `nodemesh waypoint run` (or Envoy with the bootstrap from `nodemesh waypoint bootstrap`), and a
// Service in front of it. Every object is owned by the Gateway (ownerReferences, controller), so
// deleting the Gateway deletes them (Kubernetes' garbage collector), and carries the label
// `gateway.networking.k8s.io/gateway-name: <gateway>`, through which the translation finds the
// waypoint's address (docs/xds.md).
//
// The waypoint's credential for the CA is a projected ServiceAccount token (audience
// nodemesh-ca, rotated by kubelet, re-read by the waypoint on every request); the mesh root comes
// from the ConfigMap nodemesh-ca-root the controller publishes in the Gateway's namespace.

import { ENVOY_STATS_PATH, ENVOY_STATS_PORT, HBONE_PORT, METRICS_PORT, READY_PORT } from '../../../common/contracts/ports';
import { WAYPOINT_ENV, WAYPOINT_NODE_OPTIONS } from '../../../waypoint/process-flags';

export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'nodemesh-waypoint-controller';
export const CA_ROOT_CONFIGMAP = 'nodemesh-ca-root';
export const CA_ROOT_KEY = 'root-cert.pem';
const TOKEN_DIR = '/var/run/secrets/nodemesh/token';
const CA_DIR = '/var/run/secrets/nodemesh/ca';
/** Where the Envoy waypoint's certificate agent writes and Envoy reads (`waypoint bootstrap --certs`). */
export const CERTS_DIR = '/var/run/nodemesh/certs';

export type WaypointProxy = 'nodemesh' | 'envoy';

export interface WaypointRenderOptions {
  /** The nodemesh image (runs `nodemesh waypoint run` / `waypoint bootstrap`). */
  readonly image: string;
  /** The Envoy image for proxy=envoy. */
  readonly envoyImage: string;
  readonly proxy: WaypointProxy;
  /** The control plane's TLS xDS + CA address, e.g. nodemesh-control.nodemesh-system.svc:15012. */
  readonly controlAddress: string;
  readonly trustDomain: string;
  /** Audience of the projected token (default nodemesh-ca). */
  readonly tokenAudience?: string;
  readonly replicas?: number;
}

export interface GatewayRef {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly apiVersion: string;
  /** Gateway spec.infrastructure labels/annotations, copied to what is created (Gateway API). */
  readonly infrastructure?: { labels?: Record<string, string>; annotations?: Record<string, string> };
}

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean; blockOwnerDeletion: boolean }[];
  };
  [k: string]: unknown;
}

export interface RenderedWaypoint {
  readonly serviceAccount: RenderedObject;
  readonly deployment: RenderedObject;
  readonly service: RenderedObject;
}

export function renderWaypoint(gw: GatewayRef, o: WaypointRenderOptions): RenderedWaypoint {
  const labels = { ...(gw.infrastructure?.labels ?? {}), [GATEWAY_NAME_LABEL]: gw.name, [MANAGED_BY_LABEL]: MANAGED_BY };
  const meta = () => ({
    name: gw.name,
    namespace: gw.namespace,
    labels: { ...labels },
    ...(gw.infrastructure?.annotations ? { annotations: { ...gw.infrastructure.annotations } } : {}),
    ownerReferences: [{ apiVersion: gw.apiVersion, kind: 'Gateway', name: gw.name, uid: gw.uid, controller: true, blockOwnerDeletion: true }],
  });
  const selector = { [GATEWAY_NAME_LABEL]: gw.name };
  const volumes = [
    {
      name: 'nodemesh-token',
      projected: { sources: [{ serviceAccountToken: { audience: o.tokenAudience ?? 'nodemesh-ca', expirationSeconds: 43200, path: 'token' } }] },
    },
    { name: 'ca-root', configMap: { name: CA_ROOT_CONFIGMAP } },
  ];
  const mounts = [
    { name: 'nodemesh-token', mountPath: TOKEN_DIR, readOnly: true },
    { name: 'ca-root', mountPath: CA_DIR, readOnly: true },
  ];
  const podIP = { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } };
  const probe = { httpGet: { path: '/healthz/ready', port: 15021 }, periodSeconds: 5, failureThreshold: 3 };
  const security = { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };
  // Where Prometheus scrapes: the nodemesh waypoint serves /metrics on 15020; Envoy serves nothing
  // there — its stats are on 15090 /stats/prometheus, a bootstrap listener in front of its
  // loopback admin (control/envoy/bootstrap.ts), as on Istio's Envoy proxies.
  const metrics =
    o.proxy === 'envoy'
      ? { name: 'http-envoy-prom', port: ENVOY_STATS_PORT, path: ENVOY_STATS_PATH }
      : { name: 'metrics', port: METRICS_PORT, path: '/metrics' };
  const ports = [
    { name: 'hbone', containerPort: HBONE_PORT, protocol: 'TCP' },
    { name: metrics.name, containerPort: metrics.port, protocol: 'TCP' },
    { name: 'status', containerPort: READY_PORT, protocol: 'TCP' },
  ];
  const nodemeshContainer = {
    name: 'waypoint',
    image: o.image,
    args: [
      'waypoint',
      'run',
      `--name=${gw.name}`,
      `--namespace=${gw.namespace}`,
      `--control=${o.controlAddress}`,
      `--token-file=${TOKEN_DIR}/token`,
      `--trust-bundle=${CA_DIR}/${CA_ROOT_KEY}`,
      `--trust-domain=${o.trustDomain}`,
      `--service-account=${gw.name}`,
      '--ip=$(POD_IP)',
    ],
    // The waypoint's process flags (waypoint/process-flags.ts), through the image's entrypoint
    // (node dist/cli/main.js): as NODE_OPTIONS.
    env: [podIP, { name: 'NODE_OPTIONS', value: WAYPOINT_NODE_OPTIONS }, ...Object.entries(WAYPOINT_ENV).map(([name, value]) => ({ name, value }))],
    ports,
    readinessProbe: probe,
    volumeMounts: mounts,
    securityContext: security,
  };
  // Envoy cannot ask the CA itself: `waypoint cert-agent` gets the waypoint's certificate with the
  // projected token and keeps the files `waypoint bootstrap --certs` points Envoy at current —
  // once before Envoy starts (init container), then beside it, renewing at half-life.
  const certAgent = (name: string, once: boolean) => ({
    name,
    image: o.image,
    args: [
      'waypoint',
      'cert-agent',
      `--namespace=${gw.namespace}`,
      `--service-account=${gw.name}`,
      `--control=${o.controlAddress}`,
      `--token-file=${TOKEN_DIR}/token`,
      `--trust-bundle=${CA_DIR}/${CA_ROOT_KEY}`,
      `--trust-domain=${o.trustDomain}`,
      `--dir=${CERTS_DIR}`,
      ...(once ? ['--once'] : []),
    ],
    volumeMounts: [...mounts, { name: 'certs', mountPath: CERTS_DIR }],
    securityContext: security,
  });
  const envoyPod = {
    initContainers: [
      {
        name: 'bootstrap',
        image: o.image,
        command: ['/bin/sh', '-c', 'exec nodemesh "$@" > /etc/envoy/bootstrap.json', '--'],
        args: [
          'waypoint',
          'bootstrap',
          `--name=${gw.name}`,
          `--namespace=${gw.namespace}`,
          '--ip=$(POD_IP)',
          `--xds-address=${o.controlAddress}`,
          // The ADS credential is the certificate in CERTS_DIR (docs/security.md): no token, so
          // the bootstrap Envoy reads holds no secret.
          `--certs=${CERTS_DIR}`,
          '--output=json',
        ],
        env: [podIP],
        volumeMounts: [{ name: 'envoy-config', mountPath: '/etc/envoy' }],
        securityContext: security,
      },
      certAgent('cert-agent-init', true),
    ],
    containers: [
      {
        name: 'envoy',
        image: o.envoyImage,
        args: ['-c', '/etc/envoy/bootstrap.json'],
        env: [podIP],
        ports,
        // Ready when Envoy is: the bootstrap's listener on 15021 forwards /healthz/ready to the
        // admin's /ready (admin itself stays on 127.0.0.1; docs/kubernetes.md "Waypoints").
        readinessProbe: probe,
        // No token, no CA file: Envoy reads only its bootstrap and the agent's certificate files.
        volumeMounts: [
          { name: 'envoy-config', mountPath: '/etc/envoy', readOnly: true },
          { name: 'certs', mountPath: CERTS_DIR, readOnly: true },
        ],
        securityContext: security,
      },
      certAgent('cert-agent', false),
    ],
  };
  const podSpec =
    o.proxy === 'envoy'
      ? {
          ...envoyPod,
          volumes: [...volumes, { name: 'envoy-config', emptyDir: {} }, { name: 'certs', emptyDir: { medium: 'Memory' } }],
        }
      : { containers: [nodemeshContainer], volumes };
  return {
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(), automountServiceAccountToken: false },
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(),
      spec: {
        replicas: o.replicas ?? 1,
        selector: { matchLabels: selector },
        template: {
          metadata: {
            labels: { ...labels },
            annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(metrics.port), 'prometheus.io/path': metrics.path },
          },
          spec: {
            serviceAccountName: gw.name,
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 30,
            ...podSpec,
          },
        },
      },
    },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(),
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [
          { name: 'mesh', port: 15008, targetPort: 15008, protocol: 'TCP', appProtocol: 'all' },
          { name: 'status-port', port: 15021, targetPort: 15021, protocol: 'TCP' },
        ],
      },
    },
  };
}

/** What the controller found for a waypoint: the Service's address, the Deployment's replicas, or why it failed. */
export interface WaypointState {
  readonly name: string;
  readonly namespace: string;
  readonly clusterIP?: string;
  /** The Deployment's status.availableReplicas (pods ready for minReadySeconds). */
  readonly availableReplicas?: number;
  /** Its spec.replicas. */
  readonly desiredReplicas?: number;
  /** A failure creating or updating the waypoint's objects. */
  readonly problem?: string;
}

/**
 * The Gateway status the controller writes: Accepted, and Programmed — True only once the
 * waypoint can take traffic: its Service has an address and its Deployment at least one available
 * replica; otherwise False with a reason (Gateway API's Invalid, AddressNotAssigned, Pending) and
 * a message saying what is missing and where to look.
 */
export function gatewayStatus(
  generation: number,
  state: WaypointState,
  now: string,
  previous: { type?: string; status?: string; lastTransitionTime?: string }[] = [],
) {
  const since = (type: string, status: string) => previous.find((c) => c.type === type && c.status === status)?.lastTransitionTime ?? now;
  const { clusterIP, problem, name, namespace } = state;
  const available = state.availableReplicas ?? 0;
  const desired = state.desiredReplicas ?? 1;
  const pods = `kubectl -n ${namespace} get pods -l ${GATEWAY_NAME_LABEL}=${name}`;
  const programmed: { status: 'True' | 'False'; reason: string; message: string } =
    problem !== undefined
      ? { status: 'False', reason: 'Invalid', message: problem }
      : !clusterIP
        ? { status: 'False', reason: 'AddressNotAssigned', message: `the waypoint Service ${namespace}/${name} has no address yet` }
        : available < 1
          ? {
              status: 'False',
              reason: 'Pending',
              message: `the waypoint Deployment ${namespace}/${name} has ${available} of ${desired} replicas available: its pods are not ready yet (${pods}; kubectl -n ${namespace} describe deployment ${name})`,
            }
          : { status: 'True', reason: 'Programmed', message: `the waypoint is ready: ${available} of ${desired} replicas available behind ${clusterIP}` };
  return {
    ...(clusterIP ? { addresses: [{ type: 'IPAddress', value: clusterIP }] } : {}),
    conditions: [
      {
        type: 'Accepted',
        status: 'True',
        reason: 'Accepted',
        message: 'accepted by the nodemesh waypoint controller',
        observedGeneration: generation,
        lastTransitionTime: since('Accepted', 'True'),
      },
      { type: 'Programmed', ...programmed, observedGeneration: generation, lastTransitionTime: since('Programmed', programmed.status) },
    ],
  };
}
