// The one way a process of the mesh (node proxy, waypoint) reaches the control plane's TLS port:
// the trust bundle that verifies the control plane's serving certificate, a credential for
// `authorization: Bearer`, the certificate service client (CA) and delta ADS clients, all with the
// same checks and the same messages. A failed check throws before anything connects, with the
// fix in the message.
import { readFileSync } from 'node:fs';
import { CaClient } from '../identity/ca-client';
import { DeltaXdsClient, type DeltaXdsClientOptions, type XdsCredentials } from '../xds/client';
import { bearerMetadata, type CredentialSource } from './credential';

export interface ControlPlaneClientOptions {
  /** host:port of the control plane's TLS gRPC port (xDS and certificates), e.g. 10.199.0.254:15012. */
  readonly control: string;
  /** The mesh root PEM file ('nodemesh ca root'). */
  readonly trustBundleFile: string;
  readonly credential: CredentialSource;
  /** Name in the control plane's serving certificate, when the host of `control` is not in it. */
  readonly serverName?: string;
}

export interface ControlPlaneClient {
  readonly control: string;
  /** PEM of the mesh root: verifies the control plane, and peers. */
  readonly trustBundlePem: string;
  readonly credential: CredentialSource;
  /** TLS to the control plane, verified against the trust bundle. */
  readonly xdsCredentials: XdsCredentials;
  /** The certificate service (CertificateSource for a CertificateManager). */
  readonly ca: CaClient;
  /** `authorization: Bearer` with the current token, for each new stream. */
  callMetadata(): ReturnType<typeof bearerMetadata>;
  /** A delta ADS client to the control plane with this client's TLS and credential. */
  deltaAds(o: Omit<DeltaXdsClientOptions, 'target' | 'credentials' | 'callMetadata'>): DeltaXdsClient;
  /** Closes the CA channel (ADS clients are stopped by their owners). */
  close(): void;
}

/** Reads the mesh root; the message says how to get it. */
export function readTrustBundle(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read the trust bundle ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; write it with 'nodemesh ca root > FILE' on the control plane's host`,
    );
  }
  if (!pem.includes('BEGIN CERTIFICATE')) throw new Error(`the trust bundle ${file} holds no PEM certificate; write it with 'nodemesh ca root'`);
  return pem;
}

export function controlPlaneClient(o: ControlPlaneClientOptions): ControlPlaneClient {
  const trustBundlePem = readTrustBundle(o.trustBundleFile);
  o.credential.token(); // fail now, with the fix, rather than on the first stream
  const callMetadata = () => bearerMetadata(o.credential.token());
  const xdsCredentials: XdsCredentials = { kind: 'tls', trustBundlePem, serverName: o.serverName };
  const ca = new CaClient({ address: o.control, rootPem: trustBundlePem, credential: o.credential, serverName: o.serverName });
  return {
    control: o.control,
    trustBundlePem,
    credential: o.credential,
    xdsCredentials,
    ca,
    callMetadata,
    deltaAds: (x) => new DeltaXdsClient({ ...x, target: o.control, credentials: xdsCredentials, callMetadata }),
    close: () => ca.close(),
  };
}
