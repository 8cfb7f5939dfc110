// A mesh certificate as the credential of an ADS stream on 15012 (istiod accepts a workload's
// client certificate the same way). An Envoy waypoint presents its waypoint certificate on its xDS
// cluster (SDS from the files `waypoint cert-agent` renews), so it needs no token in its bootstrap
// — the token there is read once, and a stream reopened after it expired would be refused
// (docs/security.md). The CA signs a waypoint's certificate only for a node where the waypoint is
// scheduled; the certificate speaks for its one service account on any node, and never for a node
// proxy (node-binding.ts).
import type { PeerCertificate } from 'node:tls';
import { PeerVerificationError, verifyPeerChain, type TrustBundle } from '../../common/identity/verify';
import { CallerRefusedError } from '../ca/tokens';
import type { StreamCaller } from './node-binding';

/** What 15012 needs to check a client certificate: the mesh's roots and the CA's intermediates. */
export interface ClientCertificateTrust {
  readonly bundle: TrustBundle;
  /** Certificates between the CA's leaves and the roots (PEM; empty when the root signs leaves). */
  readonly intermediates: readonly string[];
}

/**
 * The caller a client certificate proves: undefined without one; CallerRefusedError when it does
 * not verify (another CA, expired, no SPIFFE ID, another trust domain, not for TLS clients).
 */
export function certificateCaller(peer: PeerCertificate | undefined, trust: ClientCertificateTrust, now = new Date()): StreamCaller | undefined {
  if (!peer?.raw) return undefined;
  try {
    const v = verifyPeerChain([peer.raw, ...trust.intermediates], trust.bundle, { role: 'client', now });
    return {
      node: '',
      anyNode: true,
      only: { namespace: v.identity.namespace, serviceAccount: v.identity.serviceAccount },
      who: `the certificate of ${v.spiffeId}`,
    };
  } catch (err) {
    if (err instanceof PeerVerificationError) throw new CallerRefusedError(`the client certificate is not valid: ${err.message}`);
    throw err;
  }
}
