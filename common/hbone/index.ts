// The HBONE tunnel's public API (see docs/hbone.md).
export { formatAuthority, parseAuthority, targetOf, type TunnelTarget } from './authority';
export { HboneClient, type Dialer, type ExpectedIdentity, type HboneClientOptions, type OpenOptions, type WorkloadCredentials } from './client';
export { TunnelConnectError, TunnelRefusedError, describeStatus } from './errors';
export { forwardedEndpoint, forwardedFor, type TunnelHeaders } from './headers';
export {
  HboneServer,
  allow,
  deny,
  type Decision,
  type Endpoint,
  type HboneServerOptions,
  type HboneServerStats,
  type ListenOptions,
  type ServerCredentials,
  type TunnelHandler,
  type TunnelRequest,
} from './server';
export { isRawSocket, rawSocket, type RawSocket } from './raw-socket';
export { DEFAULT_WINDOWS, type WindowSettings } from './settings';
export { abortSide, splice, type SpliceResult } from './splice';
export { connectUpstream, type UpstreamOptions } from './upstream';
