// HTTP/2 keepalive on the delta ADS stream between common/xds's client and the control plane's
// real gRPC server (control/grpc.ts), with both sides' real keepalive values scaled down by SCALE
// so a test runs in seconds. Between them sits a TCP relay that reads the HTTP/2 frame headers
// (to count the PINGs and ACKs each side sends) and can hold the server's bytes (a control plane
// whose event loop is blocked) or swallow everything (a control plane whose host vanished).
//
// Background: a waypoint benchmark saw its xDS stream "Connection dropped" once. The cause was
// the benchmark's own process, which hosted the xDS server and blocked its event loop in
// spawnSync(h2load) for tens of seconds; the client's PING went unanswered past its 10 s timeout.
// grpc-js (1.14) enforces no ping rate, so the client's pings never earn a GOAWAY too_many_pings.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Address } from '../../api/gen/nodemesh/workload/v1/workload';
import { DeltaXdsClient, XDS_CLIENT_KEEPALIVE, type XdsClientStatus } from '../../common/xds/client';
import type { ResourceType } from '../../common/xds/types';
import { ControlGrpcServer, XDS_SERVER_KEEPALIVE } from '../../control/grpc';
import { MemoryStore } from '../../control/store/base-store';
import { SharedCache } from '../../control/xds/cache';
import { ADDRESS_TYPE_URL, WORKLOAD_API_TYPE_URLS, WorkloadApiPublisher } from '../../control/workload/publisher';
import { cleanupAfterEach } from '../support/cleanups';
import { silentLogger as silent } from '../support/control-plane';
import { until } from '../support/until';

const cleanup = cleanupAfterEach();

/** Real seconds become SCALE × as long in these tests. */
const SCALE = 1 / 25;
/** A control plane that stops answering for this long (blocked event loop, long GC) must not cost a stream. */
const TOLERATED_STALL_MS = 15_000;
/** A control plane that vanished without closing the connection must be noticed within this. */
const DEAD_PEER_NOTICED_MS = 60_000;

const scaled = (ms: number): number => Math.round(ms * SCALE);

const AddressType: ResourceType<Address> = { typeUrl: ADDRESS_TYPE_URL, decode: (b) => Address.decode(b) };

// ---- a relay that sees HTTP/2 frames ----------------------------------------------------------

const PREFACE_LENGTH = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const FRAME_PING = 6;
const FLAG_ACK = 1;

interface PingCounts {
  pings: number;
  acks: number;
}

/** Walks the frame headers of one direction of an h2c connection; calls onPing for each PING. */
class FrameReader {
  private skip: number;
  private header = Buffer.alloc(0);

  constructor(
    preface: boolean,
    private readonly onPing: (ack: boolean) => void,
  ) {
    this.skip = preface ? PREFACE_LENGTH : 0;
  }

  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.skip -= n;
        at += n;
        continue;
      }
      const need = 9 - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
      at += Math.min(need, chunk.length - at);
      if (this.header.length < 9) return;
      const length = this.header.readUIntBE(0, 3);
      if (this.header[3] === FRAME_PING) this.onPing((this.header[4]! & FLAG_ACK) !== 0);
      this.header = Buffer.alloc(0);
      this.skip = length;
    }
  }
}

type RelayMode = 'forward' | 'blackhole';

class H2Relay {
  readonly fromClient: PingCounts = { pings: 0, acks: 0 };
  readonly fromServer: PingCounts = { pings: 0, acks: 0 };
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private mode: RelayMode = 'forward';
  private heldUntil = 0;
  private held: Array<{ to: Socket; chunk: Buffer }> = [];
  private releaseTimer: NodeJS.Timeout | undefined;
  private stallOnNextClientPing: number | undefined;
  /** The server-to-client reader of each client socket (held bytes are counted on release). */
  private readonly readers = new Map<Socket, FrameReader>();
  /** Stalls started so far. */
  stalls = 0;
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = createServer((client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  /** When the client sends its next PING, hold everything the server sends for `ms`. */
  stallServerOnNextClientPing(ms: number): void {
    this.stallOnNextClientPing = ms;
  }

  /** Forward nothing, close nothing: the peer's host is gone. */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  /** The control plane is back: connections from the blackhole time are dead, new ones work. */
  restore(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    this.mode = 'forward';
  }

  async close(): Promise<void> {
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
    const pair = { client, upstream };
    this.pairs.add(pair);
    const up = new FrameReader(true, (ack) => {
      if (ack) this.fromClient.acks++;
      else {
        this.fromClient.pings++;
        if (this.stallOnNextClientPing !== undefined) {
          this.heldUntil = Date.now() + this.stallOnNextClientPing;
          this.stallOnNextClientPing = undefined;
          this.stalls++;
        }
      }
    });
    const down = new FrameReader(false, (ack) => (ack ? this.fromServer.acks++ : this.fromServer.pings++));
    client.on('data', (chunk: Buffer) => {
      if (this.mode === 'blackhole') return;
      up.feed(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.mode === 'blackhole') return;
      if (Date.now() < this.heldUntil || this.held.length > 0) {
        this.held.push({ to: client, chunk });
        this.scheduleRelease();
        return;
      }
      down.feed(chunk);
      client.write(chunk);
    });
    this.readers.set(client, down);
    const gone = (): void => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
      this.readers.delete(client);
    };
    client.on('error', gone).on('close', gone);
    upstream.on('error', gone).on('close', gone);
  }

  private scheduleRelease(): void {
    if (this.releaseTimer) return;
    this.releaseTimer = setTimeout(
      () => {
        this.releaseTimer = undefined;
        for (const { to, chunk } of this.held.splice(0)) {
          this.readers.get(to)?.feed(chunk);
          if (!to.destroyed) to.write(chunk);
        }
      },
      Math.max(0, this.heldUntil - Date.now()),
    );
  }
}

// ---- the control plane and the client, with keepalive scaled -----------------------------------

async function controlPlane(): Promise<number> {
  const store = new MemoryStore();
  await store.applyAll([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } },
    {
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } },
      spec: { node: 'node-1', addresses: ['10.200.1.5'], serviceAccount: 'web' },
    },
  ]);
  const cache = new SharedCache(WORKLOAD_API_TYPE_URLS);
  const publisher = new WorkloadApiPublisher(store, cache, { logger: silent });
  publisher.start();
  cleanup(() => publisher.stop());
  const server = new ControlGrpcServer({
    source: cache,
    plaintext: { host: '127.0.0.1', port: 0 },
    logger: silent,
    serverOptions: {
      'grpc.keepalive_time_ms': scaled(XDS_SERVER_KEEPALIVE.timeMs),
      'grpc.keepalive_timeout_ms': scaled(XDS_SERVER_KEEPALIVE.timeoutMs),
    },
  });
  const { plaintext } = await server.start();
  cleanup(() => server.stop(200));
  return plaintext!;
}

async function relayTo(port: number): Promise<H2Relay> {
  const relay = new H2Relay(port);
  cleanup(() => relay.close());
  await relay.listen();
  return relay;
}

function xdsClient(port: number): { client: DeltaXdsClient; drops: XdsClientStatus[] } {
  const client = new DeltaXdsClient({
    target: `127.0.0.1:${port}`,
    credentials: { kind: 'plaintext' },
    node: { id: 'node-1~keepalive', cluster: 'lab' },
    types: [{ type: AddressType as ResourceType<unknown> }],
    backoff: { initialMs: 20, maxMs: 100 },
    channelOptions: {
      'grpc.keepalive_time_ms': scaled(XDS_CLIENT_KEEPALIVE.timeMs),
      'grpc.keepalive_timeout_ms': scaled(XDS_CLIENT_KEEPALIVE.timeoutMs),
      'grpc.initial_reconnect_backoff_ms': 20,
      'grpc.max_reconnect_backoff_ms': 100,
    },
    logger: silent,
  });
  const drops: XdsClientStatus[] = [];
  client.onStatus((s) => {
    if (!s.connected) drops.push(s);
  });
  cleanup(() => client.stop());
  client.start();
  return { client, drops };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('delta ADS keepalive between common/xds and the control plane (keepalive scaled ×1/25)', () => {
  it('pings from both sides keep one stream open: every PING is ACKed, no reconnect', async () => {
    const relay = await relayTo(await controlPlane());
    const { client, drops } = xdsClient(relay.port);
    await client.whenSynced(5000);
    const rounds = 4;
    await until(
      `${rounds} keepalive rounds each way`,
      () => relay.fromClient.pings >= rounds && relay.fromServer.pings >= rounds,
      scaled(XDS_CLIENT_KEEPALIVE.timeMs) * (rounds + 2),
    );
    await sleep(scaled(XDS_CLIENT_KEEPALIVE.timeoutMs));
    // Both sides ping, and each side answers every PING of the other.
    expect(relay.fromServer.acks).toBeGreaterThanOrEqual(relay.fromClient.pings - 1);
    expect(relay.fromClient.acks).toBeGreaterThanOrEqual(relay.fromServer.pings - 1);
    expect(drops.map((d) => d.lastError)).toEqual([]);
    expect(client.status()).toMatchObject({ connected: true, streams: 1 });
  }, 20_000);

  it(`a control plane that stops answering for ${TOLERATED_STALL_MS / 1000} s keeps the stream`, async () => {
    const relay = await relayTo(await controlPlane());
    const { client, drops } = xdsClient(relay.port);
    await client.whenSynced(5000);
    // Everything the server sends from the client's next PING on arrives STALL later: the ACK too.
    relay.stallServerOnNextClientPing(scaled(TOLERATED_STALL_MS));
    await until('a client PING that starts the stall', () => relay.stalls === 1, scaled(XDS_CLIENT_KEEPALIVE.timeMs) * 3);
    const acksAtStall = relay.fromServer.acks;
    await until(
      'the held PING ACK and one more keepalive round',
      () => relay.fromServer.acks >= acksAtStall + 2,
      scaled(TOLERATED_STALL_MS + XDS_CLIENT_KEEPALIVE.timeMs) * 3,
    );
    expect(drops.map((d) => d.lastError)).toEqual([]);
    expect(client.status()).toMatchObject({ connected: true, streams: 1 });
  }, 20_000);

  it(`a control plane that vanished is noticed within ${DEAD_PEER_NOTICED_MS / 1000} s, and the client resyncs once it is back`, async () => {
    const relay = await relayTo(await controlPlane());
    const { client, drops } = xdsClient(relay.port);
    await client.whenSynced(5000);
    const gone = Date.now();
    relay.blackhole();
    await until('the client noticing the dead connection', () => drops.length > 0, scaled(DEAD_PEER_NOTICED_MS) * 3);
    const noticedAfter = Date.now() - gone;
    expect(noticedAfter).toBeLessThanOrEqual(scaled(DEAD_PEER_NOTICED_MS));
    expect(drops[0]!.lastError).toMatch(/UNAVAILABLE/);
    // Still serving its last good state while the control plane is away.
    expect(client.status().synced).toBe(true);
    expect(client.resources(AddressType).size).toBe(1);
    relay.restore();
    await until('the client reconnected', () => client.status().connected, 5000);
    expect(client.status().streams).toBeGreaterThanOrEqual(2);
    expect(client.resources(AddressType).size).toBe(1);
  }, 20_000);
});
