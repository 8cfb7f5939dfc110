// Errors the tunnel client hands its caller. A refused tunnel carries the HTTP status the server
// answered so the caller can map it (the node proxy resets the app's connection on any of them).

/** The server answered the CONNECT with a status other than 200. */
export class TunnelRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly destination: string,
    readonly authority: string,
  ) {
    super(`HBONE tunnel to ${authority} via ${destination} was refused with HTTP ${status} (${describeStatus(status)})`);
    this.name = 'TunnelRefusedError';
  }
}

/** The tunnel could not be opened at all (connection, TLS or peer identity failure, timeout). */
export class TunnelConnectError extends Error {
  constructor(
    message: string,
    readonly destination: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'TunnelConnectError';
  }
}

export function describeStatus(status: number): string {
  switch (status) {
    case 400:
      return 'bad request: the authority is not ip:port';
    case 401:
      return 'unauthenticated: the server did not accept the client identity';
    case 403:
      return 'denied by authorization policy at the destination';
    case 405:
      return 'method not allowed: HBONE accepts only CONNECT';
    case 500:
      return 'the destination proxy failed while handling the tunnel';
    case 503:
      return 'the destination workload refused or could not be reached';
    case 504:
      return 'the destination workload did not answer in time';
    default:
      return 'unexpected status';
  }
}
