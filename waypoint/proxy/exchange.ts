// One request as it crosses the waypoint: where it came from (the connection), what routing sees
// of it, what was decided (route, cluster, endpoint) and what went out (status, bytes, flags) —
// the state each stage of the request path (proxy/handler.ts) reads and fills in, and telemetry
// reads at the end. A plain object per request; the stages keep no other per-request state.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledListener } from '../config/listeners';
import type { H1Request, H1Response } from '../http1/server';
import type { H2Request, H2Response } from '../http2/server';
import type { RequestView } from '../config/request';
import type { RouteMatchResult, RouteTable, WeightedTarget } from '../config/routes';
import type { SpanContext } from '../telemetry/trace';
import type { EndpointWorkload } from '../../common/contracts/telemetry';

/** The downstream request: the waypoint's own HTTP/1.1 server's (http1/server.ts) or HTTP/2's (http2/server.ts); node:http's still fits. */
export type DownstreamRequest = H1Request | IncomingMessage | H2Request;
/** What the request path uses of a downstream response (H1Response, H2Response, node:http's). */
export interface DownstreamResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  setHeader(name: string, value: string): unknown;
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
  write(chunk: Buffer): boolean;
  end(): unknown;
  end(chunk: string | Buffer): unknown;
  addTrailers(trailers: Record<string, string>): void;
  destroy(): unknown;
  on(event: 'close' | 'error', listener: () => void): unknown;
  once(event: 'close' | 'finish' | 'drain', listener: () => void): unknown;
}
/** The response types that fit DownstreamResponse (checked here, so a change to one shows). */
export type DownstreamResponses = H1Response | ServerResponse | H2Response;
const fits: (r: DownstreamResponses) => DownstreamResponse = (r) => r;
void fits;

/** Where a request came from: the connection it arrived on. */
export interface ConnectionInfo {
  readonly port: number;
  /** The listener (by name) the connection belongs to, when known (HBONE); else by port. */
  readonly listener?: string;
  /** SPIFFE ID of the HBONE peer; undefined for plaintext. */
  readonly principal: string | undefined;
  /** The HBONE CONNECT's W3C baggage (the source workload, for the metric labels). */
  readonly baggage?: string;
  readonly sourceIp: string;
  readonly destinationIp: string;
}

/** The cluster a forwarding route chose for this request, with the weighted target's mutations. */
export type ClusterChoice = Pick<WeightedTarget, 'cluster' | 'requestHeaders' | 'responseHeaders' | 'hostRewrite'>;

export class Exchange {
  requestBytes = 0;
  responseBytes = 0;
  /** The status sent downstream (0: none yet). */
  status = 0;
  flags: string[] = [];
  cluster = '';
  upstreamHost = '';
  /** The chosen endpoint's `nodemesh.identity` (destination_principal). */
  upstreamIdentity: string | undefined = undefined;
  /** The chosen endpoint's workload (EDS metadata istio.workload): destination workload/app/version. */
  upstreamWorkload: EndpointWorkload | undefined = undefined;
  grpcStatus = '';
  detail = '';
  listener: CompiledListener | undefined = undefined;
  routeTable: RouteTable | undefined = undefined;
  match: RouteMatchResult | undefined = undefined;
  target: ClusterChoice | undefined = undefined;
  /** The upstream attempt waiting for its response head: abandoned when the downstream goes away. */
  inFlight: { abandon(): void } | undefined = undefined;

  constructor(
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
    readonly conn: ConnectionInfo,
    readonly view: RequestView,
    /** content-type application/grpc… */
    readonly grpc: boolean,
    readonly startNs: bigint,
    readonly span: SpanContext,
    private readonly bodyExpected: boolean,
  ) {}

  /** Whether the request may carry a body (false: bodiless by its headers or END_STREAM). */
  get hasBody(): boolean {
    return this.bodyExpected;
  }

  get h2(): boolean {
    return this.req.httpVersionMajor === 2;
  }
}
