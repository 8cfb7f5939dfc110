// Wiring of the node proxy's Kubernetes mode: pod discovery under the kubepods roots, the CNI
// sandbox registry (kept next to the enrolment records) and the CNI plugin's socket.
import { join } from 'node:path';
import type { Logger } from '../../common/log';
import type { NodeLayout } from '../capture/pins';
import { DEFAULT_CNI_SOCKET } from '../cni/protocol';
import { startCniServer, type CniServer } from '../cni/server';
import type { WorkloadState } from '../state/workload-state';
import { PodDiscovery } from './pod-discovery';
import { PodRegistry } from './pod-registry';
import { KubernetesPods } from './pods';

export interface KubernetesModeOptions {
  /** The CNI plugin's socket (default /run/nodemesh/cni.sock). */
  readonly cniSocket?: string;
  /** kubelet's kubepods roots relative to the cgroup v2 mount (default kubepods.slice, kubepods). */
  readonly kubepodsRoots?: readonly string[];
  /** How long a CNI ADD may wait for the control plane and capture (default 25 s). */
  readonly addTimeoutMs?: number;
}

export interface KubernetesModeDeps {
  readonly state: WorkloadState;
  readonly cgroupMount: string;
  readonly layout: NodeLayout;
  readonly log: Logger;
}

export interface KubernetesMode {
  readonly pods: KubernetesPods;
  /** Opens the CNI socket (after the capture daemon started). */
  listen(): Promise<void>;
  close(): Promise<void>;
  server(): CniServer | undefined;
}

export function startKubernetesPods(o: KubernetesModeOptions, d: KubernetesModeDeps): KubernetesMode {
  const log = d.log.child({ component: 'kubernetes-pods' });
  const pods = new KubernetesPods({
    state: d.state,
    discovery: new PodDiscovery(d.cgroupMount, o.kubepodsRoots),
    registry: new PodRegistry(join(d.layout.stateDir, 'cni-sandboxes.json')),
    log,
    addTimeoutMs: o.addTimeoutMs,
  });
  let server: CniServer | undefined;
  const addTimeoutMs = o.addTimeoutMs ?? 25_000;
  return {
    pods,
    listen: async () => {
      server = await startCniServer({
        socketPath: o.cniSocket ?? DEFAULT_CNI_SOCKET,
        handler: (ev) => pods.handle(ev),
        log,
        handlerTimeoutMs: addTimeoutMs + 5000,
      });
      log.info({ socket: server.socketPath }, 'listening for the CNI plugin');
    },
    close: async () => {
      await server?.close();
      server = undefined;
    },
    server: () => server,
  };
}
