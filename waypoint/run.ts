// Starting a waypoint the way `nodemesh waypoint run` does. Two modes:
// - mesh: the control plane's TLS port (xDS and the certificate service, the node token as
//   `authorization: Bearer`, the serving certificate verified against the trust bundle); the
//   waypoint fetches its own certificate (spiffe://<td>/ns/<ns>/sa/<service account>) and serves
//   HBONE on 15008 with it, renewed at half-life;
// - plaintext: xDS from a plaintext port (e.g. the loopback-only 15010), no identity, no HBONE —
//   for tests and trying routes out without a CA.
import { controlPlaneClient, type ControlPlaneClient } from '../common/control-client/bootstrap';
import { tokenFileCredential, type CredentialSource } from '../common/control-client/credential';
import { CertificateManager } from '../common/identity/manager';
import { assertTrustDomain, DEFAULT_TRUST_DOMAIN } from '../common/identity/spiffe';
import type { Logger } from '../common/log';
import { WaypointIdentity } from './identity';
import { Waypoint, type WaypointOptions } from './waypoint';

export interface MeshModeOptions {
  /** The node token file ('nodemesh ca issue-node-token'); read again for every request. */
  readonly tokenFile: string;
  /** Where the bearer token comes from (default: `tokenFile`, read at every use). */
  readonly credential?: CredentialSource;
  /** The mesh root PEM file ('nodemesh ca root'). */
  readonly trustBundleFile: string;
  readonly trustDomain?: string;
  /** The waypoint's service account (default: its Gateway name). */
  readonly serviceAccount?: string;
  /** Requested certificate lifetime in seconds (0: the CA's default, 24 h). */
  readonly certTtlSeconds?: number;
  /** Name in the control plane's serving certificate, when --control's host is not in it. */
  readonly serverName?: string;
  /** How long to wait for the first certificate (default 30 s). */
  readonly certificateTimeoutMs?: number;
}

export interface StartOptions extends Omit<WaypointOptions, 'controlCredentials' | 'controlToken' | 'logger'> {
  readonly logger: Logger;
  /** Absent: plaintext mode (or a --workers worker: xDS from the primary's relay, `credentials` from the primary). */
  readonly mesh?: MeshModeOptions;
}

export interface RunningWaypoint {
  readonly waypoint: Waypoint;
  readonly identity: WaypointIdentity | undefined;
  stop(): Promise<void>;
}

/** The waypoint's certificate in mesh mode: the control plane client and the identity it keeps current. */
export interface MeshIdentity {
  readonly cp: ControlPlaneClient;
  readonly identity: WaypointIdentity;
  close(): void;
}

/** Get the waypoint's first certificate from the control plane's CA (renewed at half-life after). */
export async function meshIdentity(
  o: { readonly control: string; readonly name: string; readonly namespace: string; readonly logger: Logger },
  m: MeshModeOptions,
): Promise<MeshIdentity> {
  const trustDomain = assertTrustDomain(m.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  const cp = controlPlaneClient({
    control: o.control,
    trustBundleFile: m.trustBundleFile,
    credential: m.credential ?? tokenFileCredential(m.tokenFile),
    serverName: m.serverName,
  });
  const ca = cp.ca;
  const certs = new CertificateManager({ source: ca, trustDomain, ttlSeconds: m.certTtlSeconds ?? 0 });
  const identity = new WaypointIdentity(certs, { namespace: o.namespace, serviceAccount: m.serviceAccount ?? o.name, trustDomain });
  certs.on('issued', (c: { spiffeId: string; notAfter: Date; renewAt: Date }) =>
    o.logger.info({ spiffeId: c.spiffeId, notAfter: c.notAfter.toISOString(), renewAt: c.renewAt.toISOString() }, 'waypoint certificate issued'),
  );
  certs.on('failed', (f: { spiffeId: string; error: Error; attempt: number; retryInMs: number }) =>
    o.logger.warn(
      { spiffeId: f.spiffeId, err: f.error.message, attempt: f.attempt, retryInMs: f.retryInMs },
      'waypoint certificate request failed; retrying (the CA signs only service accounts of Workloads scheduled on this node)',
    ),
  );
  const close = (): void => {
    identity.close();
    certs.close();
    ca.close();
  };
  try {
    await identity.ready(m.certificateTimeoutMs ?? 30_000);
  } catch (err) {
    close();
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}. The control plane's CA signs a waypoint's certificate only when a Workload with serviceAccount '${m.serviceAccount ?? o.name}' in namespace '${o.namespace}' is scheduled on this node (the node of the token)`,
    );
  }
  return { cp, identity, close };
}

export async function startWaypoint(o: StartOptions): Promise<RunningWaypoint> {
  const m = o.mesh;
  if (!m) {
    const waypoint = new Waypoint({ ...o, logger: o.logger });
    await waypoint.start();
    return { waypoint, identity: undefined, stop: () => waypoint.stop() };
  }
  const { cp, identity, close: cleanup } = await meshIdentity(o, m);
  const waypoint = new Waypoint({
    ...o,
    credentials: identity,
    controlCredentials: cp.xdsCredentials,
    controlToken: () => cp.credential.token(),
    logger: o.logger,
  });
  try {
    await waypoint.start();
  } catch (err) {
    await waypoint.stop().catch(() => undefined);
    cleanup();
    throw err;
  }
  return {
    waypoint,
    identity,
    stop: async () => {
      await waypoint.stop();
      cleanup();
    },
  };
}
