// The waypoint's own workload identity: spiffe://<td>/ns/<namespace>/sa/<service account> (the
// service account defaults to the Gateway's name, as Istio's waypoint deployments do). The key
// and CSR are made here; the control plane's CA signs them (common/identity CertificateManager +
// CaClient, authenticated with the node token) and the manager renews at half-life. Presented on
// the HBONE listener (15008) and on HBONE tunnels to mesh endpoints.
import type { CertificateManager, WorkloadCertificate } from '../common/identity/manager';
import { formatSpiffeId, identity, type Identity } from '../common/identity/spiffe';
import type { MeshCredentials, MeshCredentialsValue } from './proxy/upstream';

export class WaypointIdentity implements MeshCredentials {
  readonly id: Identity;
  readonly spiffeId: string;
  private readonly listeners = new Set<(c: MeshCredentialsValue) => void>();
  private readonly onIssued = (c: WorkloadCertificate): void => {
    if (c.spiffeId !== this.spiffeId) return;
    const v = this.current();
    if (v) for (const l of this.listeners) l(v);
  };

  constructor(
    private readonly manager: CertificateManager,
    o: { readonly namespace: string; readonly serviceAccount: string; readonly trustDomain: string },
  ) {
    this.id = identity(o.namespace, o.serviceAccount, o.trustDomain);
    this.spiffeId = formatSpiffeId(this.id);
    manager.on('issued', this.onIssued);
  }

  /** Resolves with the first certificate (the manager retries with back-off until then). */
  async ready(timeoutMs = 30_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const st = this.manager.status().find((s) => s.spiffeId === this.spiffeId);
        reject(new Error(`no certificate for ${this.spiffeId} within ${timeoutMs} ms${st?.lastError ? `: ${st.lastError}` : ''}`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.manager.ready(this.id), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  current(): MeshCredentialsValue | undefined {
    // Never an expired certificate: ask the manager, which checks not_after.
    const c = this.manager.current(this.id) ?? undefined;
    if (!c) return undefined;
    return { certChain: c.certChainPem, key: c.privateKeyPem, trustBundle: c.trustBundle, spiffeId: c.spiffeId, notAfter: c.notAfter };
  }

  onChange(listener: (c: MeshCredentialsValue) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.manager.off('issued', this.onIssued);
    this.listeners.clear();
  }
}
