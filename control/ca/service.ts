// The certificate service (nodemesh.ca.v1.CertificateService) on the control plane's gRPC-over-TLS
// port. A request is signed only when: the caller's node credential is valid (UNAUTHENTICATED
// otherwise), the CSR's SPIFFE ID is the service account of a workload scheduled on that node
// (PERMISSION_DENIED otherwise), and the CA accepts the CSR and TTL (INVALID_ARGUMENT otherwise).
import type { IssuedCertificates } from './issued';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { CertificateServiceService, CreateCertificateResponse, type CertificateServiceServer } from '../../api/gen/nodemesh/ca/v1/ca';
import { createLogger, type Logger } from '../../common/log';
import { formatSpiffeId } from '../../common/identity/spiffe';
import { CaError, requestedIdentity, type CertificateAuthority, type ServingCertificate } from './authority';
import { caMetrics, type RefusalReason } from './metrics';
import type { WorkloadPlacement } from './placement';
import { CallerRefusedError, callerOf, type Caller, type NodeAuthenticator } from './tokens';

export interface CertificateServiceOptions {
  readonly ca: CertificateAuthority;
  readonly nodes: NodeAuthenticator;
  readonly placement: WorkloadPlacement;
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Where each issuance is noted (the /ui workload page reads it). */
  readonly issued?: IssuedCertificates;
}

class Refusal extends Error {
  constructor(
    readonly code: grpc.status,
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

function bearerToken(metadata: grpc.Metadata): string {
  const values = metadata.get('authorization');
  if (values.length === 0) {
    throw new Refusal(
      grpc.status.UNAUTHENTICATED,
      'unauthenticated',
      "no node credential: send metadata 'authorization: Bearer <node token>' (issue one with 'nodemesh ca issue-node-token --node <name>')",
    );
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(String(values[0]));
  if (!m) throw new Refusal(grpc.status.UNAUTHENTICATED, 'unauthenticated', "the authorization metadata is not 'Bearer <node token>'");
  return m[1] as string;
}

async function authenticateCaller(nodes: NodeAuthenticator, token: string): Promise<Caller> {
  try {
    return await callerOf(nodes, token);
  } catch (err) {
    if (err instanceof CallerRefusedError) throw new Refusal(grpc.status.UNAUTHENTICATED, 'unauthenticated', err.message);
    throw err;
  }
}

/** The handler, separate from the grpc.Server so it can be mounted on any server. */
export function certificateServiceHandlers(options: CertificateServiceOptions): CertificateServiceServer {
  const { ca, nodes, placement } = options;
  const metrics = caMetrics(options.registry);
  const log = options.logger ?? createLogger('ca');

  async function handle(call: grpc.ServerUnaryCall<{ csr: string; ttlSeconds: number }, unknown>): Promise<CreateCertificateResponse> {
    const token = bearerToken(call.metadata);
    const caller = await authenticateCaller(nodes, token);
    const node = caller.node;
    let identity;
    try {
      identity = requestedIdentity(call.request.csr);
    } catch (err) {
      if (err instanceof CaError) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'invalid_argument', err.message);
      throw err;
    }
    const spiffeId = formatSpiffeId(identity);
    if (caller.only && (caller.only.namespace !== identity.namespace || caller.only.serviceAccount !== identity.serviceAccount)) {
      throw new Refusal(
        grpc.status.PERMISSION_DENIED,
        'permission_denied',
        `${caller.who} may only obtain a certificate for its own service account ${caller.only.namespace}/${caller.only.serviceAccount}, not ${spiffeId}`,
      );
    }
    if (!placement(identity, node)) {
      throw new Refusal(
        grpc.status.PERMISSION_DENIED,
        'permission_denied',
        `node '${node}' may not obtain a certificate for ${spiffeId}: no workload with service account '${identity.serviceAccount}' in namespace '${identity.namespace}' is scheduled on node '${node}'${identity.trustDomain !== ca.trustDomain ? ` (and the trust domain is '${ca.trustDomain}', not '${identity.trustDomain}')` : ''}`,
      );
    }
    try {
      const issued = await ca.issue({ csrPem: call.request.csr, identity, ttlSeconds: call.request.ttlSeconds });
      metrics.issued.inc({ node });
      options.issued?.record({
        spiffeId,
        node,
        serialNumber: issued.serialNumber,
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
        issuedAt: new Date().toISOString(),
      });
      log.info({ node, spiffeId, serial: issued.serialNumber, notAfter: issued.notAfter.toISOString() }, 'certificate issued');
      return CreateCertificateResponse.fromPartial({ certChain: [...issued.certChainPem], trustBundle: [...issued.trustBundlePem] });
    } catch (err) {
      if (err instanceof CaError) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'invalid_argument', err.message);
      throw err;
    }
  }

  return {
    createCertificate(call, callback) {
      handle(call).then(
        (response) => callback(null, response),
        (err: unknown) => {
          if (err instanceof Refusal) {
            metrics.refused.inc({ reason: err.reason });
            log.warn({ peer: call.getPeer(), code: grpc.status[err.code], reason: err.message }, 'certificate request refused');
            callback({ code: err.code, details: err.message, metadata: new grpc.Metadata() });
          } else {
            metrics.refused.inc({ reason: 'internal' });
            log.error({ err, peer: call.getPeer() }, 'certificate request failed');
            callback({
              code: grpc.status.INTERNAL,
              details: `the CA failed to sign: ${err instanceof Error ? err.message : String(err)}`,
              metadata: new grpc.Metadata(),
            });
          }
        },
      );
    },
  };
}

/** Adds nodemesh.ca.v1.CertificateService to a grpc.Server (the control plane's 15012 server). */
export function addCertificateService(server: grpc.Server, options: CertificateServiceOptions): void {
  server.addService(CertificateServiceService, certificateServiceHandlers(options));
}

/** grpc-js server credentials (TLS, no client certificate) from the control plane's serving certificate. */
export function servingCredentials(serving: ServingCertificate): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(serving.privateKeyPem), cert_chain: Buffer.from(serving.certChainPem) }], false);
}
