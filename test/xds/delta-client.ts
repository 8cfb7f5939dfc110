// A small delta ADS client for tests: a real @grpc/grpc-js client built from the generated stubs,
// with a queue of responses so a test can await the next one or assert that none comes.
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';

type RequestInit = Parameters<typeof DeltaDiscoveryRequest.fromPartial>[0];

export class DeltaClient {
  readonly client: AggregatedDiscoveryServiceClient;
  private readonly stream: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  private readonly queue: DeltaDiscoveryResponse[] = [];
  private waiter: (() => void) | undefined;
  error: grpc.ServiceError | undefined;
  ended = false;

  constructor(address: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}, metadata = new grpc.Metadata()) {
    this.client = new AggregatedDiscoveryServiceClient(address, credentials, options);
    this.stream = this.client.deltaAggregatedResources(metadata);
    this.stream.on('data', (r: DeltaDiscoveryResponse) => {
      this.queue.push(r);
      this.waiter?.();
    });
    this.stream.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.waiter?.();
    });
    this.stream.on('end', () => {
      this.ended = true;
      this.waiter?.();
    });
  }

  send(init: RequestInit): void {
    this.stream.write(DeltaDiscoveryRequest.fromPartial({ node: { id: 'test-node' }, ...init }));
  }

  /** The next response (waits up to timeoutMs). */
  async next(timeoutMs = 3000): Promise<DeltaDiscoveryResponse> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.error) throw new Error(`stream failed: ${this.error.code} ${this.error.details}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no delta response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift()!;
  }

  /** Responses until one arrives with `wanted` resources+removals in total (responses may be split). */
  async collect(wanted: number, timeoutMs = 5000): Promise<DeltaDiscoveryResponse[]> {
    const out: DeltaDiscoveryResponse[] = [];
    let seen = 0;
    const deadline = Date.now() + timeoutMs;
    while (seen < wanted) {
      const r = await this.next(Math.max(1, deadline - Date.now()));
      out.push(r);
      seen += r.resources.length + r.removedResources.length;
    }
    return out;
  }

  /** Resolves when no response arrives within ms; throws if one does. */
  async expectNothing(ms = 300): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.queue.length) {
      const r = this.queue[0]!;
      throw new Error(`unexpected response: ${r.resources.map((x) => x.name).join(',')} removed ${r.removedResources.join(',')}`);
    }
  }

  ack(r: DeltaDiscoveryResponse): void {
    this.send({ typeUrl: r.typeUrl, responseNonce: r.nonce });
  }

  close(): void {
    this.stream.end();
    this.stream.cancel();
    this.client.close();
  }
}
