// Builds the node proxy in control-plane mode: the workload state over delta ADS, the capture
// source over it, workload certificates from the control plane's CA, telemetry on 15020, and the
// mesh data path plugged into the capture daemon.
import { readFileSync } from 'node:fs';
import { CertificateManager } from '../../common/identity/manager';
import { registerCertificateMetrics } from '../../common/identity/metrics';
import { assertTrustDomain } from '../../common/identity/spiffe';
import type { Logger } from '../../common/log';
import type { NodeLayout } from '../capture/pins';
import { NodeProxy } from '../daemon';
import { findCgroup2, readMounts } from '../doctor/mounts';
import { WorkloadState } from '../state/workload-state';
import { NodeProxyTelemetry } from '../telemetry/metrics';
import { startMetricsServer, type MetricsServer } from '../telemetry/server';
import { ControlWorkloadSource } from './control-source';
import { Mesh } from './mesh';
import { certificateClient, readToken, workloadXdsClient } from './xds';

export interface ControlModeOptions {
  readonly node: string;
  readonly layout: NodeLayout;
  readonly control: string;
  readonly tokenFile: string;
  readonly trustBundleFile: string;
  readonly trustDomain: string;
  readonly log: Logger;
  readonly adminPort?: number;
  readonly readyPort?: number;
  readonly metricsPort?: number;
  /** Requested workload certificate lifetime in seconds (0: the CA's default, 24 h). */
  readonly certTtlSeconds?: number;
}

export interface ControlModeProxy {
  readonly proxy: NodeProxy;
  readonly metrics: MetricsServer;
  readonly source: ControlWorkloadSource;
  stop(): Promise<void>;
}

export async function startControlMode(o: ControlModeOptions): Promise<ControlModeProxy> {
  assertTrustDomain(o.trustDomain);
  let trustBundlePem: string;
  try {
    trustBundlePem = readFileSync(o.trustBundleFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the trust bundle ${o.trustBundleFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; write it with 'nodemesh ca root > FILE' on the control plane's host`);
  }
  if (!trustBundlePem.includes('BEGIN CERTIFICATE')) throw new Error(`the trust bundle ${o.trustBundleFile} holds no PEM certificate; write it with 'nodemesh ca root'`);
  readToken(o.tokenFile); // fail now, with the fix, rather than on the first stream
  const cgroupMount = findCgroup2(readMounts());
  if (!cgroupMount) throw new Error('no cgroup v2 mount in /proc/mounts; capture needs cgroup v2 (mount it, e.g. at /sys/fs/cgroup/unified on hybrid hosts)');

  const conn = { control: o.control, trustBundlePem, tokenFile: o.tokenFile, node: o.node, log: o.log };
  const state = new WorkloadState(o.node);
  const xds = workloadXdsClient(conn);
  const ca = certificateClient(conn);
  const certs = new CertificateManager({ source: ca, trustDomain: o.trustDomain, ttlSeconds: o.certTtlSeconds ?? 0 });
  const telemetry = new NodeProxyTelemetry({ accessLog: o.log.child({ component: 'access' }) });
  registerCertificateMetrics(certs, telemetry.registry);
  const source = new ControlWorkloadSource(state, cgroupMount, o.control, o.log);
  const mesh = new Mesh({ node: o.node, trustDomain: o.trustDomain, state, source, certs, telemetry, xds, log: o.log });
  const proxy = new NodeProxy({ node: o.node, layout: o.layout, source, log: o.log, adminPort: o.adminPort, readyPort: o.readyPort, mesh });
  const metrics = await startMetricsServer(telemetry.registry, { port: o.metricsPort });
  try {
    await proxy.start();
  } catch (err) {
    await metrics.close();
    await proxy.stop().catch(() => undefined);
    ca.close();
    throw err;
  }
  return {
    proxy,
    metrics,
    source,
    stop: async () => {
      await proxy.stop();
      await metrics.close();
      ca.close();
    },
  };
}
