// The CA's public surface for the control plane (control/grpc.ts wires it into the 15012 server):
//
//   const ca = await CertificateAuthority.open({ trustDomain, dataDir });        // or operator files
//   const serving = await ca.servingCertificate({ dnsNames, ipAddresses });      // the server's own cert
//   const server = new grpc.Server();
//   addCertificateService(server, { ca, nodes: NodeTokens.forDataDir(dataDir),
//     placement: placementFromSnapshot(() => store.snapshot(), ca.trustDomain), registry });
//   server.bindAsync('0.0.0.0:15012', servingCredentials(serving), …);
export { CaError, CertificateAuthority, DEFAULT_MAX_TTL_SECONDS, DEFAULT_TTL_SECONDS, requestedIdentity } from './authority';
export type { CertificateAuthorityOptions, IssuedCertificate, ServingCertificate } from './authority';
export { CaSetupError, rootFiles } from './material';
export type { OperatorCaFiles } from './material';
export { caMetrics } from './metrics';
export { placementFromSnapshot } from './placement';
export type { WorkloadPlacement } from './placement';
export { addCertificateService, certificateServiceHandlers, servingCredentials } from './service';
export type { CertificateServiceOptions } from './service';
export { NodeTokens, nodeTokensFile } from './tokens';
export type { NodeAuthenticator } from './tokens';
export { openCertificateService } from './setup';
export type { CertificateServiceSetup } from './setup';
