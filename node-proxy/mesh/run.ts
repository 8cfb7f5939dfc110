// Builds the node proxy in control-plane mode: the workload state over delta ADS, the capture
// source over it, workload certificates from the control plane's CA, telemetry on 15020, and the
// mesh data path plugged into the capture daemon.
import { controlPlaneClient } from '../../common/control-client/bootstrap';
import { tokenFileCredential, type CredentialSource } from '../../common/control-client/credential';
import { CertificateManager } from '../../common/identity/manager';
import { registerCertificateMetrics } from '../../common/identity/metrics';
import { assertTrustDomain } from '../../common/identity/spiffe';
import type { Logger } from '../../common/log';
import type { NodeLayout } from '../capture/pins';
import { BpfDataplane } from '../capture/bpf-dataplane';
import { ConnectionTable } from '../connections/table';
import { startIdleGc } from './idle-gc';
import { holdMallocThresholdsAt, mallocThresholdFromEnv } from './malloc-thresholds';
import { NodeProxy } from '../daemon';
import { findCgroup2, readMounts } from '../doctor/mounts';
import { configureNetnsWorkers } from '../../native/netns';
import { openSameNodePath, sameNodeModeFromEnv } from '../../native/sockmap';
import { nativeSocketsWith } from '../proxy/native-sockets';
import { WorkloadState } from '../state/workload-state';
import { NodeProxyTelemetry } from '../telemetry/metrics';
import { startMetricsServer, type MetricsServer } from '../telemetry/server';
import { ControlWorkloadSource } from './control-source';
import { Mesh } from './mesh';
import { workloadXdsClient } from './xds';
import { netnsConnectTimeoutFromEnv, plaintextInboundLimits } from '../proxy/inbound-limits';
import { connectTimeoutFromEnv, pingTimeoutFromEnv } from '../../common/hbone/client';
import { handshakeTimeoutFromEnv, serverKeepaliveFromEnv } from '../../common/hbone/server';
import { startKubernetesPods, type KubernetesModeOptions } from '../kubernetes/mode';

export interface ControlModeOptions {
  readonly node: string;
  readonly layout: NodeLayout;
  readonly control: string;
  readonly tokenFile: string;
  /** Where the bearer token comes from (default: `tokenFile`, read at every use). */
  readonly credential?: CredentialSource;
  readonly trustBundleFile: string;
  readonly trustDomain: string;
  readonly log: Logger;
  readonly adminPort?: number;
  readonly readyPort?: number;
  readonly metricsPort?: number;
  /** Requested workload certificate lifetime in seconds (0: the CA's default, 24 h). */
  readonly certTtlSeconds?: number;
  /** On a Kubernetes node: pods found locally (cgroup, netns) and the CNI plugin's socket. */
  readonly kubernetes?: KubernetesModeOptions;
  /** The cgroup v2 mount to use instead of the one in /proc/mounts (the host's, mounted into a container). */
  readonly cgroupMount?: string;
}

export interface ControlModeProxy {
  readonly proxy: NodeProxy;
  readonly metrics: MetricsServer;
  readonly source: ControlWorkloadSource;
  stop(): Promise<void>;
}

/** Ready-made sockets a busy workload netns keeps (per address family; dropped after 5 s idle). */
export const NETNS_SOCKET_POOL = 32;

export async function startControlMode(o: ControlModeOptions): Promise<ControlModeProxy> {
  assertTrustDomain(o.trustDomain);
  const hbonePingTimeoutMs = pingTimeoutFromEnv(); // a bad value fails here, before anything is opened
  const hboneServerKeepaliveIntervalMs = serverKeepaliveFromEnv();
  const hboneConnectTimeoutMs = connectTimeoutFromEnv();
  const hboneHandshakeTimeoutMs = handshakeTimeoutFromEnv();
  const mallocThreshold = mallocThresholdFromEnv();
  // before the engine threads allocate (malloc-thresholds.ts)
  holdMallocThresholdsAt(mallocThreshold, o.log);
  const sockets = nativeSocketsWith({ connectTimeoutMs: netnsConnectTimeoutFromEnv() });
  const sameNodeMode = sameNodeModeFromEnv();
  const cp = controlPlaneClient({ control: o.control, trustBundleFile: o.trustBundleFile, credential: o.credential ?? tokenFileCredential(o.tokenFile) });
  const ca = cp.ca;
  const cgroupMount = o.cgroupMount ?? findCgroup2(readMounts());
  if (!cgroupMount) {
    cp.close();
    throw new Error('no cgroup v2 mount in /proc/mounts; capture needs cgroup v2 (mount it, e.g. at /sys/fs/cgroup/unified on hybrid hosts)');
  }

  // What connection handling needs exists before the mesh and the proxy are built.
  let dataplane: BpfDataplane;
  try {
    dataplane = new BpfDataplane(o.layout, o.log);
  } catch (err) {
    cp.close();
    throw err;
  }
  // Same-node bytes: app socket to app socket (sockmap), or the proxy's kernel splice, or userspace.
  const sameNode = openSameNodePath(sameNodeMode, o.layout.pinRoot, o.log);
  // Ready-made sockets per workload netns: the upstream connect of every new inbound connection
  // takes one; with the addon's default (8) a burst of new connections empties the pool and each
  // then waits for that netns's worker thread (a thread hop per connection, slow on a busy node).
  configureNetnsWorkers({ poolSize: NETNS_SOCKET_POOL });
  const table = new ConnectionTable();
  const state = new WorkloadState(o.node);
  const xds = workloadXdsClient(cp, o.node, o.log);
  const certs = new CertificateManager({ source: ca, trustDomain: o.trustDomain, ttlSeconds: o.certTtlSeconds ?? 0 });
  const telemetry = new NodeProxyTelemetry({ accessLog: o.log.child({ component: 'access' }) });
  registerCertificateMetrics(certs, telemetry.registry);
  const kube = o.kubernetes ? startKubernetesPods(o.kubernetes, { state, cgroupMount, layout: o.layout, log: o.log }) : undefined;
  const source = new ControlWorkloadSource(state, cgroupMount, o.control, o.log, kube?.pods);
  const mesh = new Mesh({
    node: o.node,
    trustDomain: o.trustDomain,
    state,
    source,
    certs,
    telemetry,
    xds,
    log: o.log,
    sockets,
    originals: dataplane.originals,
    table,
    // NODEMESH_SAME_NODE_SPLICE=kernel|userspace (to compare): docs/node-proxy.md, "Fast paths"
    kernelSplice: sameNode.kernelSplice,
    sameNodeFastPath: sameNode.fastPath,
    inboundLimits: plaintextInboundLimits(),
    hbonePingTimeoutMs,
    hboneServerKeepaliveIntervalMs,
    hboneConnectTimeoutMs,
    hboneHandshakeTimeoutMs,
  });
  const proxy = new NodeProxy({ node: o.node, layout: o.layout, source, log: o.log, adminPort: o.adminPort, readyPort: o.readyPort, mesh, dataplane, table });
  const metrics = await startMetricsServer(telemetry.registry, { port: o.metricsPort, recent: telemetry.recent });
  // unused heap back to the system once a burst is over (idle-gc.ts; docs/node-proxy.md, "Memory")
  // activity: app connections opened or closed, HBONE connections coming or going (the pool's close
  // 60 s after a burst frees the engine's buffers: the C heap is trimmed after that, too)
  const stopIdleGc = startIdleGc(() => `${table.openedTotal}/${table.closedTotal}/${mesh.tunnelConnections()}`);
  try {
    kube?.pods.bind({ reconcileSoon: () => proxy.reconcileSoon(), enrolment: (key) => proxy.enrolment(key), notServing: (key) => mesh.workloadNotReady(key) });
    await proxy.start();
    await kube?.listen();
  } catch (err) {
    stopIdleGc();
    await kube?.close();
    await metrics.close();
    await proxy.stop().catch(() => undefined);
    sameNode.fastPath?.close();
    ca.close();
    throw err;
  }
  return {
    proxy,
    metrics,
    source,
    stop: async () => {
      stopIdleGc();
      await kube?.close();
      await proxy.stop();
      await metrics.close();
      sameNode.fastPath?.close();
      ca.close();
    },
  };
}
